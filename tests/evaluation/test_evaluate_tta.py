"""``evaluate(..., tta=8)`` / ``lowdose evaluate --tta 8``: each model plain and as its
self-ensemble, with ``tta`` and ``seconds_per_image`` in the rows' params; view subsets too."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer.testing

import lowdose.cli
import lowdose.cli.evaluate_cmd  # noqa: F401  registers `lowdose evaluate`
from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.writer import write_dataset
from lowdose.evaluation.evaluate import evaluate
from lowdose.evaluation.methods import model_methods
from lowdose.evaluation.testset import read_test_set
from lowdose.inference.predict import predict
from lowdose.models.checkpoint import load_model
from lowdose.report.analysis import is_model_method, summary_table


def test_tta8_adds_the_ensemble_rows_with_their_cost(tiny_dataset, tiny_checkpoint, tmp_path):
    frame = evaluate(
        tiny_dataset,
        models=[tiny_checkpoint],
        filters=["gaussian"],
        tuning="oracle",
        out_dir=tmp_path / "r",
        tta=8,
    )
    assert frame.groupby("method").size().to_dict() == {
        "noisy": 2,
        "n2n-mse": 2,
        "n2n-mse-tta8": 2,
        "gaussian": 2,
    }
    for method, tta in (("n2n-mse", 1), ("n2n-mse-tta8", 8)):
        rows = frame[frame["method"] == method]
        assert (rows["model"] == "unet-w4").all() and (rows["tuning"] == "none").all()
        assert np.isfinite(rows["psnr_db"]).all()
        for params in map(json.loads, rows["params"]):
            assert params["tta"] == tta and params["checkpoint"] == str(tiny_checkpoint)
            assert 0 < params["seconds_per_image"] < 60
    plain = frame[frame["method"] == "n2n-mse"]["psnr_db"].to_numpy()
    ensemble = frame[frame["method"] == "n2n-mse-tta8"]["psnr_db"].to_numpy()
    assert np.abs(plain - ensemble).max() > 1e-3  # the untrained U-Net is not equivariant
    for params in frame.loc[frame["method"] == "gaussian", "params"]:
        assert "tta" not in json.loads(params)  # filters are not networks
    with np.load(tmp_path / "r" / "panels.npz") as panels:
        assert panels["n2n-mse-tta8"].shape == panels["n2n-mse"].shape
        assert not np.allclose(panels["n2n-mse-tta8"], panels["n2n-mse"])
    # the report orders the ensemble right after its model and counts it as a network
    assert list(summary_table(frame)["method"]) == ["noisy", "n2n-mse", "n2n-mse-tta8", "gaussian"]
    assert is_model_method("n2n-mse-tta8")


def test_tta1_runs_each_model_once_and_records_it(tiny_dataset, tiny_checkpoint, tmp_path):
    frame = evaluate(
        tiny_dataset, models=[tiny_checkpoint], filters=[], tuning="oracle", out_dir=tmp_path
    )
    assert set(frame["method"]) == {"noisy", "n2n-mse"}
    for params in map(json.loads, frame.loc[frame["method"] == "n2n-mse", "params"]):
        assert params["tta"] == 1 and params["seconds_per_image"] > 0


def test_bad_tta_raises_before_any_work(tiny_dataset, tiny_checkpoint, tmp_path):
    with pytest.raises(LowdoseInputError, match="--tta 3") as info:
        evaluate(tiny_dataset, models=[tiny_checkpoint], filters=[], out_dir=tmp_path / "r", tta=3)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()


def test_cli_tta_option(tiny_dataset, tiny_checkpoint, tmp_path):
    runner = typer.testing.CliRunner()
    base = ["evaluate", "--data", str(tiny_dataset), "--model", str(tiny_checkpoint)]
    base += ["--filters", "", "--tuning", "oracle"]
    bad = runner.invoke(
        lowdose.cli.app,
        [*base, "--out", str(tmp_path / "bad"), "--tta", "3"],
        env={"COLUMNS": "400"},
    )
    assert bad.exit_code == 1 and "--tta 3" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1, bad.output
    assert not (tmp_path / "bad").exists()
    good = runner.invoke(
        lowdose.cli.app,
        [*base, "--out", str(tmp_path / "good"), "--tta", "8"],
        env={"COLUMNS": "400"},
    )
    assert good.exit_code == 0, good.output
    assert "n2n-mse-tta8" in good.output
    assert "n2n-mse-tta8" in (tmp_path / "good" / "results.csv").read_text()


def _view_subset_file(path):
    """4 smooth 40x48 images (non-square); two view subsets of one scan each; 2 in test."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:40, :48] / 48.0
    clean = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (x + k / 4)) * y for k in range(4)])
    noisy = clean[:, None] + 0.07 * rng.standard_normal((4, 2, 40, 48))
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="sinogram",
        noise_level=1.0,
        scaling_rule="none",
        raw_units="",
        seed=0,
        description="test",
    ).with_extra(realisations_are="view_subsets", view_subsets=2)
    return write_dataset(
        path,
        clean=clean.astype(np.float32),
        noisy=noisy.astype(np.float32),
        object_id=np.array([f"o{k}" for k in range(4)]),
        split=np.array(["train", "val", "test", "test"]),
        scale=np.ones(4),
        attrs=attrs,
    )


def test_view_subsets_are_each_self_ensembled_then_averaged(tmp_path, tiny_checkpoint):
    test = read_test_set(_view_subset_file(tmp_path / "v.h5"))
    assert test.view_subsets == 2
    plain, ensemble = model_methods(test, [tiny_checkpoint], "cpu", None, tta=8)
    assert (plain.method, ensemble.method) == ("n2n-mse", "n2n-mse-tta8")
    network = load_model(tiny_checkpoint)[0]
    halves = [predict(network, test.noisy[:, k], tta=8) for k in range(2)]
    np.testing.assert_allclose(ensemble.outputs, (halves[0] + halves[1]) / 2, atol=1e-5)
    assert np.abs(ensemble.outputs - plain.outputs).max() > 1e-3
    assert ensemble.params[0]["tta"] == 8 and plain.params[0]["tta"] == 1
