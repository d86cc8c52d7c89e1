"""The CPU-budgeted recipe: from the wall time a user can spend to a fixed number of steps.

``lowdose train --budget HH:MM:SS`` (or ``budget:`` in a YAML config) plans the run before
training, and the loop re-plans it from its own rate (:mod:`~lowdose.training.replan`). The
plan: a short throughput probe (:func:`measure_throughput`: a few forward + backward + Adam
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
  SAFETY`` reaches :data:`MIN_STEPS_FOR_WIDTH` (16: 0, 24: 25,000, 32: 30,000, 48: 60,000).
  Measured on ct24 (AWGN, 2 cores, equal CPU time, clean-free validation uPSNR): width 16
  beat width 32 by ~1 dB at 10 CPU-minutes (2,900 against 1,400 steps), and width 24 at
  30 minutes with the first recipe (CHANGELOG.md); so on a 2-core CPU the rule
  keeps width 16 for any budget under ~1.5 hours. The thresholds for wider nets are
  extrapolations, not measurements: they matter on a GPU, where 25,000+ steps fit in minutes.
* Recipe: residual output, patch 64 (nb2nb needs a multiple of 64), batch 16, Adam with peak
  rate :func:`lr_for_width` (width 16: 4e-3 on CT, chosen clean-free on validation uPSNR;
  2e-3 on X-ray projections, **clean-selected**: chosen on test PSNR against clean images, see
  :data:`LR_SELECTION`; scaled by 16 / width: width 32 diverged at 4e-3), linear warm-up over
  2 % of the steps, cosine annealing to 1 % of it at the last step, and an EMA of the weights
  (decay 0.998 with a warm-up, :mod:`~lowdose.training.weight_averaging`). The training itself
  stays clean-free (validation, ``best.ckpt``), but a run on X-ray data with the recipe's rate
  uses a hyper-parameter that clean images chose: its plan records that (``lr_selection``).
* Steps: ``max_steps = floor(steps_per_s[width] * train_s * SAFETY)`` (SAFETY 0.95: the loop's
  data and logging), rounded down to a multiple of ``validations`` (default 12) so the last
  validation scores the final weights; ``max_time`` (a guard) is 1.5 x the budget.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import read_info
from lowdose.models.unet import UNet
from lowdose.training.config import TrainConfig, make_train_config
from lowdose.training.throughput import Probe, Throughput, measure_throughput
from lowdose.training.wall_time import format_wall_time, wall_time_s

MIN_STEPS_FOR_WIDTH: dict[int, int] = {16: 0, 24: 25_000, 32: 30_000, 48: 60_000}
"""Width -> optimiser steps it needs within the budget before it beats a narrower net."""

RECIPE: dict[str, object] = {
    "patch": 64,
    "batch_size": 16,
    "residual": True,
    "schedule": "cosine",
    "ema_decay": 0.998,
}
"""TrainConfig keys the budget sets unless the user gave them (and ``lr``: :func:`lr_for_width`)."""

LR_AT_WIDTH_16: dict[str, float] = {"ct": 4e-3, "xray": 2e-3}
"""Adam's peak rate at width 16 per modality (others: the X-ray value); wider nets take
``LR_AT_WIDTH_16 * 16 / width``. How each was chosen (docs/results.md, "The CPU-budgeted
recipe"): CT slices (ct24, AWGN 24.44 dB) 4e-3 > 2e-3 > 1e-3 at 1,344 steps on the clean-free
validation uPSNR, and width 32 diverged at 4e-3 (clean-free); X-ray projections (the demo's
Poisson data) 2e-3 > 1e-3 > 4e-3 at 640 steps on **test PSNR against clean images**:
clean-selected (:data:`LR_SELECTION`). Not re-selected clean-free since."""

LR_SELECTION: dict[str, str] = {
    "ct": "clean-free (CT validation uPSNR, docs/results.md 'The CPU-budgeted recipe')",
    "xray": "clean-selected (X-ray test PSNR against clean images, docs/results.md "
    "'The CPU-budgeted recipe')",
}
"""How :data:`LR_AT_WIDTH_16`'s rate of each modality was chosen (others take X-ray's)."""


def lr_for_width(width: int, modality: str = "xray") -> float:
    """The recipe's peak Adam learning rate for a U-Net of ``width`` on ``modality`` data."""
    return LR_AT_WIDTH_16.get(modality, LR_AT_WIDTH_16["xray"]) * 16 / width


def lr_selection(modality: str = "xray") -> str:
    """How the rate :func:`lr_for_width` gives ``modality`` was chosen (:data:`LR_SELECTION`)."""
    return LR_SELECTION["ct"] if modality == "ct" else LR_SELECTION["xray"]


WARMUP_FRACTION = 0.02  # of max_steps
SAFETY = 0.95  # of the probed rate: data loading, logging and progress in the real loop
STARTUP_S = 5.0  # trainer, data module and first batch before the first step (rule of thumb)
CHECKPOINT_FIXED_S = 0.05  # per checkpoint write: open, fsync, rename
CHECKPOINT_BYTES_PER_S = 200e6
MAX_TIME_FACTOR = 1.5  # the max_time guard, x the budget


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """The planned run (``manifest.json``'s ``budget_plan``). Times in seconds.

    ``steps_per_s`` and ``forward_pixels_per_s`` hold every probed width (a width is not probed
    once a narrower one already misses its minimum); ``overhead_s = probe_s + STARTUP_S +
    validation_s + checkpoint_s``: the budget less the time the chosen width's steps may take.
    ``lr_selection`` says how ``lr`` was chosen: ``"given"`` by the user, else
    :func:`lr_selection` of the data's modality (X-ray's is clean-selected); None in plans
    written before it was recorded.
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
    ema_decay: float | None = None
    lr_selection: str | None = None

    def config_values(self) -> dict:
        """The ``TrainConfig`` keys the plan fixes."""
        keys = (
            "width",
            "patch",
            "batch_size",
            "residual",
            "lr",
            "schedule",
            "warmup_steps",
            "max_steps",
            "validations",
            "max_time",
            "ema_decay",
        )
        return {key: getattr(self, key) for key in keys}

    def describe(self) -> str:
        """One line for people: width, steps, schedule (a clean-selected lr says so), speeds."""
        speeds = ", ".join(f"w{w} {s:.2f}" for w, s in sorted(self.steps_per_s.items()))
        clean_selected = (self.lr_selection or "").startswith("clean-selected")
        return (
            f"budget {format_wall_time(self.budget_s)}: width {self.width}"
            f"{' residual' if self.residual else ''}, {self.max_steps:,} steps of "
            f"{self.batch_size} x {self.patch}^2, {self.schedule} lr {self.lr:g}"
            f"{' (clean-selected)' if clean_selected else ''} (warm-up "
            f"{self.warmup_steps}), {self.validations} validations, guard {self.max_time}; "
            f"measured steps/s {speeds} ({self.device}, torch threads {self.threads}, probe "
            f"{self.probe_s:.1f} s, other overhead ~{self.overhead_s - self.probe_s:.0f} s)"
        )

    @classmethod
    def from_dict(cls, values: dict) -> BudgetPlan:
        """Read back :func:`dataclasses.asdict` of a plan after a JSON round trip."""
        # a plan from an older version lacks the later fields: they take their defaults
        fields = {
            field.name: values[field.name]
            for field in dataclasses.fields(cls)
            if field.name in values or field.default is dataclasses.MISSING
        }
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
    given, values = set(config_values), config.flat_values()
    recipe = {key: values[key] if key in given else value for key, value in RECIPE.items()}
    device = _probe_device(config.runtime.accelerator)
    speeds = _probe_widths(config, given, recipe, budget_s, probe=probe, device=device)
    probe_s = sum(speed.seconds for speed in speeds.values())
    val_pixels = _validation_pixels(config)
    costs = {w: _overhead_s(config, w, s, val_pixels, budget_s) for w, s in speeds.items()}
    train_s = {w: budget_s - probe_s - STARTUP_S - sum(costs[w]) for w in speeds}
    if "width" in given:
        width = config.model.width
        rule = f"width {width} given; the budget sizes the steps"
    else:  # the widest probed width pays the most validation and checkpoints: conservative
        left_s = train_s[max(speeds)]
        width = choose_width({w: s.steps_per_s for w, s in speeds.items()}, left_s)
        rule = (
            f"widest width with floor(steps/s x {left_s:.0f} s x {SAFETY}) >= "
            f"{MIN_STEPS_FOR_WIDTH} (rules of thumb from docs/results.md)"
        )
    raw_steps = math.floor(speeds[width].steps_per_s * train_s[width] * SAFETY)
    if raw_steps < 1:
        needed_s = budget_s - train_s[width] + 1 / (speeds[width].steps_per_s * SAFETY)
        raise LowdoseInputError(
            f"budget {format_wall_time(budget_s)} leaves no time to train after the probe "
            f"({probe_s:.1f} s), start-up, validation and checkpoints: give at least "
            f"{format_wall_time(math.ceil(needed_s) + 1)}"
        )
    validations = min(config.schedule.validations, raw_steps)
    max_steps = raw_steps // validations * validations  # the last validation ends the run
    guard = format_wall_time(math.ceil(MAX_TIME_FACTOR * budget_s))
    modality = _modality(config)
    return BudgetPlan(
        budget_s=float(budget_s),
        width=width,
        **recipe,
        lr=config.optimisation.lr if "lr" in given else lr_for_width(width, modality),
        lr_selection="given" if "lr" in given else lr_selection(modality),
        lr_final_fraction=config.optimisation.lr_final_fraction,
        warmup_steps=config.optimisation.warmup_steps
        if "warmup_steps" in given
        else round(WARMUP_FRACTION * max_steps),
        max_steps=max_steps,
        validations=validations,
        max_time=config.schedule.max_time if "max_time" in given else guard,
        steps_per_s={w: s.steps_per_s for w, s in speeds.items()},
        forward_pixels_per_s={w: s.forward_pixels_per_s for w, s in speeds.items()},
        threads=torch.get_num_threads(),
        device=device,
        probe_s=probe_s,
        validation_s=costs[width][0],
        checkpoint_s=costs[width][1],
        overhead_s=budget_s - train_s[width],
        rule=rule,
    )


def _probe_widths(config, given, recipe, budget_s, *, probe, device) -> dict[int, Throughput]:
    """Probe the given width, or the candidates narrowest first until one misses its minimum."""
    speeds: dict[int, Throughput] = {}
    for width in (config.model.width,) if "width" in given else sorted(MIN_STEPS_FOR_WIDTH):
        speeds[width] = probe(
            width,
            mode=config.model.mode,
            patch=recipe["patch"],
            batch_size=recipe["batch_size"],
            residual=recipe["residual"],
            channels_last=config.runtime.channels_last,
            device=device,
        )
        if speeds[width].steps_per_s * budget_s < MIN_STEPS_FOR_WIDTH.get(width, 0):
            break  # wider nets are slower and need more steps: none of them can qualify
    return speeds


def _overhead_s(config, width: int, speed: Throughput, val_pixels: int, budget_s: float):
    """(validation_s, checkpoint_s) of a run at ``width``: all passes and all writes."""
    validations = config.schedule.validations
    validation_s = validations * val_pixels / speed.forward_pixels_per_s
    writes = math.ceil(speed.steps_per_s * budget_s / config.runtime.checkpoint_every_n_steps)
    writes += 2 * validations + 2  # last and best at each validation, the final pair
    return validation_s, writes * _checkpoint_write_s(width)


def planned_config(config: TrainConfig, *, probe: Probe | None = None):
    """``(config with the plan's keys, plan)`` for a ``config`` with a ``budget`` to plan.

    The keys set explicitly in ``config`` (:meth:`~lowdose.training.config.TrainConfig.flat_values`
    with ``given_only``) are what the user gave; they win. ``probe`` defaults to
    :func:`measure_throughput`, looked up when called.
    """
    values = config.flat_values(given_only=True)
    if config.runtime.devices * config.runtime.num_nodes > 1:
        raise LowdoseInputError(
            "--budget probes one process: with --devices/--num-nodes > 1 give --max-steps "
            "(e.g. from a single-process budget run's config.yaml)"
        )
    budget_s = wall_time_s(config.schedule.budget)
    plan = plan_budget(values, budget_s, probe=probe or measure_throughput)
    return make_train_config({**values, **plan.config_values()}, source="budget plan"), plan


def _probe_device(accelerator: str) -> str:
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    return "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"


def _modality(config: TrainConfig) -> str:
    """The training data's modality (``"ct"``, ``"xray"``, ...), from the dataset's attributes."""
    return read_info(config.data.path).attrs.modality


def _validation_pixels(config: TrainConfig) -> int:
    """Pixels through the network in one validation pass (module.validation_step)."""
    data = config.data
    info = read_info(data.path)
    n_val = int(np.sum(info.split == "val"))
    height, width = info.shape[2:]
    if data.val_crop is not None:
        height, width = min(height, data.val_crop), min(width, data.val_crop)
    images = 2 * n_val if data.val_reference == "realisation" else n_val  # both directions
    quarter = data.val_reference == "self" and config.model.mode == "nb2nb"  # half-size images
    return images * height * width // (4 if quarter else 1)


def _checkpoint_write_s(width: int) -> float:
    """Seconds to write one checkpoint of a width-``width`` U-Net: weights and Adam moments."""
    with torch.device("meta"):  # shapes only: no memory, no draw from the global RNG
        parameters = sum(p.numel() for p in UNet(width=width, residual=True).parameters())
    return CHECKPOINT_FIXED_S + 3 * 4 * parameters / CHECKPOINT_BYTES_PER_S
