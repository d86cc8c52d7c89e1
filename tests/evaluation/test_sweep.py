"""The sweep against clean: one labelled row per method x level x image; the `lowdose sweep` CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.experiments_cmd  # noqa: F401  (registers `lowdose sweep`)
from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import read_attrs
from lowdose.data.results import SWEEP_COLUMNS
from lowdose.evaluation.sweep import (
    default_targets_db,
    run_sweep,
    spread_over_objects,
    sweep_model,
    trained_sweep_models,
)


def test_models_are_labelled_in_one_place(tiny_dataset, tiny_checkpoint):
    (by_folder,) = trained_sweep_models(tiny_dataset, [tiny_checkpoint.parent])
    assert by_folder.label == "run" and by_folder.checkpoint == tiny_checkpoint
    achieved = read_attrs(tiny_dataset).achieved_psnr_db
    assert by_folder.trained_at_db == achieved or np.isnan(achieved)
    (named,) = trained_sweep_models(tiny_dataset, {"n2n-mse": tiny_checkpoint})
    assert named.label == "n2n-mse"
    foreign = sweep_model(tiny_checkpoint, trained_at_db=24.0, name="n2n-mse", experiment="ct24")
    assert (foreign.label, foreign.trained_at_db) == ("n2n-mse (ct24)", 24.0)


def test_run_sweep_rows_and_log(tiny_dataset, tiny_checkpoint):
    lines: list[str] = []
    models = trained_sweep_models(tiny_dataset, [tiny_checkpoint])
    table = run_sweep(
        tiny_dataset,
        models,
        targets_db=default_targets_db(15, 30, 2),
        filters=["gaussian"],
        n_images=1,
        log=lines.append,
    )
    assert tuple(table.columns) == SWEEP_COLUMNS
    assert len(table) == 2 * 2  # 2 levels x (model + gaussian) x 1 image
    assert set(table["method"]) == {"run", "gaussian"}
    assert set(table["tuning"]) == {"none", "oracle"}
    assert len(lines) == 2 and lines[0].startswith("level 1/2: input ")


def test_sweep_runs_bm3d_given_the_true_noise_spectrum(tiny_dataset):
    pytest.importorskip("bm3d")
    table = run_sweep(tiny_dataset, [], targets_db=[20.0], filters=["bm3d-psd"], n_images=1)
    (row,) = table.itertuples()
    assert (row.method, row.tuning) == ("bm3d", "oracle-psd")
    assert row.gain_db > 3.0  # the oracle strength never loses to the identity it can approach


def test_cli_sweep_writes_the_table(tiny_dataset, tiny_checkpoint, tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        lowdose.cli.app,
        [
            "sweep",
            "--data",
            str(tiny_dataset),
            "--model",
            str(tiny_checkpoint.parent),
            "--out",
            str(out),
            "--psnr-range",
            "15:30",
            "--levels",
            "2",
            "--images",
            "1",
            "--filters",
            "gaussian",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sweep.csv")
    assert tuple(table.columns) == SWEEP_COLUMNS and set(table["method"]) == {"run", "gaussian"}


def test_sweep_images_are_spread_over_the_test_objects(make_tiny_dataset):
    path = make_tiny_dataset(n_objects=9, images_per_object=3, n_realisations=2)
    # test objects obj2, obj5, obj8 (3 images each, rows 6-8, 15-17, 24-26); 4 of 9 images
    tables = [
        run_sweep(path, [], targets_db=[25.0], filters=["gaussian"], n_images=4) for _ in range(2)
    ]
    chosen = tables[0]["image_index"].tolist()
    assert chosen == tables[1]["image_index"].tolist()  # deterministic
    assert sorted({index // 9 for index in chosen}) == [0, 1, 2]  # every test object
    assert chosen == [6, 8, 16, 25]  # obj2 two (strata centres), obj5 and obj8 their middle


def test_spread_round_robins_objects_then_spaces_images_evenly():
    ids = ["p1"] * 6 + ["p0"] * 2 + ["p2"] * 4
    assert spread_over_objects(ids, 3).tolist() == [3, 7, 10]  # the middle image of each
    assert spread_over_objects(ids, 5).tolist() == [1, 4, 6, 7, 10]  # p1, p0 get the 2nd turns
    assert spread_over_objects(ids, 9).tolist() == [0, 2, 3, 5, 6, 7, 8, 10, 11]
    assert spread_over_objects(ids, None).tolist() == list(range(12))
    assert spread_over_objects(ids, 50).tolist() == list(range(12))
    with pytest.raises(LowdoseInputError, match="n_images"):
        spread_over_objects(ids, 0)
