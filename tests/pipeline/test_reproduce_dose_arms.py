"""A dose-based CT experiment with arms end to end: two scans with the QA-phantom stage, one
split scan (view subsets), the report's image-quality section."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from lowdose.pipeline.config import load_experiments
from lowdose.pipeline.reproduce import run_experiment
from lowdose.report.build import write_report

TINY_DOSE = {
    "name": "dose",
    "dataset": {
        "kind": "ct",
        "source": "phantom",
        "noise": "sinogram",
        "photons_per_ray": 2e4,
        "size": 64,
        "realisations": 2,
    },
    "models": [{"name": "n2n-mse", "mode": "n2n", "loss": "mse"}],
    "train": {
        "width": 4,
        "residual": True,
        "patch": 32,
        "batch_size": 4,
        "epochs": 1,
        "samples_per_epoch": 8,
        "threads": 1,
        "quiet": True,
    },
    "evaluate": {"filters": ["nlm"], "tuning": "blind-sigma"},
    "sweep": {"enabled": False},
    "iq": {"enabled": True, "realisations": 3, "size": 96, "filters": ["nlm"]},
    "arms": {
        "two": {},
        "split": {
            "dataset": {"view_subsets": 2},
            "evaluate": {"filters": []},
            "iq": {"enabled": False},
        },
    },
}


@pytest.fixture(scope="module")
def dose_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dose")
    path = tmp_path / "dose.yaml"
    path.write_text(yaml.safe_dump(TINY_DOSE))
    root, lines = tmp_path / "run", []
    for config in load_experiments(path, "quick", seeds=1):
        run_experiment(config, root, log=lines.append)
    return root, lines


def test_both_arms_run_and_compare_on_the_same_first_scan(dose_run):
    root, _ = dose_run
    two = pd.read_csv(root / "dose-two" / "results" / "results.csv")
    split = pd.read_csv(root / "dose-split" / "results" / "results.csv")
    assert {"noisy", "n2n-mse", "nlm"} <= set(two["method"])
    assert set(split["method"]) == {"noisy", "n2n-mse"}
    noisy = [
        frame[frame["method"] == "noisy"].set_index("image_index")["psnr_db"]
        for frame in (two, split)
    ]
    pd.testing.assert_series_equal(noisy[0], noisy[1], atol=1e-3)  # same scan, same input
    assert split["upsnr_db"].isna().all()  # the halves are part of the input
    attrs = json.loads((root / "dose-split" / "experiment.json").read_text())["dataset_attrs"]
    assert attrs["realisations_are"] == "view_subsets"


def test_the_two_scan_arm_measures_image_quality_on_the_phantom(dose_run):
    root, lines = dose_run
    iq = pd.read_csv(root / "dose-two" / "iq" / "iq.csv")
    assert {"noisy", "n2n-mse", "nlm-blind"} <= set(iq["method"])
    noisy = iq[(iq["method"] == "noisy") & (iq["module"] == "uniform")]
    assert np.isfinite(noisy["sigma_hu"]).all() and (noisy["sigma_hu"] > 0).all()
    assert not (root / "dose-split" / "iq").exists()
    assert any("QA phantom" in line for line in lines)
    html = write_report(root).html.read_text()
    assert "Image quality" in html and "dose-two" in html
