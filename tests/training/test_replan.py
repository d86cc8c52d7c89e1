"""Re-planning a budget run: the rule, the continuous schedule, and a re-planned run end to end.

The end-to-end run uses a fake probe and a clock that makes every optimiser step look 0.5 s
long (the real steps take milliseconds), so the re-plan is driven by the measured rate without
any assertion on real time.
"""

import csv
import json
import math
import time
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st

import lowdose.training.replan as replan
import lowdose.training.run as training
from lowdose.core.errors import LowdoseInputError
from lowdose.models.validation_scores import ValidationScores
from lowdose.training.budget import Throughput
from lowdose.training.config import load_train_config, make_train_config, with_derived_epochs
from lowdose.training.divergence import COLLAPSE_DB, StopOnDivergence
from lowdose.training.schedule import (
    check_plan,
    cosine_lr,
    epoch_steps,
    progress,
    replan_steps,
    with_segment,
)

LR, FINAL = 4e-3, 0.01


def test_replan_fills_the_time_left_with_steps_and_epochs():
    decision = replan_steps(
        step=120,
        steps_per_s=5.0,
        time_left_s=200.0,
        epoch_overhead_s=2.0,
        validations_left=10,
        safety=1.0,
    )
    # 200 s - 10 epochs x 2 s = 180 s of steps at 5 steps/s: 900 steps, 90 per epoch
    assert (decision.max_steps, decision.steps_per_epoch, decision.epochs) == (1020, 90, 10)


@given(
    step=st.integers(0, 10_000),
    rate=st.floats(0.01, 500.0),
    left=st.floats(-100.0, 1e5),
    overhead=st.floats(0.0, 60.0),
    validations=st.integers(0, 30),
)
def test_replan_never_plans_past_the_time_left(step, rate, left, overhead, validations):
    decision = replan_steps(
        step=step,
        steps_per_s=rate,
        time_left_s=left,
        epoch_overhead_s=overhead,
        validations_left=validations,
    )
    assert decision.max_steps >= step  # never below the steps done
    added = decision.max_steps - step
    assert added == decision.epochs * decision.steps_per_epoch and decision.steps_per_epoch >= 1
    if decision.epochs:
        assert decision.epochs <= max(1, validations)
        used = added / rate + decision.epochs * overhead
        assert used <= 0.97 * left + 1e-9
    else:  # nothing fits: stop now
        assert added == 0 and rate * (0.97 * left - overhead) < 1


def test_replan_takes_fewer_epochs_when_time_is_short_and_stops_when_none_fits():
    short = replan_steps(
        step=50,
        steps_per_s=2.0,
        time_left_s=10.0,
        epoch_overhead_s=3.0,
        validations_left=6,
        safety=1.0,
    )
    # 3 epochs leave 2 x (10 - 9) = 2 steps, fewer than epochs; 2 leave 8: 4 per epoch
    assert (short.max_steps, short.steps_per_epoch, short.epochs) == (58, 4, 2)
    assert (
        replan_steps(
            step=50, steps_per_s=2.0, time_left_s=-5.0, epoch_overhead_s=1.0, validations_left=6
        ).max_steps
        == 50
    )


def test_one_segment_is_the_classic_cosine_bit_for_bit():
    for step in range(0, 200, 7):
        classic = cosine_lr(step, lr=LR, warmup_steps=10, max_steps=200, final_fraction=FINAL)
        planned = cosine_lr(
            step,
            lr=LR,
            warmup_steps=10,
            max_steps=999,
            final_fraction=FINAL,
            segments=[(0, 20, 200)],
        )
        assert planned == classic


def _rates(segments, warmup):
    total = segments[-1][2]
    return [
        cosine_lr(
            s, lr=LR, warmup_steps=warmup, max_steps=total, final_fraction=FINAL, segments=segments
        )
        for s in range(total + 1)
    ]


@pytest.mark.parametrize(
    "segments",
    [
        [(0, 10, 120), (30, 25, 130)],
        [(0, 10, 120), (20, 40, 420)],
        [(0, 5, 60), (10, 5, 40), (20, 4, 100), (60, 10, 80)],
        [(0, 10, 120), (60, 1, 60)],
    ],
)
def test_a_replanned_cosine_is_continuous_and_still_anneals_to_its_end(segments):
    check_plan(segments)
    rates = _rates(segments, warmup=4)
    total = segments[-1][2]
    steps = [abs(a - b) for a, b in zip(rates[5:], rates[6:], strict=False)]
    # no jump: a re-plan changes the pace of the annealing, never the rate itself
    biggest = max(steps) if steps else 0.0
    for start, _, _ in segments[1:]:
        before = cosine_lr(
            start,
            lr=LR,
            warmup_steps=4,
            max_steps=total,
            final_fraction=FINAL,
            segments=[s for s in segments if s[0] < start],
        )
        assert rates[start] == pytest.approx(before, rel=1e-12)  # the knot: the old plan's rate
    assert biggest < 0.1 * LR
    assert all(a >= b for a, b in zip(rates[4:], rates[5:], strict=False))  # never rises
    if total > segments[-1][0]:
        assert rates[total] == pytest.approx(LR * FINAL, rel=1e-12)  # annealed at the end
    assert progress(total, 4, segments) == pytest.approx(1.0) or total == segments[-1][0]


def test_epochs_follow_the_segments_and_bad_plans_are_refused():
    assert epoch_steps([(0, 10, 120), (30, 25, 130)]) == [10, 10, 10, 25, 25, 25, 25]
    assert with_segment([(0, 10, 120), (30, 25, 130)], (20, 5, 50)) == [(0, 10, 120), (20, 5, 50)]
    for bad in (
        [(1, 10, 100)],
        [(0, 10, 105)],
        [(0, 10, 100), (15, 5, 50)],
        [(0, 10, 100), (30, 7, 50)],
        [(0, 10, 100), (110, 5, 150)],
    ):
        with pytest.raises(ValueError, match="step_plan"):
            check_plan(bad)


def test_the_config_keeps_the_plan_and_derives_the_epochs_from_it(tiny_dataset, tmp_path):
    plan = [(0, 10, 120), (30, 25, 130)]
    config = make_train_config(
        {
            "data": tiny_dataset,
            "out": tmp_path,
            "schedule": "cosine",
            "max_steps": 130,
            "step_plan": plan,
            "batch_size": 4,
        }
    )
    derived = with_derived_epochs(config)
    assert (derived.schedule.epochs, derived.schedule.samples_per_epoch) == (7, 40)
    with pytest.raises(LowdoseInputError, match="step_plan's last max_steps"):
        make_train_config(
            {"data": tiny_dataset, "out": tmp_path, "max_steps": 120, "step_plan": plan}
        )
    with pytest.raises(LowdoseInputError, match="multiple of steps_per_epoch"):
        make_train_config(
            {"data": tiny_dataset, "out": tmp_path, "max_steps": 105, "step_plan": [(0, 10, 105)]}
        )


class SlowClock(L.Callback):
    """Makes each optimiser step look ``step_s`` longer to the re-plan (its ``_now``)."""

    def __init__(self, step_s: float) -> None:
        self.step_s, self.offset = step_s, 0.0

    def now(self) -> float:
        return time.perf_counter() + self.offset

    def on_train_batch_end(self, *args) -> None:
        self.offset += self.step_s


def _slow_trainer(monkeypatch, step_s):
    clock = SlowClock(step_s)
    monkeypatch.setattr(replan, "_now", clock.now)
    make_trainer = training._trainer

    def trainer(*args, **kwargs):
        made = make_trainer(*args, **kwargs)
        made.callbacks.insert(0, clock)  # before the re-plan reads the clock
        return made

    monkeypatch.setattr(training, "_trainer", trainer)
    return make_trainer


TINY = {
    "width": 8,
    "patch": 32,
    "batch_size": 4,
    "threads": 1,
    "seed": 1,
    "deterministic": True,
    "quiet": True,
    "accelerator": "cpu",
    "budget": "00:01:00",
}


def _probe_at(steps_per_s):
    return lambda width, **settings: Throughput(steps_per_s, 1e6, 0.5)


def test_a_budget_run_replans_from_its_loop_and_its_config_reproduces_it(
    make_tiny_dataset, tmp_path, monkeypatch
):
    data = make_tiny_dataset()
    restore = _slow_trainer(monkeypatch, step_s=0.5)  # the loop runs at ~2 steps/s
    config = make_train_config({**TINY, "data": data, "out": tmp_path / "run"})
    result = training.train(config, probe=_probe_at(1.0))  # the probe said 1 step/s
    outcome = result.budget_outcome
    assert outcome.planned_steps == result.budget_plan.max_steps < 60
    assert outcome.replanned_steps and outcome.final_steps == outcome.replanned_steps[-1]
    assert outcome.achieved_steps == outcome.final_steps == result.global_step
    assert 1.6 < outcome.loop_steps_per_s < 2.05  # measured on the loop, not the probe
    # about 60 s (fake) less start-up, overheads and the safety margin, at ~2 steps/s
    assert 75 < outcome.final_steps <= 120
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["budget_outcome"]["final_steps"] == outcome.final_steps
    assert manifest["max_steps"] == outcome.final_steps
    assert manifest["budget_plan"]["max_steps"] == outcome.planned_steps
    assert {"train_s", "wall_s", "budget_fraction", "probe_steps_per_s"} <= set(
        manifest["budget_outcome"]
    )
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["schedule"]
    assert saved["max_steps"] == outcome.final_steps and len(saved["step_plan"]) >= 2
    rows = np.genfromtxt(tmp_path / "run" / "metrics.csv", delimiter=",", names=True)
    assert rows["step"][-1] == outcome.final_steps
    segments = [tuple(s) for s in saved["step_plan"]]
    expected_lr = [
        cosine_lr(
            int(s) - 1,
            lr=result.budget_plan.lr,
            warmup_steps=result.budget_plan.warmup_steps,
            max_steps=outcome.final_steps,
            final_fraction=FINAL,
            segments=segments,
        )
        for s in rows["step"]
    ]
    np.testing.assert_allclose(rows["lr"], expected_lr, rtol=1e-6)  # the logged rate followed

    monkeypatch.setattr(training, "_trainer", restore)
    saved_config = load_train_config(tmp_path / "run" / "config.yaml", {"out": tmp_path / "rerun"})
    rerun = training.train(saved_config)
    assert rerun.global_step == outcome.final_steps and rerun.budget_outcome is None
    first = torch.load(result.last_checkpoint, weights_only=True)["state_dict"]
    again = torch.load(rerun.last_checkpoint, weights_only=True)["state_dict"]
    for key, weights in first.items():  # the same epochs and rates, bit for bit
        assert torch.equal(again[key], weights), key


def test_a_killed_replanned_run_resumes_to_its_final_steps(
    make_tiny_dataset, tmp_path, monkeypatch, kill_training_at
):
    data = make_tiny_dataset()
    config = make_train_config({**TINY, "data": data, "out": tmp_path / "run"})
    restore = _slow_trainer(monkeypatch, step_s=0.5)
    done = training.train(config, probe=_probe_at(1.0))
    final = done.global_step
    monkeypatch.setattr(training, "_trainer", restore)
    saved = load_train_config(tmp_path / "run" / "config.yaml", {"out": tmp_path / "cut"})
    with pytest.raises(kill_training_at(final - 3)):
        training.train(saved)
    resumed = training.train(training.resume_config(tmp_path / "cut"), resume=True)
    assert resumed.global_step == final
    expected = torch.load(done.last_checkpoint, weights_only=True)["state_dict"]
    got = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)


class PoisonAt(L.Callback):
    """Sets every weight to NaN once ``step`` steps are done: a divergence."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                for parameter in pl_module.parameters():
                    parameter.fill_(math.nan)


def test_a_collapse_stops_training_and_leaves_the_best_earlier_checkpoint(
    make_tiny_dataset, tmp_path, monkeypatch
):
    data = make_tiny_dataset()
    make_trainer = training._trainer

    def poisoned(*args, **kwargs):
        made = make_trainer(*args, **kwargs)
        made.callbacks.insert(0, PoisonAt(14))  # inside the 4th of 6 epochs of 4 steps
        return made

    monkeypatch.setattr(training, "_trainer", poisoned)
    tiny = {key: value for key, value in TINY.items() if key != "budget"}
    values = {"schedule": "cosine", "max_steps": 24, "validations": 6}
    config = make_train_config({**tiny, **values, "data": data, "out": tmp_path / "run"})
    result = training.train(config)
    assert result.global_step == 16  # stopped at the first validation of the diverged model
    rows = np.genfromtxt(tmp_path / "run" / "metrics.csv", delimiter=",", names=True)
    assert np.isneginf(rows["val_upsnr_db"][-1]) and np.isfinite(rows["val_upsnr_db"][:-1]).all()
    best = torch.load(result.best_checkpoint, weights_only=True)
    assert all(torch.isfinite(w).all() for w in best["state_dict"].values())
    assert result.best_val_psnr_db == pytest.approx(np.max(rows["val_upsnr_db"][:-1]))
    # had every validation diverged, best.ckpt's -inf would be below the input: train warns
    assert ValidationScores("val_upsnr_db", -math.inf, 46.40).warning("run") is not None


def test_a_finite_collapse_far_below_the_best_score_also_stops():
    stop = StopOnDivergence("val_upsnr_db")
    trainer = SimpleNamespace(
        sanity_checking=False, should_stop=False, global_step=0, callback_metrics={}
    )
    for step, score in ((100, 50.0), (200, 51.2), (300, 51.2 - COLLAPSE_DB + 0.5)):
        trainer.global_step, trainer.callback_metrics = step, {"val_upsnr_db": torch.tensor(score)}
        stop.on_validation_end(trainer, None)
        assert not trainer.should_stop  # a dip within COLLAPSE_DB is training, not divergence
    trainer.global_step, trainer.callback_metrics = 400, {"val_upsnr_db": torch.tensor(-104.0)}
    stop.on_validation_end(trainer, None)
    assert trainer.should_stop and stop.stopped_at == 400


class LoadArrives(SlowClock):
    """Steps look ``step_s`` long until ``after`` steps, then ``loaded_s`` (a load arrives)."""

    def __init__(self, step_s: float, loaded_s: float, after: int) -> None:
        super().__init__(step_s)
        self.loaded_s, self.after, self.steps, self.last_step_end = loaded_s, after, 0, 0.0

    def on_train_batch_end(self, *args) -> None:
        self.steps += 1
        self.offset += self.step_s if self.steps <= self.after else self.loaded_s
        self.last_step_end = self.now()


def test_a_load_that_arrives_between_epoch_ends_stops_training_within_the_budget(
    make_tiny_dataset, tmp_path, monkeypatch
):
    data = make_tiny_dataset()
    clock = LoadArrives(step_s=0.5, loaded_s=20.0, after=40)  # 2 steps/s, then 0.05
    monkeypatch.setattr(replan, "_now", clock.now)
    make_trainer = training._trainer

    def trainer(*args, **kwargs):
        made = make_trainer(*args, **kwargs)
        made.callbacks.insert(0, clock)
        return made

    monkeypatch.setattr(training, "_trainer", trainer)
    started = time.perf_counter()
    config = make_train_config({**TINY, "data": data, "out": tmp_path / "run"})
    result = training.train(config, probe=_probe_at(2.0))
    outcome = result.budget_outcome
    assert outcome.stopped_at_deadline
    assert outcome.achieved_steps == result.global_step < outcome.final_steps
    # on the (fake) clock the re-plan sees, the last step ended before the 60 s budget
    assert clock.last_step_end - started <= 60.0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["budget_outcome"]["stopped_at_deadline"] is True
    assert (tmp_path / "run" / "best.ckpt").is_file()
    # config.yaml keeps the cosine's plan and the stop: a rerun from it repeats the stopped run
    saved = load_train_config(tmp_path / "run" / "config.yaml")
    assert saved.schedule.stop_step == outcome.achieved_steps
    assert saved.schedule.max_steps == outcome.final_steps


def test_a_config_with_stop_step_trains_that_many_steps_on_the_full_cosine(
    make_tiny_dataset, tmp_path
):
    data = make_tiny_dataset()
    values = {
        "data": data,
        "mode": "n2n",
        "width": 8,
        "patch": 64,
        "batch_size": 2,
        "schedule": "cosine",
        "max_steps": 12,
        "validations": 3,
        "threads": 1,
        "quiet": True,
    }
    full = training.train(make_train_config({**values, "out": tmp_path / "full"}))
    stopped = training.train(
        make_train_config({**values, "stop_step": 7, "out": tmp_path / "stopped"})
    )
    assert full.global_step == 12 and stopped.global_step == 7
    lr = {}
    for name in ("full", "stopped"):
        rows = list(csv.DictReader((tmp_path / name / "metrics.csv").open()))
        lr[name] = {int(r["step"]): float(r["lr"]) for r in rows if r.get("lr")}
    shared = sorted(set(lr["full"]) & set(lr["stopped"]))
    assert shared  # the two runs logged the rate at the same steps ...
    for step in shared:  # ... and the stopped run's rate is the 12-step cosine's, not a 7-step one
        assert lr["stopped"][step] == pytest.approx(lr["full"][step])
    with pytest.raises(ValueError, match="past max_steps"):
        make_train_config({**values, "stop_step": 13, "out": tmp_path / "bad"})


def test_an_unloaded_budget_run_is_not_stopped_early(make_tiny_dataset, tmp_path, monkeypatch):
    data = make_tiny_dataset()
    _slow_trainer(monkeypatch, step_s=0.5)
    config = make_train_config({**TINY, "data": data, "out": tmp_path / "run"})
    outcome = training.train(config, probe=_probe_at(2.0)).budget_outcome
    assert not outcome.stopped_at_deadline
    assert outcome.achieved_steps == outcome.final_steps
