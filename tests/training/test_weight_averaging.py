"""EMA of the weights: the average is what is validated, saved and loaded; resumes repeat it."""

import numpy as np
import pytest
import torch

import lowdose.training.run as training
from lowdose.models.checkpoint import load_model
from lowdose.training.config import make_train_config
from lowdose.training.weight_averaging import EMAWeights, ema_average


def test_ema_average_warms_up_then_uses_the_decay():
    average = ema_average(0.9)
    old, new = torch.zeros(3), torch.ones(3)
    # first averaged step: d = min(0.9, 1 / 10) = 0.1 -> mostly the new weights
    assert torch.allclose(average(old, new, torch.tensor(0)), torch.full((3,), 0.9))
    # late: d = 0.9 -> a tenth of the way
    assert torch.allclose(average(old, new, torch.tensor(1000)), torch.full((3,), 0.1))
    assert torch.equal(old, torch.zeros(3))  # the averaged tensor is not changed in place


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_ema_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        EMAWeights(decay)


def _tiny(data, out, **extra):
    return make_train_config(
        {
            "data": data,
            "out": out,
            "width": 8,
            "patch": 32,
            "batch_size": 4,
            "threads": 1,
            "seed": 3,
            "deterministic": True,
            "quiet": True,
            "accelerator": "cpu",
            "schedule": "cosine",
            "max_steps": 6,
            "validations": 2,
            "warmup_steps": 1,
            **extra,
        }
    )


def test_checkpoints_hold_the_average_and_the_raw_weights_apart(make_tiny_dataset, tmp_path):
    data = make_tiny_dataset()
    raw = training.train(_tiny(data, tmp_path / "raw"))
    ema = training.train(_tiny(data, tmp_path / "ema", ema_decay=0.5))
    plain = torch.load(raw.last_checkpoint, weights_only=True)["state_dict"]
    averaged = torch.load(ema.last_checkpoint, weights_only=True)["state_dict"]
    # the same raw trajectory: the average never feeds back into training ...
    losses = [
        np.genfromtxt(run / "metrics.csv", delimiter=",", names=True)["train_loss"]
        for run in (tmp_path / "raw", tmp_path / "ema")
    ]
    np.testing.assert_array_equal(*losses)
    # ... while the saved state_dict, what load_model and denoise use, is the average
    differs = [k for k, v in plain.items() if not torch.equal(averaged[k], v)]
    assert differs
    network, _ = load_model(ema.last_checkpoint)
    key = differs[0].removeprefix("model.")
    assert torch.equal(network.state_dict()[key], averaged[differs[0]])


def test_an_interrupted_ema_run_resumes_to_the_same_average(
    make_tiny_dataset, tmp_path, kill_training_at
):
    data = make_tiny_dataset()
    reference = training.train(_tiny(data, tmp_path / "ref", ema_decay=0.5))
    with pytest.raises(kill_training_at(4)):
        training.train(_tiny(data, tmp_path / "cut", ema_decay=0.5))
    resumed = training.train(training.resume_config(tmp_path / "cut"), resume=True)
    assert resumed.global_step == 6
    final = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    expected = torch.load(reference.last_checkpoint, weights_only=True)["state_dict"]
    for key in expected:  # the average after the resume is the uninterrupted run's average
        assert torch.equal(final[key], expected[key]), key
