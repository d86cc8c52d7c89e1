"""``--budget``: the width rule, the step arithmetic, the probe, and a planned run end to end."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lowdose.cli.train_cmd  # noqa: F401  (registers `lowdose train`)
import lowdose.training.budget as budget
from lowdose.cli._app import app
from lowdose.core.errors import LowdoseInputError
from lowdose.training.budget import (
    MIN_STEPS_FOR_WIDTH,
    SAFETY,
    STARTUP_S,
    BudgetPlan,
    Throughput,
    choose_width,
    lr_for_width,
    measure_throughput,
    plan_budget,
)
from lowdose.training.config import load_train_config
from lowdose.training.module import cosine_lr

# Made-up speeds, slower for wider nets as measured ones are (steps/s); GPU-like: 10 x faster.
RATES = {16: 8.0, 24: 5.0, 32: 3.5, 48: 1.6}
FAST = {width: 10 * rate for width, rate in RATES.items()}


def test_choose_width_takes_the_widest_that_gets_its_minimum_steps():
    assert MIN_STEPS_FOR_WIDTH == {16: 0, 24: 25_000, 32: 30_000, 48: 60_000}
    assert choose_width(RATES, 60) == 16  # 24 would get 285 steps < 25,000
    # 24 needs floor(5.0 * t * 0.95) >= 25,000: t >= 5,263.2 s (32: 30,000 / 3.325 = 9,022.6 s)
    assert choose_width(RATES, 5263) == 16
    assert choose_width(RATES, 5264) == 24
    assert choose_width(RATES, 9022) == 24
    assert choose_width(RATES, 9023) == 32
    assert choose_width(RATES, 39473) == 32  # 48 needs 60,000 / (1.6 x 0.95) = 39,473.7 s
    assert choose_width(RATES, 39474) == 48
    widths = [choose_width(RATES, t) for t in np.geomspace(1, 1e6, 200)]
    assert widths == sorted(widths)  # more time never buys a narrower net
    assert choose_width({16: 8.0, 24: 5.0, 64: 1.0}, 1e7) == 24  # no rule for 64: ignored
    assert choose_width({24: 5.0, 32: 3.5}, 1) == 24  # nothing fits: the narrowest probed


class FakeProbe:
    """Records its calls; each width takes ``seconds`` and runs at RATES (forward 1e6 px/s)."""

    def __init__(self, rates=RATES, seconds=0.5):
        self.rates, self.seconds, self.calls = rates, seconds, []

    def __call__(self, width, **settings):
        self.calls.append((width, settings))
        return Throughput(self.rates[width], 1e6, self.seconds)


def _values(data, tmp_path, **given):
    return {"data": data, "out": tmp_path / "run", **given}


def test_plan_sizes_the_steps_from_the_budget_left_after_every_overhead(tiny_dataset, tmp_path):
    probe = FakeProbe(FAST)
    plan = plan_budget(_values(tiny_dataset, tmp_path), 3600.0, probe=probe)
    assert [width for width, _ in probe.calls] == [16, 24, 32, 48]
    assert plan.width == 32  # 48 would get ~54,700 steps < 60,000
    assert plan.probe_s == 4 * 0.5
    # validation: 12 passes over 2 val images x 2 directions of 64 x 64 at 1e6 pixels/s
    assert plan.validation_s == pytest.approx(12 * 2 * 2 * 64 * 64 / 1e6)
    assert plan.overhead_s == pytest.approx(
        plan.probe_s + STARTUP_S + plan.validation_s + plan.checkpoint_s
    )
    raw = math.floor(FAST[32] * (3600.0 - plan.overhead_s) * SAFETY)
    assert plan.max_steps == raw // 12 * 12 and plan.validations == 12
    assert plan.max_steps / FAST[32] + plan.overhead_s <= 3600.0  # never past the budget
    assert (plan.schedule, plan.residual, plan.patch, plan.batch_size, plan.ema_decay) == (
        "cosine",
        True,
        64,
        16,
        0.998,
    )
    assert plan.lr == pytest.approx(2e-3 * 16 / plan.width)  # X-ray data; wider nets, lower
    assert plan.warmup_steps == round(0.02 * plan.max_steps)
    assert plan.max_time == "01:30:00"  # the guard: 1.5 x the budget
    expected = {
        "mode": "n2n",
        "patch": 64,
        "batch_size": 16,
        "residual": True,
        "channels_last": False,
        "device": "cpu",
    }
    assert probe.calls[0][1] == expected  # the recipe's patches, on the run's device


def test_a_short_budget_stops_probing_at_the_first_width_that_cannot_qualify(
    tiny_dataset, tmp_path
):
    probe = FakeProbe()
    plan = plan_budget(_values(tiny_dataset, tmp_path), 120.0, probe=probe)
    assert [width for width, _ in probe.calls] == [16, 24]  # 5 steps/s x 120 s < 25,000
    assert plan.width == 16 and set(plan.steps_per_s) == {16, 24}


def test_options_the_user_gave_win_over_the_recipe(tiny_dataset, tmp_path):
    probe = FakeProbe()
    given = {
        "width": 48,
        "batch_size": 8,
        "residual": False,
        "max_time": "00:40:00",
        "warmup_steps": 7,
        "validations": 5,
    }
    plan = plan_budget(_values(tiny_dataset, tmp_path, **given), 600.0, probe=probe)
    assert [width for width, _ in probe.calls] == [48]  # a fixed width is not chosen
    assert probe.calls[0][1]["batch_size"] == 8 and probe.calls[0][1]["residual"] is False
    assert {key: getattr(plan, key) for key in given} == given
    assert plan.max_steps % 5 == 0 and "given" in plan.rule


def test_single_acquisition_modes_are_planned_with_their_validation_cost(
    make_tiny_dataset, tmp_path
):
    data = make_tiny_dataset(n_realisations=1, with_clean=False)
    plan = plan_budget(_values(data, tmp_path, mode="nb2nb"), 600.0, probe=FakeProbe())
    # nb2nb scores its objective on half-size sub-images of the 2 val images
    assert plan.validation_s == pytest.approx(12 * 2 * 32 * 32 / 1e6)
    assert plan.patch == 64


def test_a_budget_too_short_for_one_step_names_the_minimum(tiny_dataset, tmp_path):
    with pytest.raises(LowdoseInputError, match=r"budget 00:00:06 leaves no time.*at least"):
        plan_budget(_values(tiny_dataset, tmp_path), 6.0, probe=FakeProbe(seconds=1.0))


def test_the_real_probe_measures_positive_rates_and_leaves_the_rng_alone():
    state = torch.get_rng_state()
    speed = measure_throughput(4, patch=32, batch_size=2, warmup_steps=1, min_seconds=0.01)
    assert speed.steps_per_s > 0 and speed.forward_pixels_per_s > 0 and speed.seconds > 0
    assert torch.equal(torch.get_rng_state(), state)
    assert set(MIN_STEPS_FOR_WIDTH) == {16, 24, 32, 48}


def _train(args):
    result = CliRunner().invoke(app, ["train", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _refuse_to_probe(*args, **kwargs):
    raise AssertionError("a planned run must not probe again")


def test_budget_run_stops_at_max_steps_and_reruns_from_its_config_without_probing(
    make_tiny_dataset, tmp_path, monkeypatch
):
    data = make_tiny_dataset()
    monkeypatch.setattr(budget, "measure_throughput", FakeProbe(rates={16: 3.0, 24: 2.0}))
    run = tmp_path / "run"
    output = _train(
        [
            "--data",
            data,
            "--out",
            run,
            "--budget",
            "00:00:20",
            "--batch-size",
            4,
            "--threads",
            1,
            "--deterministic",
            "--quiet",
            "--no-replan",
        ]
    )
    manifest = json.loads((run / "manifest.json").read_text())
    plan = BudgetPlan.from_dict(manifest["budget_plan"])
    assert "budget 00:00:20: width 16 residual" in " ".join(output.split())
    assert plan.width == 16 and plan.batch_size == 4 and plan.max_steps >= 12
    saved = load_train_config(run / "config.yaml").flat_values()
    assert {key: saved[key] for key in plan.config_values()} == plan.config_values()
    assert saved["budget"] == "00:00:20" and saved["schedule"] == "cosine"
    last = torch.load(run / "last.ckpt", weights_only=True)
    assert last["global_step"] == plan.max_steps  # exactly, however fast this machine is
    rows = np.genfromtxt(run / "metrics.csv", delimiter=",", names=True)
    assert rows["step"][-1] == plan.max_steps and len(rows) == plan.validations
    end_lr = cosine_lr(
        plan.max_steps - 1,
        lr=plan.lr,
        warmup_steps=plan.warmup_steps,
        max_steps=plan.max_steps,
        final_fraction=0.01,
    )
    assert rows["lr"][-1] == pytest.approx(end_lr, rel=1e-6)

    monkeypatch.setattr(budget, "measure_throughput", _refuse_to_probe)
    rerun = tmp_path / "rerun"
    _train(["--config", run / "config.yaml", "--out", rerun])
    again = torch.load(rerun / "last.ckpt", weights_only=True)
    assert again["global_step"] == plan.max_steps
    for key, weights in last["state_dict"].items():  # the same steps, bit for bit
        assert torch.equal(again["state_dict"][key], weights), key
    assert json.loads((rerun / "manifest.json").read_text())["budget_plan"] is None

    _train(["--resume", run])  # finished: nothing left to train, and no probe
    assert torch.load(run / "last.ckpt", weights_only=True)["global_step"] == plan.max_steps
    resumed = json.loads((run / "manifest.json").read_text())["budget_plan"]
    assert BudgetPlan.from_dict(resumed) == plan  # the resume keeps the plan it ran


def test_a_plan_written_before_ema_existed_reads_back_without_it(tiny_dataset, tmp_path):
    plan = plan_budget(_values(tiny_dataset, tmp_path), 3600.0, probe=FakeProbe())
    assert plan.ema_decay == 0.998 and plan.config_values()["ema_decay"] == 0.998
    old = json.loads(json.dumps(dataclasses.asdict(plan)))
    del old["ema_decay"]
    assert BudgetPlan.from_dict(old) == dataclasses.replace(plan, ema_decay=None)


def test_the_peak_rate_follows_the_data_modality_and_the_width():
    assert lr_for_width(16, "ct") == pytest.approx(4e-3)
    assert lr_for_width(16, "xray") == pytest.approx(2e-3)
    assert lr_for_width(32, "ct") == pytest.approx(2e-3)  # 4e-3 diverged at width 32
    assert lr_for_width(16, "unknown") == lr_for_width(16, "xray")  # the gentler rate


def test_the_plan_records_how_its_learning_rate_was_chosen(make_tiny_dataset, tmp_path):
    # the X-ray rate was chosen on test PSNR against clean images; CT's on validation uPSNR
    assert budget.lr_selection("xray").startswith("clean-selected (X-ray test PSNR")
    assert budget.lr_selection("ct").startswith("clean-free (CT validation uPSNR")
    assert budget.lr_selection("unknown") == budget.lr_selection("xray")  # X-ray's rate too
    xray = plan_budget(_values(make_tiny_dataset(), tmp_path), 600.0, probe=FakeProbe())
    assert xray.lr_selection == budget.lr_selection("xray")
    assert "(clean-selected)" in xray.describe()
    saved = json.loads(json.dumps(dataclasses.asdict(xray)))  # as manifest.json's budget_plan
    assert BudgetPlan.from_dict(saved).lr_selection == xray.lr_selection
    del saved["lr_selection"]  # a plan written before it was recorded
    assert BudgetPlan.from_dict(saved).lr_selection is None
    given = plan_budget(_values(make_tiny_dataset(), tmp_path, lr=5e-4), 600.0, probe=FakeProbe())
    assert (given.lr, given.lr_selection) == (5e-4, "given")
    assert "clean-selected" not in given.describe()
