"""Experiment YAML files: every shipped one validates at each scale; typos are errors."""

import pytest
import yaml

from lowdose.core.errors import LowdoseInputError
from lowdose.pipeline.config import available_experiments, load_experiment

PAPER_EXPERIMENTS = {"xray", "ct24", "ct18", "ct24-sinogram", "ct18-sinogram"}


def test_every_paper_experiment_ships_and_validates_at_each_scale():
    assert PAPER_EXPERIMENTS <= set(available_experiments())
    for name in PAPER_EXPERIMENTS:
        quick = load_experiment(name, "quick")
        paper = load_experiment(name, "paper")
        assert quick.scale == "quick" and paper.scale == "paper"
        # paper scale keeps the paper's network width; quick may narrow it (named unet-w16)
        assert paper.train.get("width", 48) == 48
        assert quick.dataset.target_psnr_db == paper.dataset.target_psnr_db


def test_paper_tables_and_models_match_the_paper():
    xray = load_experiment("xray", "paper")
    assert xray.dataset.phantoms == 100 and xray.dataset.angles == 63
    assert xray.dataset.target_psnr_db == pytest.approx(29.91)
    pairs = {(m.mode, m.loss) for m in xray.models}
    assert pairs == {("n2n", "mae"), ("n2n", "mse"), ("n2c", "mse")}
    assert load_experiment("ct18", "quick").dataset.target_psnr_db == pytest.approx(18.66)
    ct18 = load_experiment("ct18", "quick")
    assert [f.experiment for f in ct18.sweep.foreign_models] == ["ct24"]  # Figure 4: both models


def test_scale_overrides_are_deep_merged(tmp_path):
    path = tmp_path / "exp.yaml"
    base = {
        "name": "t",
        "dataset": {"kind": "xray", "target_psnr_db": 30.0, "phantoms": 50, "size": 128},
        "models": [{"name": "a", "mode": "n2n", "loss": "mse"}],
        "scales": {"quick": {"dataset": {"phantoms": 4}}},
    }
    path.write_text(yaml.safe_dump(base))
    quick = load_experiment(path, "quick")
    assert quick.dataset.phantoms == 4 and quick.dataset.size == 128  # sibling key kept


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"dataset": {"kind": "xray", "target_psnr_db": 30, "phantom": 3}}, "dataset.phantom"),
        ({"modles": []}, "modles"),
        ({"scales": {"quick": {"evaluate": {"filter": ["gaussian"]}}}}, "evaluate.filter"),
    ],
)
def test_typo_in_a_key_is_an_error_that_names_it(tmp_path, patch, needle):
    raw = {
        "name": "t",
        "dataset": {"kind": "xray", "target_psnr_db": 30},
        "models": [{"name": "a", "mode": "n2n", "loss": "mse"}],
    }
    raw.update(patch)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(LowdoseInputError, match=needle) as info:
        load_experiment(path, "quick")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_unknown_experiment_and_missing_scale_name_the_choices():
    with pytest.raises(LowdoseInputError, match="xray"):
        load_experiment("no-such-experiment", "quick")
    with pytest.raises(LowdoseInputError, match="no 'paper' scale"):
        load_experiment("ct24-phantom", "paper")
