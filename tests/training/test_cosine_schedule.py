"""The cosine schedule and max_steps: the exact lr formula, derived epochs, bit-exact resume."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lowdose.training.run as training
from lowdose.core.errors import LowdoseInputError
from lowdose.training.config import (
    make_train_config,
    steps_between_validations,
    with_derived_epochs,
)
from lowdose.training.module import DenoiseModule, cosine_lr

LR, FINAL = 1e-3, 0.01


def test_cosine_lr_at_start_warmup_end_middle_and_last_step():
    rate = lambda step: cosine_lr(step, lr=LR, warmup_steps=10, max_steps=110, final_fraction=FINAL)  # noqa: E731
    assert rate(0) == pytest.approx(LR / 10, rel=1e-12)  # first warm-up step: lr * 1 / 10
    assert rate(4) == pytest.approx(LR * 5 / 10, rel=1e-12)
    assert rate(9) == pytest.approx(LR, rel=1e-12)  # warm-up reaches lr ...
    assert rate(10) == pytest.approx(LR, rel=1e-12)  # ... and the cosine starts there
    assert rate(60) == pytest.approx((LR + LR * FINAL) / 2, rel=1e-12)  # half way: the mean
    quarter = LR * FINAL + (LR - LR * FINAL) * 0.5 * (1 + math.cos(math.pi / 4))
    assert rate(35) == pytest.approx(quarter, rel=1e-12)
    assert rate(110) == pytest.approx(LR * FINAL, rel=1e-12)  # exactly lr_end at max_steps
    last = rate(109)  # the last step taken: a hair above lr_end
    assert LR * FINAL < last < LR * FINAL * 1.05
    after = [rate(step) for step in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))  # never rises again


def test_cosine_without_warmup_starts_at_lr():
    assert cosine_lr(0, lr=LR, warmup_steps=0, max_steps=50, final_fraction=FINAL) == LR


@given(st.integers(1, 100_000), st.integers(1, 40))
def test_epochs_divide_max_steps_so_the_last_validation_scores_the_final_weights(steps, n_val):
    per_epoch = steps_between_validations(steps, n_val)
    assert steps % per_epoch == 0
    # the divisor closest to steps / n_val: none is closer on a log scale
    target = steps / n_val
    for other in range(1, steps + 1) if steps < 2000 else ():
        if steps % other == 0:
            assert abs(math.log(per_epoch / target)) <= abs(math.log(other / target)) + 1e-12


def test_derived_epochs_reach_max_steps_and_are_a_fixed_point():
    config = make_train_config(
        {"data": "d.h5", "out": "o", "max_steps": 1200, "schedule": "cosine", "batch_size": 8}
    )
    derived = with_derived_epochs(config)
    assert (derived.schedule.samples_per_epoch, derived.schedule.epochs) == (100 * 8, 12)
    assert with_derived_epochs(derived) == derived
    plain = make_train_config({"data": "d.h5", "out": "o"})
    assert with_derived_epochs(plain) is plain  # the paper's epoch recipe is untouched
    assert plain.optimisation.lr_schedule == "plateau"
    assert (plain.schedule.max_steps, plain.schedule.budget) == (None, None)


def test_cosine_needs_an_end_and_plateau_stays_the_default_schedule():
    with pytest.raises(LowdoseInputError, match="cosine.*max_steps"):
        make_train_config({"data": "d.h5", "out": "o", "schedule": "cosine"})
    with pytest.raises(LowdoseInputError, match="budget: must look like 00:05:00"):
        make_train_config({"data": "d.h5", "out": "o", "budget": "30 min"})
    tiny = {"data": "d.h5", "out": "o", "width": 4}
    plateau = DenoiseModule(make_train_config(tiny)).configure_optimizers()
    assert isinstance(
        plateau["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    cosine_config = make_train_config({**tiny, "schedule": "cosine", "max_steps": 10})
    cosine = DenoiseModule(cosine_config).configure_optimizers()
    assert isinstance(cosine, torch.optim.Adam)


def test_cosine_run_stops_at_max_steps_and_resumes_bit_for_bit(
    make_tiny_dataset, tmp_path, kill_training_at
):
    data = make_tiny_dataset()
    tiny = {
        "data": data,
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
        "validations": 3,
        "warmup_steps": 2,
    }
    reference = training.train(make_train_config({**tiny, "out": tmp_path / "ref"}))
    assert reference.global_step == 6 and reference.epochs_done == 3
    rows = np.genfromtxt(tmp_path / "ref" / "metrics.csv", delimiter=",", names=True)
    assert list(rows["step"]) == [2, 4, 6]  # the last validation scores the final weights
    lrs = [
        cosine_lr(s - 1, lr=LR, warmup_steps=2, max_steps=6, final_fraction=FINAL)
        for s in (2, 4, 6)
    ]
    np.testing.assert_allclose(rows["lr"], lrs, rtol=1e-6)  # the rate of each epoch's last step

    with pytest.raises(kill_training_at(2)):
        training.train(make_train_config({**tiny, "out": tmp_path / "cut"}))
    assert torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)["global_step"] == 2
    resumed = training.train(training.resume_config(tmp_path / "cut"), resume=True)
    assert resumed.global_step == 6
    final = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    expected = torch.load(reference.last_checkpoint, weights_only=True)["state_dict"]
    for key in expected:  # the lr of every step is a function of the global step alone
        assert torch.equal(final[key], expected[key]), key
