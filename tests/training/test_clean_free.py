"""Noise2Noise training never reads a clean image: validation, selection, schedule are clean-free.

The proof: one dataset written twice, identical except that the second file's ``clean`` array is
all zeros. A deterministic ``n2n`` run on each must give the same ``metrics.csv`` (every column
but the wall-clock ``elapsed_s``) and bit-identical ``best.ckpt`` / ``last.ckpt`` weights. Had any
clean pixel reached the loss, the validation score, ``best.ckpt``'s choice or the plateau
schedule, the two runs would differ.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from lowdose.core.metrics import pair_noise_variance_all_pixels, psnr, psnr_from_mse
from lowdose.data.dataset import load_split
from lowdose.data.writer import write_dataset
from lowdose.models.checkpoint import load_model
from lowdose.training.config import make_train_config
from lowdose.training.datamodule import validation_tensors
from lowdose.training.run import train

PHOTONS_PER_PIXEL = 600.0


def _write(path, clean, noisy, *, stored_clean):
    n_images = len(clean)
    split = ["train"] * (n_images - 6) + ["val"] * 3 + ["test"] * 3
    attrs = {"modality": "xray", "noise_model": "poisson", "scaling_rule": "per_image_max"}
    write_dataset(
        path,
        clean=stored_clean,
        noisy=noisy,
        object_id=[f"p{i}" for i in range(n_images)],
        split=split,
        attrs=attrs,
    )
    return path


@pytest.fixture(scope="module")
def twin_datasets(tmp_path_factory):
    """Two files with the same noisy realisations; clean images real in one, zeros in the other."""
    rng = np.random.default_rng(11)
    folder = tmp_path_factory.mktemp("twins")
    clean = np.stack([gaussian_filter(rng.random((64, 64)), 3) for _ in range(20)])
    low, span = clean.min(axis=(1, 2), keepdims=True), np.ptp(clean, axis=(1, 2), keepdims=True)
    clean = ((clean - low) / span * 0.6 + 0.3).astype(np.float32)
    noisy = (
        rng.poisson(PHOTONS_PER_PIXEL * np.repeat(clean[:, None], 2, axis=1)) / PHOTONS_PER_PIXEL
    ).astype(np.float32)
    real = _write(folder / "real.h5", clean, noisy, stored_clean=clean)
    zeroed = _write(folder / "zeroed.h5", clean, noisy, stored_clean=np.zeros_like(clean))
    return real, zeroed


TINY = dict(
    width=8,
    patch=32,
    batch_size=4,
    samples_per_epoch=48,
    epochs=4,
    threads=1,
    deterministic=True,
    quiet=True,
    seed=5,
    accelerator="cpu",
    mode="n2n",
    lr_patience_epochs=0,
)


def _metrics_without_wall_time(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.pop("elapsed_s")  # wall-clock seconds: the only column allowed to differ
    return rows


def _state(checkpoint):
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def test_n2n_training_is_identical_when_the_clean_array_is_zeroed(twin_datasets, tmp_path):
    real, zeroed = twin_datasets
    runs = [
        train(make_train_config({**TINY, "data": d, "out": tmp_path / d.stem}))
        for d in (real, zeroed)
    ]
    assert all(r.val_reference == "realisation" and r.monitor == "val_upsnr_db" for r in runs)
    first, second = (_metrics_without_wall_time(r.run_dir) for r in runs)
    assert len(first) == TINY["epochs"] and first == second
    # The plateau schedule and best.ckpt followed the clean-free score (their saved "best").
    best_upsnr = max(float(row["val_upsnr_db"]) for row in first)
    last = torch.load(runs[0].run_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["lr_schedulers"][0]["best"] == pytest.approx(best_upsnr, abs=1e-9)
    assert runs[0].best_val_psnr_db == pytest.approx(best_upsnr, abs=1e-9)
    for name in ("best.ckpt", "last.ckpt"):
        a, b = _state(runs[0].run_dir / name), _state(runs[1].run_dir / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a), name


def test_clean_selected_training_does_read_clean_so_the_proof_can_fail(twin_datasets, tmp_path):
    # The same pair of files with val_reference=clean: the zeroed clean array changes the
    # validation score, which shows the test above would catch a clean-reading validation.
    real, zeroed = twin_datasets
    settings = {**TINY, "epochs": 1, "val_reference": "clean"}
    runs = [
        train(make_train_config({**settings, "data": d, "out": tmp_path / d.stem}))
        for d in (real, zeroed)
    ]
    first, second = (_metrics_without_wall_time(r.run_dir) for r in runs)
    assert first[0]["val_psnr_db"] != second[0]["val_psnr_db"]
    assert first[0]["val_upsnr_db"] == "nan"


def test_clean_free_validation_never_loads_the_clean_array(twin_datasets, monkeypatch):
    real, _ = twin_datasets
    calls = []
    import lowdose.training.datamodule as datamodule

    original = datamodule.load_split

    def spy(path, split, *, with_clean=True):
        calls.append(with_clean)
        return original(path, split, with_clean=with_clean)

    monkeypatch.setattr(datamodule, "load_split", spy)
    inputs, references, variance = validation_tensors(real, crop=None, reference="realisation")
    assert calls == [False]
    assert inputs.shape == references.shape == (6, 1, 64, 64)  # 3 images, both directions
    assert torch.equal(inputs[:3], references[3:]) and torch.equal(inputs[3:], references[:3])
    assert torch.equal(variance[:3], variance[3:])


def test_val_upsnr_estimates_the_clean_psnr_of_the_selected_model(twin_datasets, tmp_path):
    real, _ = twin_datasets
    run = train(make_train_config({**TINY, "data": real, "out": tmp_path / "run", "width": 16}))
    model, meta = load_model(run.best_checkpoint)
    assert meta.selection == "clean-free" and meta.seed == TINY["seed"]
    val = load_split(real, "val")
    with torch.no_grad():
        outputs = [model(torch.from_numpy(val.noisy[:, k : k + 1])).numpy()[:, 0] for k in (0, 1)]
    s2 = pair_noise_variance_all_pixels(val.noisy[:, 0], val.noisy[:, 1])
    umse = np.concatenate(
        [
            np.mean((outputs[0] - val.noisy[:, 1].astype(np.float64)) ** 2, axis=(1, 2)) - s2,
            np.mean((outputs[1] - val.noisy[:, 0].astype(np.float64)) ** 2, axis=(1, 2)) - s2,
        ]
    )
    estimate_db = psnr_from_mse(np.mean(umse), data_range=1.0)
    assert estimate_db == pytest.approx(run.best_val_psnr_db, abs=1e-3)  # what training logged
    true_mse = np.mean([np.mean((o - val.clean.astype(np.float64)) ** 2) for o in outputs])
    true_db = psnr_from_mse(true_mse, data_range=1.0)
    raw_db = float(np.mean(psnr(val.noisy[:, 1], outputs[0], data_range=1.0)))
    # The estimate sits within 1 dB of the truth it never saw (~0.3 dB sd at this size), while
    # the raw PSNR against the noisy target is biased low by the target's own noise.
    assert abs(estimate_db - true_db) < 1.0, (estimate_db, true_db)
    assert raw_db < true_db - 0.5, (raw_db, true_db)
