"""Evaluating one scan split into view subsets (Noise2Inverse) and the blind-sigma filter rule."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.writer import write_dataset
from lowdose.evaluation.evaluate import evaluate
from lowdose.evaluation.testset import read_test_set


def _write(path, *, view_subsets: bool, sigma_scan: float = 0.05, seed: int = 0):
    """6 smooth images; noisy (6, 2, H, W): two halves whose mean has noise sd ``sigma_scan``
    (view subsets) or two independent scans of sd ``sigma_scan``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:48, :48] / 48.0
    clean = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (x + k / 6)) * y for k in range(6)])
    per = sigma_scan * (np.sqrt(2) if view_subsets else 1.0)  # a half has 2x the variance
    noisy = clean[:, None] + per * rng.standard_normal((6, 2, 48, 48))
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="sinogram",
        noise_level=1.0,
        scaling_rule="none",
        raw_units="",
        seed=seed,
        description="test",
    )
    if view_subsets:
        attrs = attrs.with_extra(realisations_are="view_subsets", view_subsets=2)
    split = np.array(["train", "train", "val", "test", "test", "test"])
    return write_dataset(
        path,
        clean=clean.astype(np.float32),
        noisy=noisy.astype(np.float32),
        object_id=np.array([f"o{k}" for k in range(6)]),
        split=split,
        scale=np.ones(6),
        attrs=attrs,
    )


def test_view_subsets_input_is_the_scan_and_its_noise_is_estimated(tmp_path):
    test = read_test_set(_write(tmp_path / "v.h5", view_subsets=True))
    assert test.view_subsets == 2
    np.testing.assert_allclose(test.inputs, test.noisy.mean(axis=1), atol=1e-6)
    # the mean of two halves has the scan's sd (0.05), not a half's (0.0707)
    assert np.allclose(test.noise_sigma_estimate(), 0.05, rtol=0.08)
    plain = read_test_set(_write(tmp_path / "p.h5", view_subsets=False))
    assert plain.view_subsets == 1 and np.array_equal(plain.inputs, plain.noisy[:, 0])
    assert np.allclose(plain.noise_sigma_estimate(), 0.05, rtol=0.08)


def test_view_subset_rows_score_the_scan_and_drop_pair_scores(tmp_path):
    path = _write(tmp_path / "v.h5", view_subsets=True)
    frame = evaluate(path, filters=[], out_dir=tmp_path / "r")
    noisy = frame[frame["method"] == "noisy"]
    # the input is the scan: its PSNR is that of sd 0.05 noise (26.0 dB at data_range 1)
    assert noisy["psnr_db"].mean() == pytest.approx(26.0, abs=0.3)
    assert noisy["noise_var_estimate"].mean() == pytest.approx(0.0025, rel=0.1)
    assert noisy["upsnr_db"].isna().all()  # the second half is part of the input


def test_networks_denoise_each_subset_and_average(tmp_path, tiny_checkpoint):
    from lowdose.evaluation.methods import model_methods
    from lowdose.inference.predict import predict
    from lowdose.models.checkpoint import load_model

    test = read_test_set(_write(tmp_path / "v.h5", view_subsets=True))
    out = next(iter(model_methods(test, [tiny_checkpoint], "cpu", None))).outputs
    halves = [predict(load_model(tiny_checkpoint)[0], test.noisy[:, k]) for k in range(2)]
    assert out.shape == test.inputs.shape
    np.testing.assert_allclose(out, (halves[0] + halves[1]) / 2, atol=1e-5)
    # the U-Net is not linear: denoising the average would be a different estimate
    assert not np.allclose(out, predict(load_model(tiny_checkpoint)[0], test.inputs), atol=1e-4)


def test_blind_sigma_filters_use_each_scans_noise_and_no_search(tmp_path):
    path = _write(tmp_path / "p.h5", view_subsets=False, sigma_scan=0.08)
    frame = evaluate(path, filters=["nlm"], tuning="blind-sigma", out_dir=tmp_path / "r")
    nlm = frame[frame["method"] == "nlm"]
    assert set(nlm["tuning"]) == {"blind-sigma"}
    import json

    h = [json.loads(p)["h"] for p in nlm["params"]]
    assert np.allclose(h, 0.8 * 0.08, rtol=0.1)  # 0.8 sigma, sigma from each test pair
    assert nlm["psnr_db"].mean() > frame[frame["method"] == "noisy"]["psnr_db"].mean() + 3
    with pytest.raises(LowdoseInputError, match="no rule from a noise level"):
        evaluate(path, filters=["gaussian"], tuning="blind-sigma", out_dir=tmp_path / "g")
