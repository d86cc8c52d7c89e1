"""Every validation scores the identity too; a run whose best model is below it says so.

The identity is the noisy validation input returned unchanged, scored exactly like the model
(``val_identity_db``). These tiny real trainings (width 4, a few steps on ``tiny_dataset``)
check that number against an independent computation, and force a model below it with a
learning rate far too high for the network (as the diverged ``--budget`` run did).
"""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from lowdose.core.metrics import pair_noise_variance_all_pixels, unbiased_mse, upsnr_from_umse
from lowdose.data.dataset import load_split
from lowdose.models.checkpoint import load_model
from lowdose.training.config import make_train_config
from lowdose.training.run import train

TINY = dict(
    width=4,
    patch=32,
    batch_size=4,
    max_steps=4,
    validations=2,
    threads=1,
    deterministic=True,
    quiet=True,
    seed=0,
    accelerator="cpu",
)
# Adam moves every weight by ~lr per step: at 0.1 the tiny net's outputs are finite but far
# worse than its input (tens of dB below it); at 10 they are no longer finite (-inf dB)
TOO_HIGH_LR, DIVERGING_LR = 0.1, 10.0


def _rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_identity_score_is_the_noisy_inputs_upsnr_on_the_validation_pairs(
    tiny_dataset, tmp_path
):
    run = train(make_train_config({**TINY, "data": tiny_dataset, "out": tmp_path / "run"}))
    val = load_split(tiny_dataset, "val")  # the test's own computation: realisations 0 and 1
    first, second = val.noisy[:, 0], val.noisy[:, 1]
    variance = pair_noise_variance_all_pixels(first, second)
    umse = np.concatenate(
        [
            unbiased_mse(second, first, noise_variance=variance),
            unbiased_mse(first, second, noise_variance=variance),
        ]
    )
    expected_db = float(upsnr_from_umse(np.mean(umse), data_range=1.0))
    rows = _rows(run.run_dir)
    assert len(rows) == TINY["validations"]
    for row in rows:  # the same images every validation: the same number
        assert float(row["val_identity_db"]) == pytest.approx(expected_db, abs=1e-3)
    assert run.scores.identity_db == pytest.approx(expected_db, abs=1e-3)
    assert run.scores.monitor == "val_upsnr_db"


@pytest.mark.parametrize("lr", [TOO_HIGH_LR, DIVERGING_LR])
def test_a_diverged_n2n_training_warns_in_one_line_and_records_both_scores(
    tiny_dataset, tmp_path, invoke_cli, lr
):
    run_dir = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(tiny_dataset),
        "--mode",
        "n2n",
        "--out",
        str(run_dir),
        "--lr",
        str(lr),
        "--schedule",
        "cosine",
    ]
    for key, value in TINY.items():
        if key in ("deterministic", "quiet"):
            args.append(f"--{key}")
        elif key != "accelerator":
            args += [f"--{key.replace('_', '-')}", str(value)]
    result = invoke_cli(args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1, result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())["validation_scores"]
    assert manifest["monitor"] == "val_upsnr_db"
    assert manifest["model_db"] < manifest["identity_db"]
    assert f"{manifest['model_db']:.2f} dB" in lines[0]
    assert f"{manifest['identity_db']:.2f} dB" in lines[0] and str(run_dir) in lines[0]
    # best.ckpt is the best validation, not the last weights, and carries the same scores
    rows = _rows(run_dir)
    assert manifest["model_db"] == pytest.approx(max(float(r["val_upsnr_db"]) for r in rows))
    _, meta = load_model(run_dir / "best.ckpt")
    assert meta.scores.to_dict() == manifest and meta.scores.worse_than_identity


@pytest.mark.parametrize("mode", ["nb2nb", "n2v"])
def test_single_acquisition_modes_score_the_identity_where_it_compares(
    tiny_dataset, tmp_path, mode
):
    settings = {**TINY, "patch": 64, "mode": mode, "lr": TOO_HIGH_LR, "schedule": "cosine"}
    run = train(make_train_config({**settings, "data": tiny_dataset, "out": tmp_path / mode}))
    manifest = json.loads((run.run_dir / "manifest.json").read_text())["validation_scores"]
    assert manifest["monitor"] == "val_self_db" and np.isfinite(run.scores.model_db)
    if mode == "nb2nb":  # the identity's |g1 y - g2 y|^2 on the same masks: comparable
        assert run.scores.worse_than_identity and run.scores.warning("run") is not None
        assert manifest["identity_db"] == pytest.approx(run.scores.identity_db)
    else:  # a blind spot makes the identity a neighbour copy: not comparable, never a warning
        assert manifest["identity_db"] is None and run.scores.warning("run") is None


def test_view_split_halves_select_by_the_raw_pair_score(tiny_dataset, tmp_path):
    # Halves of one scan from disjoint views differ by streaks too: their Var(y1 - y2) / 2
    # over-reads the noise, so uMSE can go negative; selection uses the raw pair MSE instead.
    data = tmp_path / "halves.h5"
    shutil.copy(tiny_dataset, data)
    with h5py.File(data, "r+") as handle:
        handle.attrs["split_views"] = 2
    run = train(make_train_config({**TINY, "data": data, "out": tmp_path / "run"}))
    assert run.monitor == run.scores.monitor == "val_pair_db"
    val = load_split(data, "val")
    first, second = val.noisy[:, 0].astype(np.float64), val.noisy[:, 1].astype(np.float64)
    raw_mse = np.mean((first - second) ** 2)  # both directions give the same raw MSE
    expected_db = 10 * np.log10(1.0 / raw_mse)
    rows = _rows(run.run_dir)
    assert all(float(r["val_identity_db"]) == pytest.approx(expected_db, abs=1e-3) for r in rows)
    best = max(float(r["val_pair_db"]) for r in rows)
    assert run.best_val_psnr_db == pytest.approx(best, abs=1e-4)
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["metrics"]["monitor"] == "val_pair_db"


def test_independent_pairs_keep_upsnr_and_also_log_the_pair_score(tiny_dataset, tmp_path):
    run = train(make_train_config({**TINY, "data": tiny_dataset, "out": tmp_path / "run"}))
    rows = _rows(run.run_dir)
    assert run.monitor == "val_upsnr_db"
    assert all(np.isfinite(float(r["val_pair_db"])) for r in rows)
    # the raw pair PSNR sits below the unbiased one: it still holds the target's noise
    assert all(float(r["val_pair_db"]) < float(r["val_upsnr_db"]) for r in rows)


def test_a_residual_net_that_never_beats_its_input_returns_its_input(tiny_dataset, tmp_path):
    # the residual net's step-0 state is the identity: a run that ends below it keeps that state
    settings = {**TINY, "residual": True, "lr": TOO_HIGH_LR, "schedule": "cosine"}
    run = train(make_train_config({**settings, "data": tiny_dataset, "out": tmp_path / "run"}))
    rows = _rows(run.run_dir)
    trained = max(float(r["val_upsnr_db"]) for r in rows)
    assert trained < float(rows[0]["val_identity_db"])  # training made images worse ...
    scores = run.scores
    assert scores.fell_back_to_identity and scores.trained_db == pytest.approx(trained)
    assert scores.model_db == scores.identity_db and not scores.worse_than_identity
    network, meta = load_model(run.best_checkpoint)  # ... so best.ckpt returns the input
    assert meta.scores == scores
    noisy = load_split(tiny_dataset, "val").noisy[:2, :1].astype(np.float32)  # (2, 1, H, W)
    with torch.no_grad():
        output = network(torch.from_numpy(noisy)).numpy()
    np.testing.assert_array_equal(output, noisy)
    manifest = json.loads((run.run_dir / "manifest.json").read_text())["validation_scores"]
    assert manifest["trained_db"] == pytest.approx(trained)
    assert "identity" in scores.warning("run")
