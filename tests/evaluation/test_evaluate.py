"""Evaluation: tidy rows per image x method, oracle >= blind, files written, CT HU window, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import typer.testing

import lowdose.cli
import lowdose.cli.evaluate_cmd  # noqa: F401  registers `lowdose evaluate`
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, ssim_wang
from lowdose.data.results import summarize
from lowdose.data.writer import write_dataset
from lowdose.evaluation.evaluate import evaluate
from lowdose.models.unet import UNet

CONTRACT_COLUMNS = (
    "dataset dataset_sha256 image_index object_id method model tuning params noise_level "
    "input_psnr_db psnr_db ssim psnr_hu_window_db hu_window data_range scaling_rule clipped"
).split()
# Small grids keep the suite fast; the default grids are exercised in test_tuning.py.
FAST_GRIDS = {"bilateral": {"sigma_space": (1.0, 2.0), "sigma_color": (0.02, 0.08, 0.32)}}


@pytest.fixture
def results_gmb(tiny_dataset, tmp_path):
    out = tmp_path / "results"
    frame = evaluate(
        tiny_dataset,
        filters=["gaussian", "median", "bilateral"],
        tuning="both",
        out_dir=out,
        grids=FAST_GRIDS,
    )
    return frame, out


def test_one_row_per_image_and_method(results_gmb):
    frame, _ = results_gmb
    assert set(CONTRACT_COLUMNS) <= set(frame.columns)
    assert len(frame) == 2 * (1 + 3 * 2)  # 2 test images x (noisy + 3 filters x 2 tunings)
    counts = frame.groupby(["method", "tuning"]).size()
    assert (counts == 2).all()
    assert set(frame["tuning"]) == {"none", "oracle", "blind"}
    assert (frame["seed"] == -1).all() and (frame["selection"] == "").all()
    assert np.isfinite(frame["upsnr_db"]).all()  # N = 3: uPSNR for every method
    assert frame["psnr_hu_soft_db"].isna().all() and frame["ssim_wang_hu_window"].isna().all()
    for params in frame.loc[frame["tuning"] == "blind", "params"]:
        assert json.loads(params)["tuned_on"] == "train:second_realisation"
    assert (frame["data_range"] == 1.0).all() and not frame["clipped"].any()
    assert frame["psnr_hu_window_db"].isna().all()  # X-ray: no HU window
    noisy = frame[frame["method"] == "noisy"]
    np.testing.assert_allclose(noisy["psnr_db"], noisy["input_psnr_db"])
    for params in frame.loc[frame["tuning"] == "oracle", "params"]:
        assert json.loads(params)  # the chosen setting is recorded
        assert json.loads(params)["seconds_per_image"] >= 0  # and what it cost


def test_oracle_at_least_blind_per_image(results_gmb):
    frame, _ = results_gmb
    for name in ("gaussian", "median", "bilateral"):
        rows = frame[frame["method"] == name].pivot(
            index="image_index", columns="tuning", values="psnr_db"
        )
        assert (rows["oracle"] >= rows["blind"] - 0.01).all(), name
        assert (rows["oracle"] > frame[frame["method"] == "noisy"]["psnr_db"].max()).all()


def test_files_written_and_consistent(results_gmb):
    frame, out = results_gmb
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    assert len(csv) == len(parquet) == len(frame)
    np.testing.assert_allclose(parquet["psnr_db"], frame["psnr_db"])
    summary = (out / "summary.md").read_text()
    assert "| gaussian (oracle) |" in summary and "| median (blind) |" in summary
    assert "uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2)/2" in summary
    assert "## Paired: method - noisy (PSNR)" in summary
    with np.load(out / "panels.npz") as panels:
        assert {"clean", "noisy", "index", "psnr", "gaussian", "median", "bilateral"} <= set(
            panels.files
        )
        assert panels["gaussian"].shape == panels["clean"].shape


def test_summary_rows_have_confidence_intervals(results_gmb):
    frame, _ = results_gmb
    rows = summarize(frame)
    assert [r["label"] for r in rows][:3] == ["noisy", "gaussian (oracle)", "gaussian (blind)"]
    for row in rows:
        values = frame[(frame["method"] == row["method"]) & (frame["tuning"] == row["tuning"])]
        assert row["psnr_db"] == pytest.approx(values["psnr_db"].mean())
        assert row["psnr_ci95_db"] > 0 and row["ssim_ci95"] >= 0


def test_noise_estimate_beside_true_variance(results_gmb):
    frame, _ = results_gmb
    noisy = frame[frame["method"] == "noisy"]
    np.testing.assert_allclose(noisy["noise_var_estimate"], noisy["noise_var_true"], rtol=0.1)


def _write_ct(path, *, rng):
    clean_hu = np.array([-300.0, 0.0, 100.0])[:, None, None] + np.zeros((3, 32, 32))
    clean_hu[:, 8:24, 8:24] += 300
    offset, divisor = 1024.0, 3000.0
    clean = ((clean_hu + offset) / divisor).astype(np.float32)
    noisy = (clean[:, None] + rng.normal(0, 0.02, (3, 2, 32, 32))).astype(np.float32)
    attrs = {
        "modality": "ct",
        "raw_units": "hu",
        "scaling_offset": offset,
        "scaling_rule": "dataset_max",
        "noise_model": "gaussian",
        "noise_level": 0.02,
    }
    return write_dataset(
        path,
        clean=clean,
        noisy=noisy,
        object_id=["a", "b", "c"],
        split=["train", "val", "test"],
        scale=np.full(3, divisor),
        attrs=attrs,
    )


def test_ct_reports_psnr_in_named_hu_window(tmp_path):
    path = _write_ct(tmp_path / "ct.h5", rng=np.random.default_rng(0))
    frame = evaluate(
        path, filters=["gaussian"], tuning="oracle", out_dir=tmp_path / "r", hu_window=(-500, 500)
    )
    assert (frame["hu_window"] == "-500..500").all()
    with pytest.importorskip("h5py").File(path) as handle:
        clean, noisy = handle["clean"][2], handle["noisy"][2, 0]
    to_hu = lambda x: np.clip(x.astype(np.float64) * 3000.0 - 1024.0, -500, 500)  # noqa: E731
    expected = psnr(to_hu(clean), to_hu(noisy), data_range=1000.0)
    row = frame[frame["method"] == "noisy"].iloc[0]
    assert row["psnr_hu_window_db"] == pytest.approx(expected)
    assert np.isfinite(frame["psnr_hu_window_db"]).all()
    soft = psnr(np.clip(to_hu(clean), -160, 240), np.clip(to_hu(noisy), -160, 240), data_range=400)
    assert row["psnr_hu_soft_db"] == pytest.approx(soft)
    wang = ssim_wang(to_hu(clean), to_hu(noisy), data_range=1000.0)
    assert row["ssim_wang_hu_window"] == pytest.approx(wang)
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "PSNR soft tissue (dB)" in summary and "SSIM Wang (HU window)" in summary


def test_without_clean_and_one_realisation_raises(make_tiny_dataset, tmp_path):
    path = make_tiny_dataset(with_clean=False, n_realisations=1, name="noclean1.h5")
    with pytest.raises(LowdoseInputError, match="no clean images") as error:
        evaluate(path, filters=["gaussian"], tuning="blind", out_dir=tmp_path / "r")
    assert "\n" not in str(error.value)


def test_without_clean_oracle_alone_raises_before_any_work(make_tiny_dataset, tmp_path):
    path = make_tiny_dataset(with_clean=False, name="noclean.h5")
    with pytest.raises(LowdoseInputError, match="oracle tuning needs clean"):
        evaluate(path, filters=["gaussian"], tuning="oracle", out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_blind_with_one_realisation_suggests_blind_clean(make_tiny_dataset, tmp_path):
    path = make_tiny_dataset(n_realisations=1, name="n1.h5")
    with pytest.raises(LowdoseInputError, match="blind-clean"):
        evaluate(path, filters=["gaussian"], tuning="blind", out_dir=tmp_path / "r")


def test_bad_tuning_and_filter_names_raise(tiny_dataset, tmp_path):
    with pytest.raises(LowdoseInputError, match="tuning"):
        evaluate(tiny_dataset, filters=[], tuning="best", out_dir=tmp_path)
    with pytest.raises(LowdoseInputError, match="unknown filter"):
        evaluate(tiny_dataset, filters=["wiener"], tuning="oracle", out_dir=tmp_path)


def test_model_checkpoint_is_evaluated(tiny_dataset, tiny_checkpoint, tmp_path):
    checkpoint = tiny_checkpoint
    frame = evaluate(
        tiny_dataset,
        models=[checkpoint.parent],
        filters=[],
        tuning="oracle",
        out_dir=tmp_path / "r",
    )
    rows = frame[frame["method"] == "n2n-mse"]
    assert (
        len(rows) == 2
        and (rows["model"] == UNet(width=4).name).all()
        and (rows["tuning"] == "none").all()
    )
    assert (rows["seed"] == -1).all() and (rows["selection"] == "").all()  # no meta recorded
    assert np.isfinite(rows["psnr_db"]).all()
    with np.load(tmp_path / "r" / "panels.npz") as panels:
        assert panels["n2n-mse"].shape == panels["clean"].shape


def test_cli_prints_table_and_writes(tiny_dataset, tmp_path):
    runner = typer.testing.CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        lowdose.cli.app,
        [
            "evaluate",
            "--data",
            str(tiny_dataset),
            "--filters",
            "gaussian",
            "--tuning",
            "oracle",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "gaussian (oracle)" in result.output and "PSNR" in result.output
    assert (out / "results.csv").is_file() and (out / "summary.md").is_file()
    bad = runner.invoke(
        lowdose.cli.app,
        ["evaluate", "--data", str(tiny_dataset), "--tuning", "best", "--out", str(out)],
    )
    assert bad.exit_code == 1 and "tuning" in bad.output
    assert not math.isnan(pd.read_csv(out / "results.csv")["psnr_db"].iloc[0])


def test_bm3d_and_nlm_through_oracle_and_blind_tuning(tiny_dataset, tmp_path):
    grids = {"bm3d": {"sigma": [0.02, 0.05, 0.1]}, "nlm": {"h": [0.02, 0.05, 0.1]}}
    frame = evaluate(
        tiny_dataset, filters=["bm3d", "nlm"], tuning="both", out_dir=tmp_path, grids=grids
    )
    noisy = frame[frame["method"] == "noisy"].set_index("image_index")["psnr_db"]
    for name in ("bm3d", "nlm"):
        rows = frame[frame["method"] == name].pivot(
            index="image_index", columns="tuning", values="psnr_db"
        )
        assert (rows["oracle"] >= rows["blind"] - 0.01).all(), name
        assert (rows["oracle"] > noisy.loc[rows.index]).all(), name
