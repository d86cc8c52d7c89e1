"""The CPU-budgeted recipe: from the wall time a user can spend to a fixed number of steps.

``lowdose train --budget HH:MM:SS`` (or ``budget:`` in a YAML config) plans the run once, before
training: a short throughput probe (:func:`measure_throughput`: a few forward + backward + Adam
steps of the U-Net on random ``(batch, 1, patch, patch)`` patches per candidate width, after
warm-up steps, on the threads and device the run will use) and then the rule below. The plan is
written into the run's ``config.yaml`` (``schedule: cosine``, ``max_steps: N``, the width, ...)
and ``manifest.json`` (``budget_plan``), so a rerun or a resume trains the same N steps on any
machine without probing. Keys the user gave explicitly win over the recipe: ``--width 32
--budget 00:30:00`` fixes the width and only sizes the steps.

The rule (:func:`plan_budget`)
------------------------------
* Time: ``train_s = budget_s - probe_s - startup_s - validation_s - checkpoint_s``, with the
  probe's own time, :data:`STARTUP_S` for the trainer and data, ``validations`` passes over the
  validation set at the probed forward speed, and every checkpoint write (each ``last.ckpt``
  and ``best.ckpt``: weights and Adam moments at :data:`CHECKPOINT_BYTES_PER_S`).
* Width (:func:`choose_width`): the widest of 16, 24, 32, 48 whose ``steps_per_s * train_s *
  SAFETY`` reaches :data:`MIN_STEPS_FOR_WIDTH` (16: 0, 24: 2,500, 32: 4,000, 48: 12,000).
  These minimums are rules of thumb from the measured points in docs/results.md (ct24, AWGN,
  2 cores: width 16 after 896 steps 37.05 dB; width 32 after ~24 CPU-minutes 38.25 dB): a wider
  net only pays once it gets enough steps. ``benchmarks/cpu_budget.py`` is where they are checked.
* Recipe: residual output, patch 64 (nb2nb needs a multiple of 64), batch 16, Adam lr 1e-3,
  linear warm-up over 2 % of the steps, cosine annealing to 1 % of lr at the last step.
* Steps: ``max_steps = floor(steps_per_s[width] * train_s * SAFETY)`` (SAFETY 0.95: the loop's
  data and logging), rounded down to a multiple of ``validations`` (default 12) so the last
  validation scores the final weights; ``max_time`` (a guard) is 1.5 x the budget.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch.nn import functional as F

from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import read_info
from lowdose.models.unet import UNet
from lowdose.training.config import TrainConfig, format_wall_time, make_train_config, wall_time_s
from lowdose.training.objectives import OBJECTIVES

MIN_STEPS_FOR_WIDTH: dict[int, int] = {16: 0, 24: 2_500, 32: 4_000, 48: 12_000}
"""Width -> optimiser steps it needs within the budget before it beats a narrower net."""

RECIPE: dict[str, object] = {
    "patch": 64, "batch_size": 16, "residual": True, "lr": 1e-3, "schedule": "cosine",
}  # fmt: skip
"""TrainConfig keys the budget sets unless the user gave them."""

WARMUP_FRACTION = 0.02  # of max_steps
SAFETY = 0.95  # of the probed rate: data loading, logging and progress in the real loop
STARTUP_S = 5.0  # trainer, data module and first batch before the first step (rule of thumb)
CHECKPOINT_FIXED_S = 0.05  # per checkpoint write: open, fsync, rename
CHECKPOINT_BYTES_PER_S = 200e6
MAX_TIME_FACTOR = 1.5  # the max_time guard, x the budget


@dataclasses.dataclass(frozen=True)
class Throughput:
    """One probed width: optimiser steps/s, forward pixels/s (for validation), probe seconds."""

    steps_per_s: float
    forward_pixels_per_s: float
    seconds: float


Probe = Callable[..., Throughput]


def measure_throughput(
    width: int, *, mode: str = "n2n", patch: int = 64, batch_size: int = 16,
    residual: bool = True, channels_last: bool = False, device: str = "cpu",
    warmup_steps: int = 5, min_seconds: float = 2.0, max_timed_steps: int = 200,
) -> Throughput:  # fmt: skip
    """Time training steps and forward passes of a width-``width`` U-Net on random patches.

    Runs on the torch threads set now (``torch.set_num_threads``) and on ``device``; at least
    two timed steps after ``warmup_steps``, then more until ``min_seconds`` (at most
    ``max_timed_steps``). The global RNG is left as it was (the run's seed is not disturbed).
    """
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = UNet(width=width, residual=residual).to(device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 1, patch, patch)
    batch = tuple(torch.rand(shape, generator=generator).to(device, memory_format=memory)
                  for _ in range(2))  # fmt: skip
    objective = partial(OBJECTIVES[mode], distance=F.mse_loss)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        objective(model, batch, generator).backward()
        optimizer.step()

    steps_per_s = _rate(step, warmup_steps, min_seconds, max_timed_steps, device)
    with torch.no_grad():
        forwards_per_s = _rate(lambda: model(batch[0]), 1, min_seconds / 4, 5, device)
    return Throughput(steps_per_s, forwards_per_s * batch_size * patch * patch,
                      time.perf_counter() - start)  # fmt: skip


def _rate(call, warmup: int, min_seconds: float, max_calls: int, device: str) -> float:
    """Calls per second of ``call`` after ``warmup`` untimed calls (GPU work waited for)."""
    synchronise = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    for _ in range(warmup):
        call()
    synchronise()
    start, calls = time.perf_counter(), 0
    while calls < 2 or (time.perf_counter() - start < min_seconds and calls < max_calls):
        call()
        synchronise()
        calls += 1
    return calls / (time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """The planned run (``manifest.json``'s ``budget_plan``). Times in seconds.

    ``steps_per_s`` and ``forward_pixels_per_s`` hold every probed width (a width is not probed
    once a narrower one already misses its minimum); ``overhead_s = probe_s + STARTUP_S +
    validation_s + checkpoint_s``: the budget less the time the chosen width's steps may take.
    """

    budget_s: float
    width: int
    patch: int
    batch_size: int
    residual: bool
    lr: float
    schedule: str
    lr_final_fraction: float
    warmup_steps: int
    max_steps: int
    validations: int
    max_time: str
    steps_per_s: dict[int, float]
    forward_pixels_per_s: dict[int, float]
    threads: int
    device: str
    probe_s: float
    validation_s: float
    checkpoint_s: float
    overhead_s: float
    rule: str

    def config_values(self) -> dict:
        """The ``TrainConfig`` keys the plan fixes."""
        keys = ("width", "patch", "batch_size", "residual", "lr", "schedule", "warmup_steps",
                "max_steps", "validations", "max_time")  # fmt: skip
        return {key: getattr(self, key) for key in keys}

    def describe(self) -> str:
        """One line for people: width, steps, schedule and the measured speeds."""
        speeds = ", ".join(f"w{w} {s:.2f}" for w, s in sorted(self.steps_per_s.items()))
        return (
            f"budget {format_wall_time(self.budget_s)}: width {self.width}"
            f"{' residual' if self.residual else ''}, {self.max_steps:,} steps of "
            f"{self.batch_size} x {self.patch}^2, {self.schedule} lr {self.lr:g} (warm-up "
            f"{self.warmup_steps}), {self.validations} validations, guard {self.max_time}; "
            f"measured steps/s {speeds} ({self.device}, torch threads {self.threads}, probe "
            f"{self.probe_s:.1f} s, other overhead ~{self.overhead_s - self.probe_s:.0f} s)"
        )

    @classmethod
    def from_dict(cls, values: dict) -> BudgetPlan:
        """Read back :func:`dataclasses.asdict` of a plan after a JSON round trip."""
        fields = {field.name: values[field.name] for field in dataclasses.fields(cls)}
        for key in ("steps_per_s", "forward_pixels_per_s"):  # JSON keys are strings
            fields[key] = {int(width): float(rate) for width, rate in fields[key].items()}
        return cls(**fields)


def choose_width(steps_per_s: dict[int, float], budget_s: float) -> int:
    """The widest width whose steps in ``budget_s`` reach :data:`MIN_STEPS_FOR_WIDTH`.

    ``budget_s`` is the training time left after the probe, validation and checkpoints;
    a width gets ``floor(steps_per_s * budget_s * SAFETY)`` steps. Widths without a minimum in
    the table are ignored; if none qualifies, the narrowest probed width.

    >>> choose_width({16: 8.0, 24: 5.0, 32: 3.5, 48: 1.6}, 1800)  # 48: 2,736 < 12,000
    32
    """

    def steps(width: int) -> int:
        return math.floor(steps_per_s[width] * budget_s * SAFETY)

    known = sorted(w for w in steps_per_s if w in MIN_STEPS_FOR_WIDTH)
    fitting = [w for w in known if steps(w) >= MIN_STEPS_FOR_WIDTH[w]]
    return max(fitting) if fitting else known[0]


def plan_budget(config_values: dict, budget_s: float, *, probe: Probe = measure_throughput):
    """Plan a run of ``budget_s`` seconds: probe the widths, apply the rule, size the steps.

    ``config_values`` are the ``TrainConfig`` keys the user gave (``data`` and ``out``
    included); they win over the recipe (a given ``width`` is the only one probed).
    ``budget_s`` covers everything: probe, start-up, training, validation and checkpoints.
    ``probe(width, *, mode, patch, batch_size, residual, channels_last, device) -> Throughput``
    is :func:`measure_throughput` unless injected. Raises ``LowdoseInputError`` when the budget
    leaves no time for a single step.
    """
    config = make_train_config(config_values, source="budget")
    given = set(config_values)
    recipe = {key: getattr(config, key) if key in given else value
              for key, value in RECIPE.items()}  # fmt: skip
    device = _probe_device(config.accelerator)
    speeds = _probe_widths(config, given, recipe, budget_s, probe=probe, device=device)
    probe_s = sum(speed.seconds for speed in speeds.values())
    val_pixels = _validation_pixels(config)
    costs = {w: _overhead_s(config, w, s, val_pixels, budget_s) for w, s in speeds.items()}
    train_s = {w: budget_s - probe_s - STARTUP_S - sum(costs[w]) for w in speeds}
    if "width" in given:
        width, rule = config.width, f"width {config.width} given; the budget sizes the steps"
    else:  # the widest probed width pays the most validation and checkpoints: conservative
        left_s = train_s[max(speeds)]
        width = choose_width({w: s.steps_per_s for w, s in speeds.items()}, left_s)
        rule = (f"widest width with floor(steps/s x {left_s:.0f} s x {SAFETY}) >= "
                f"{MIN_STEPS_FOR_WIDTH} (rules of thumb from docs/results.md)")  # fmt: skip
    raw_steps = math.floor(speeds[width].steps_per_s * train_s[width] * SAFETY)
    if raw_steps < 1:
        needed_s = budget_s - train_s[width] + 1 / (speeds[width].steps_per_s * SAFETY)
        raise LowdoseInputError(
            f"budget {format_wall_time(budget_s)} leaves no time to train after the probe "
            f"({probe_s:.1f} s), start-up, validation and checkpoints: give at least "
            f"{format_wall_time(math.ceil(needed_s) + 1)}"
        )
    validations = min(config.validations, raw_steps)
    max_steps = raw_steps // validations * validations  # the last validation ends the run
    guard = format_wall_time(math.ceil(MAX_TIME_FACTOR * budget_s))
    return BudgetPlan(
        budget_s=float(budget_s), width=width, **recipe, lr_final_fraction=config.lr_final_fraction,
        warmup_steps=config.warmup_steps if "warmup_steps" in given
        else round(WARMUP_FRACTION * max_steps),
        max_steps=max_steps, validations=validations,
        max_time=config.max_time if "max_time" in given else guard,
        steps_per_s={w: s.steps_per_s for w, s in speeds.items()},
        forward_pixels_per_s={w: s.forward_pixels_per_s for w, s in speeds.items()},
        threads=torch.get_num_threads(), device=device, probe_s=probe_s,
        validation_s=costs[width][0], checkpoint_s=costs[width][1],
        overhead_s=budget_s - train_s[width], rule=rule,
    )  # fmt: skip


def _probe_widths(config, given, recipe, budget_s, *, probe, device) -> dict[int, Throughput]:
    """Probe the given width, or the candidates narrowest first until one misses its minimum."""
    speeds: dict[int, Throughput] = {}
    for width in (config.width,) if "width" in given else sorted(MIN_STEPS_FOR_WIDTH):
        speeds[width] = probe(width, mode=config.mode, patch=recipe["patch"],
                              batch_size=recipe["batch_size"], residual=recipe["residual"],
                              channels_last=config.channels_last, device=device)  # fmt: skip
        if speeds[width].steps_per_s * budget_s < MIN_STEPS_FOR_WIDTH.get(width, 0):
            break  # wider nets are slower and need more steps: none of them can qualify
    return speeds


def _overhead_s(config, width: int, speed: Throughput, val_pixels: int, budget_s: float):
    """(validation_s, checkpoint_s) of a run at ``width``: all passes and all writes."""
    validation_s = config.validations * val_pixels / speed.forward_pixels_per_s
    writes = math.ceil(speed.steps_per_s * budget_s / config.checkpoint_every_n_steps)
    writes += 2 * config.validations + 2  # last and best at each validation, the final pair
    return validation_s, writes * _checkpoint_write_s(width)


def planned_config(config: TrainConfig, *, probe: Probe | None = None):
    """``(config with the plan's keys, plan)`` for a ``config`` with a ``budget`` to plan.

    The keys set explicitly in ``config`` (``model_fields_set``) are what the user gave; they
    win. ``probe`` defaults to :func:`measure_throughput`, looked up when called.
    """
    values = config.model_dump(include=config.model_fields_set)
    if config.devices * config.num_nodes > 1:
        raise LowdoseInputError(
            "--budget probes one process: with --devices/--num-nodes > 1 give --max-steps "
            "(e.g. from a single-process budget run's config.yaml)"
        )
    plan = plan_budget(values, wall_time_s(config.budget), probe=probe or measure_throughput)
    return make_train_config({**values, **plan.config_values()}, source="budget plan"), plan


def _probe_device(accelerator: str) -> str:
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    return "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"


def _validation_pixels(config: TrainConfig) -> int:
    """Pixels through the network in one validation pass (module.validation_step)."""
    info = read_info(config.data)
    n_val = int(np.sum(info.split == "val"))
    height, width = info.shape[2:]
    if config.val_crop is not None:
        height, width = min(height, config.val_crop), min(width, config.val_crop)
    images = 2 * n_val if config.val_reference == "realisation" else n_val  # both directions
    quarter = config.val_reference == "self" and config.mode == "nb2nb"  # half-size sub-images
    return images * height * width // (4 if quarter else 1)


def _checkpoint_write_s(width: int) -> float:
    """Seconds to write one checkpoint of a width-``width`` U-Net: weights and Adam moments."""
    with torch.device("meta"):  # shapes only: no memory, no draw from the global RNG
        parameters = sum(p.numel() for p in UNet(width=width, residual=True).parameters())
    return CHECKPOINT_FIXED_S + 3 * 4 * parameters / CHECKPOINT_BYTES_PER_S
