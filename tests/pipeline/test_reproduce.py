"""The experiment runner end to end on a tiny X-ray experiment: stages run, cache, and recompute.

The tiny experiment trains each network at two seeds (``seeds: 2``), so the seed folders, the
evaluation of every seed and the sweep of the first seed are all exercised.
"""

import json

import pandas as pd
import pytest
import yaml

from lowdose.pipeline.config import load_experiment
from lowdose.pipeline.reproduce import first_checkpoint, run_experiment

TINY = {
    "name": "tiny",
    "paper_table": "III",
    "dataset": {
        "kind": "xray",
        "target_psnr_db": 29.91,
        "phantoms": 4,
        "angles": 4,
        "size": 64,
        "realisations": 2,
    },
    "models": [
        {"name": "n2n-mse", "mode": "n2n", "loss": "mse"},
        {"name": "n2c-mse", "mode": "n2c", "loss": "mse"},
    ],
    "train": {
        "width": 8,
        "residual": True,
        "patch": 32,
        "batch_size": 8,
        "epochs": 1,
        "samples_per_epoch": 32,
        "threads": 1,
        "quiet": True,
    },
    "seeds": 2,
    "evaluate": {"filters": ["gaussian"], "tuning": "both"},
    "sweep": {
        "models": ["n2n-mse", "n2c-mse"],
        "psnr_range_db": [10, 40],
        "levels": 3,
        "images": 2,
        "filters": ["gaussian"],
    },
}


def _write(tmp_path, config: dict):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_experiment(path, "quick")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reproduce")
    lines: list[str] = []
    out = run_experiment(_write(tmp_path, TINY), tmp_path / "run", log=lines.append)
    return tmp_path, out, lines


def test_every_stage_writes_its_outputs(finished_run):
    _, out, _ = finished_run
    results = pd.read_csv(out / "results" / "results.csv")
    methods = set(results["method"])
    assert {"noisy", "gaussian"} <= methods
    assert len([m for m in methods if m.startswith("n2")]) == 2  # both trained networks
    assert set(results.loc[results["method"] == "gaussian", "tuning"]) == {"oracle", "blind"}
    sweep = pd.read_csv(out / "sweep" / "sweep.csv")
    assert sweep["noise_level"].nunique() == 3
    # the sweep's achieved input PSNRs span the requested range (within the noise of 2 images)
    means = sweep.groupby("noise_level")["input_psnr_db"].mean().sort_values()
    assert means.iloc[0] == pytest.approx(10, abs=1.0)
    assert means.iloc[-1] == pytest.approx(40, abs=1.0)
    info = json.loads((out / "experiment.json").read_text())
    assert info["wall_times_s"]["total_s"] > 0 and info["environment"]["torch"]


def test_each_model_is_trained_at_every_seed_and_evaluated_at_all(finished_run):
    import torch

    _, out, _ = finished_run
    for model in ("n2n-mse", "n2c-mse"):
        runs = sorted(p.name for p in (out / "train" / model).iterdir())
        assert runs == ["seed0", "seed1"]
        weights = [
            torch.load(out / "train" / model / run / "best.ckpt", map_location="cpu")["state_dict"]
            for run in runs
        ]
        assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    results = pd.read_csv(out / "results" / "results.csv")
    nets = results[results["method"].str.startswith("n2")]
    used = {json.loads(p)["checkpoint"].split("/")[-2] for p in nets["params"]}
    assert used == {"seed0", "seed1"}  # every seed's checkpoint was evaluated
    others = results.drop(nets.index)  # each row says which seed it is (-1: not a network)
    assert set(nets["seed"]) == {0, 1} and set(others["seed"]) == {-1}
    info = json.loads((out / "experiment.json").read_text())
    assert info["config"]["seeds"] == 2
    assert first_checkpoint(out, "n2n-mse") == out / "train" / "n2n-mse" / "seed0" / "best.ckpt"


def test_first_checkpoint_is_the_lowest_finished_seed(tmp_path):
    for seed in (10, 2, 3):
        (tmp_path / "train" / "m" / f"seed{seed}").mkdir(parents=True)
    for seed in (10, 3):
        (tmp_path / "train" / "m" / f"seed{seed}" / "best.ckpt").write_bytes(b"x")
    assert first_checkpoint(tmp_path, "m") == tmp_path / "train" / "m" / "seed3" / "best.ckpt"
    assert first_checkpoint(tmp_path, "other") is None


def test_rerun_skips_finished_stages(finished_run):
    tmp_path, out, _ = finished_run
    best = out / "train" / "n2n-mse" / "seed1" / "best.ckpt"
    before = best.stat().st_mtime_ns
    lines: list[str] = []
    run_experiment(_write(tmp_path, TINY), tmp_path / "run", log=lines.append)
    text = "\n".join(lines)
    stages = ("dataset: cached", "evaluate: cached", "sweep: cached")
    stages += tuple(f"train {m} (seed {s}): cached" for m in ("n2n-mse", "n2c-mse") for s in (0, 1))
    for stage in stages:
        assert stage in text
    assert not [line for line in lines if "cached" not in line]  # nothing else ran
    assert best.stat().st_mtime_ns == before


def test_changed_evaluation_recomputes_only_that_stage(finished_run):
    tmp_path, out, _ = finished_run
    changed = {**TINY, "evaluate": {"filters": ["gaussian", "median"], "tuning": "oracle"}}
    lines: list[str] = []
    run_experiment(_write(tmp_path, changed), tmp_path / "run", log=lines.append)
    text = "\n".join(lines)
    assert "train n2n-mse (seed 1): cached" in text and "evaluate: cached" not in text
    results = pd.read_csv(out / "results" / "results.csv")
    assert "median" in set(results["method"]) and set(results["tuning"]) <= {"oracle", "none"}
    assert (out / "results.stale").is_dir()  # the old results are kept aside, not lost


def test_interrupted_training_resumes_from_last_checkpoint(finished_run):
    tmp_path, out, _ = finished_run
    marker = out / "train" / "n2c-mse" / "seed1" / "stage.json"
    state = json.loads(marker.read_text())
    marker.write_text(json.dumps({**state, "done": False}))  # as if killed before it finished
    lines: list[str] = []
    run_experiment(_write(tmp_path, TINY), tmp_path / "run", log=lines.append)
    assert "train n2c-mse (seed 1): resuming interrupted run" in "\n".join(lines)
    assert json.loads(marker.read_text())["done"] is True


def test_ct_source_is_found_without_the_package_location(tmp_path, monkeypatch):
    from lowdose.core.errors import LowdoseInputError
    from lowdose.pipeline.dataset_stage import resolve_ct_source

    source = "../shared/data/ct/tcga-luad"  # what the CT experiment files name
    for name in ("LOWDOSE_CT_SOURCE", "LOWDOSE_CT_DATA"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert resolve_ct_source("phantom") == "phantom"  # the demo's CT: no variable needed
    with pytest.raises(LowdoseInputError, match="LOWDOSE_CT_DATA=/path/to/tcga-luad") as info:
        resolve_ct_source(source)
    assert "\n" not in str(info.value)
    monkeypatch.setenv("LOWDOSE_CT_DATA", str(tmp_path / "ct"))
    assert resolve_ct_source(source) == tmp_path / "ct"
    found = tmp_path / "shared" / "data" / "ct" / "tcga-luad"
    found.mkdir(parents=True)  # the source path relative to the working folder wins
    assert resolve_ct_source(source).resolve() == found
    monkeypatch.setenv("LOWDOSE_CT_SOURCE", str(tmp_path / "other"))  # overrides the file
    assert resolve_ct_source(source) == tmp_path / "other"
