"""Experiments with arms (ct-dose), dose-based dataset specs, and dataset keys that stay put."""

from __future__ import annotations

import pytest
import yaml

from lowdose.core.errors import LowdoseInputError
from lowdose.pipeline.cache import stage_key
from lowdose.pipeline.config import load_experiment, load_experiments
from lowdose.pipeline.dataset_stage import dataset_key

BASE = {
    "name": "dose",
    "dataset": {"kind": "ct", "noise": "sinogram", "source": "phantom", "dose_fraction": 0.25},
    "models": [{"name": "n2n-mse", "mode": "n2n", "loss": "mse"}],
    "arms": {
        "quarter": {},
        "tenth": {"dataset": {"dose_fraction": 0.1}},
        "tenth-split": {"dataset": {"dose_fraction": 0.1, "view_subsets": 2}},
    },
    "scales": {"medium": {"dataset": {"size": 128}}},
}


def _write(tmp_path, spec) -> str:
    path = tmp_path / "dose.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_each_arm_is_an_experiment_with_its_overrides_and_the_scale(tmp_path):
    configs = load_experiments(_write(tmp_path, BASE), "medium")
    assert [c.name for c in configs] == ["dose-quarter", "dose-tenth", "dose-tenth-split"]
    assert [c.dataset.dose_fraction for c in configs] == [0.25, 0.1, 0.1]
    assert [c.dataset.view_subsets for c in configs] == [None, None, 2]
    assert {c.dataset.size for c in configs} == {128}
    with pytest.raises(LowdoseInputError, match="3 arms"):
        load_experiment(_write(tmp_path, BASE), "quick")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"photons_per_ray": 1e4}, "not both"),
        ({"target_psnr_db": 24.0}, "exclude each other"),
        ({"noise": "awgn"}, "need kind ct with noise sinogram"),
        ({"dose_fraction": None}, "give target_psnr_db"),
        ({"dose_fraction": -1.0}, "greater than 0"),
    ],
)
def test_bad_dose_specs_name_the_arm_and_the_fix(tmp_path, override, message):
    spec = {**BASE, "arms": {"bad": {"dataset": override}}}
    with pytest.raises(LowdoseInputError, match=message) as info:
        load_experiments(_write(tmp_path, spec), "quick")
    assert "(arm bad)" in str(info.value)


def test_paper_dataset_keys_did_not_move():
    # the dose fields at their defaults are left out: the paper's cached datasets stay valid
    for name in ("xray", "ct24", "ct24-phantom"):
        spec = load_experiment(name, "quick").dataset
        old = {
            k: v
            for k, v in spec.model_dump().items()
            if k
            not in (
                "photons_per_ray",
                "dose_fraction",
                "electronic_noise_counts",
                "kernel",
                "view_subsets",
            )
        }
        assert dataset_key(spec) == stage_key("dataset-v2", old)
    # sinogram datasets changed their clean reference (noise-free FBP): a new key
    sinogram = load_experiment("ct24-sinogram", "quick").dataset
    assert dataset_key(sinogram) != dataset_key(sinogram.model_copy(update={"noise": "awgn"}))
    quarter, tenth = (c.dataset for c in load_experiments("ct-dose", "quick")[:2])
    assert dataset_key(quarter) != dataset_key(tenth)
