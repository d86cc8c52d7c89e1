"""Evaluation without clean images: uPSNR for every method from the test pairs, blind tuning on
the training pairs only, and the clean-free numbers identical whether or not the file has clean."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

import lowdose.evaluation.testset as testset
from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import read_attrs
from lowdose.data.paired import paired_table
from lowdose.data.results import summarize
from lowdose.evaluation.evaluate import evaluate
from lowdose.evaluation.outputs import summary_markdown

FILTERS = ["gaussian", "median"]
KEY = ["method", "tuning", "image_index"]


@pytest.fixture
def pair_of_files(make_tiny_dataset):
    """The same noisy data (6 objects, test objects obj2 and obj5), with and without clean."""
    options = {"n_objects": 6, "seed": 3}
    return (
        make_tiny_dataset(name="noclean.h5", with_clean=False, **options),
        make_tiny_dataset(name="clean.h5", **options),
    )


def test_without_clean_every_method_gets_upsnr(pair_of_files, tmp_path, caplog):
    path, _ = pair_of_files
    with caplog.at_level(logging.WARNING, logger="lowdose.evaluation"):
        frame = evaluate(path, filters=FILTERS, tuning="both", out_dir=tmp_path / "r")
    assert "tuned blind only" in caplog.text  # oracle skipped, said so
    assert set(frame["tuning"]) == {"none", "blind"} and len(frame) == 4 * 3
    assert np.isfinite(frame["upsnr_db"]).all() and np.isfinite(frame["umse"]).all()
    for column in ("psnr_db", "ssim", "input_psnr_db", "noise_var_true", "psnr_hu_window_db"):
        assert frame[column].isna().all(), column
    assert np.isfinite(frame["noise_var_estimate"]).all()
    upsnr = frame.groupby("method")["upsnr_db"].mean()
    assert upsnr["gaussian"] > upsnr["noisy"] and upsnr["median"] > upsnr["noisy"]
    rows = {r["label"]: r for r in summarize(frame)}
    assert rows["gaussian (blind)"]["n_objects"] == 2
    low, high = rows["noisy"]["upsnr_ci95_low_db"], rows["noisy"]["upsnr_ci95_high_db"]
    assert low <= rows["noisy"]["upsnr_db"] <= high
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "No clean image was read" in summary
    assert "uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2)/2" in summary
    assert "## Paired: method - noisy (uPSNR)" in summary and "| gaussian (blind) |" in summary
    with np.load(tmp_path / "r" / "panels.npz") as panels:
        assert "clean" not in panels.files and np.isnan(panels["psnr"]).all()
        assert panels["gaussian"].shape == panels["noisy"].shape


def test_clean_never_enters_upsnr_and_it_tracks_psnr(pair_of_files, tmp_path):
    without, with_clean = pair_of_files
    blind = evaluate(without, filters=FILTERS, tuning="blind", out_dir=tmp_path / "a")
    full = evaluate(with_clean, filters=FILTERS, tuning="blind", out_dir=tmp_path / "b")
    a, b = (f.sort_values(KEY).reset_index(drop=True) for f in (blind, full))
    np.testing.assert_array_equal(a["upsnr_db"], b["upsnr_db"])  # bit for bit
    settings = [
        [
            {k: v for k, v in json.loads(p).items() if k != "seconds_per_image"}
            for p in frame["params"]
        ]
        for frame in (a, b)
    ]
    assert settings[0] == settings[1]  # blind never saw the clean training images
    noisy = b[b["method"] == "noisy"]
    np.testing.assert_allclose(noisy["upsnr_db"], noisy["psnr_db"], atol=0.5)
    rows = {r["label"]: r for r in summarize(b)}
    assert abs(rows["noisy"]["upsnr_db"] - rows["noisy"]["psnr_db"]) < 0.5


def test_blind_never_reads_clean_and_blind_clean_does(pair_of_files, tmp_path, monkeypatch):
    _, path = pair_of_files
    calls = []
    real = testset.load_split

    def spy(data_path, split, **options):
        calls.append((split, options.get("with_clean", True)))
        return real(data_path, split, **options)

    monkeypatch.setattr(testset, "load_split", spy)
    frame = evaluate(path, filters=["gaussian"], tuning="blind", out_dir=tmp_path / "a")
    assert ("train", False) in calls and ("train", True) not in calls
    params = json.loads(frame.loc[frame["tuning"] == "blind", "params"].iloc[0])
    assert params["tuned_on"] == "train:second_realisation"
    calls.clear()
    frame = evaluate(path, filters=["gaussian"], tuning="blind-clean", out_dir=tmp_path / "b")
    assert ("train", True) in calls
    assert set(frame["tuning"]) == {"none", "blind-clean"}
    params = json.loads(frame.loc[frame["tuning"] == "blind-clean", "params"].iloc[0])
    assert params["tuned_on"] == "train:clean"
    assert "| gaussian (blind-clean) |" in (tmp_path / "b" / "summary.md").read_text()


def test_blind_clean_without_clean_raises(pair_of_files, tmp_path):
    path, _ = pair_of_files
    with pytest.raises(LowdoseInputError, match="blind-clean tuning needs clean"):
        evaluate(path, filters=["gaussian"], tuning="blind-clean", out_dir=tmp_path / "r")


def test_model_rows_carry_seed_and_selection_without_clean(
    pair_of_files, tiny_checkpoint, tmp_path
):
    torch = pytest.importorskip("torch")
    path, _ = pair_of_files
    checkpoint = torch.load(tiny_checkpoint, weights_only=False)
    checkpoint["hyper_parameters"]["meta"] = {"seed": 7, "val_reference": "realisation"}
    torch.save(checkpoint, tiny_checkpoint)
    frame = evaluate(path, models=[tiny_checkpoint], filters=[], out_dir=tmp_path / "r")
    rows = frame[frame["method"] == "n2n-mse"]
    assert (rows["seed"] == 7).all() and (rows["selection"] == "clean-free").all()
    assert rows["psnr_db"].isna().all() and rows["umse"].notna().all()
    (row,) = [r for r in summarize(frame) if r["method"] == "n2n-mse"]
    assert row["selection"] == "clean-free" and row["n_seeds"] == 1


def test_summary_states_mean_and_sd_over_seeds(pair_of_files, tmp_path):
    path, _ = pair_of_files
    frame = evaluate(path, filters=[], tuning="blind", out_dir=tmp_path / "r")
    runs = []
    for seed, shift in ((1, 1.0), (2, 2.0)):
        run = frame.assign(method="n2n-mse", model="unet", seed=seed)
        run["umse"] = run["umse"] / 10 ** (shift / 10)  # shift dB of uPSNR per seed
        runs.append(run)
    seeded = pd.concat([frame, *runs], ignore_index=True)
    seeded["psnr_db"] = 30.0 + seeded["seed"].clip(lower=0)
    text = summary_markdown(seeded, read_attrs(path), clean_read=True)
    assert "n2n-mse (unet): 2 seeds, PSNR 31.50 ± 0.71 dB" in text
    differences = {d.method: d for d in paired_table(seeded, "noisy")}
    assert differences["n2n-mse (unet)"].mean_db == pytest.approx(1.5)
    assert differences["n2n-mse (unet)"].n_seeds == 2


def test_upsnr_counts_only_the_field_of_view(make_tiny_dataset, tmp_path):
    import h5py

    path = make_tiny_dataset(name="fov.h5", with_clean=False, n_realisations=2)
    with h5py.File(path, "r+") as handle:
        images, _, height, width = handle["noisy"].shape
        rows, cols = np.mgrid[0:height, 0:width]
        disc = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < (0.4 * height) ** 2
        noisy = handle["noisy"][...]
        noisy[:, :, ~disc] = 0.0  # padding: constant, identical in both realisations
        handle["noisy"][...] = noisy
        handle.create_dataset(
            "fov", data=np.broadcast_to(disc, (images, height, width)), dtype="u1"
        )
    results = evaluate(
        path, models=(), filters=("gaussian",), tuning="blind", out_dir=tmp_path / "r"
    )
    test = testset.read_test_set(path)
    noisy = test.noisy.astype(np.float64)
    y1, y2 = noisy[:, 0][:, disc], noisy[:, 1][:, disc]  # (I, P) inside only
    expected = np.mean((y1 - y2) ** 2, axis=1) - np.var(y1 - y2, axis=1, ddof=1) / 2
    noisy_rows = results[results["method"] == "noisy"].sort_values("image_index")
    assert np.allclose(noisy_rows["umse"].to_numpy(), expected, rtol=1e-6, atol=1e-12)
    # unmasked, the noiseless padding would have pulled the noise variance (and uMSE) down
    whole = np.var(test.noisy[:, 0] - test.noisy[:, 1], axis=(1, 2), ddof=1) / 2
    assert np.all(whole < np.var(y1 - y2, axis=1, ddof=1) / 2)


def test_region_tiles_of_one_image_are_one_object_in_the_results(make_tiny_dataset, tmp_path):
    import h5py

    from lowdose.data.split_plan import source_object

    assert source_object("P1:img0:region-r1c2") == source_object("P1:slab-test") == "P1"
    assert source_object("img:region") == "img:region"  # not a split unit's name
    path = make_tiny_dataset(name="tiles.h5", n_objects=3, images_per_object=2)
    with h5py.File(path, "r+") as handle:  # every image a tile of one slice of patient P1
        tiles = [f"P1:img0:region-r{k}c0" for k in range(len(handle["object_id"]))]
        del handle["object_id"]
        handle.create_dataset("object_id", data=np.array(tiles, dtype="S"))
    results = evaluate(path, models=(), filters=(), out_dir=tmp_path / "r")
    assert set(results["object_id"]) == {"P1"}  # 2 test tiles, 1 object: no CI over objects
