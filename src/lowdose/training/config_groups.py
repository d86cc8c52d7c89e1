"""The five groups of a training configuration: every field, its default and its description.

:class:`lowdose.training.config.TrainConfig` puts them together (and checks the rules across
them); ``lowdose train --help`` shows each field's description and default as its option's help.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lowdose.training.wall_time import is_wall_time


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Group):
    """What is learned (the objective of :mod:`lowdose.training.objectives`) and the U-Net."""

    mode: Literal["n2n", "n2c", "nb2nb", "n2v"] = Field(
        "n2n",
        description="n2n (Noise2Noise: >= 2 noisy realisations per image), n2c (clean targets), "
        "or, for ONE noisy acquisition per image and pixel-independent noise: nb2nb "
        "(Neighbor2Neighbor; patch a multiple of 64) or n2v (Noise2Void).",
    )
    loss: Literal["mse", "mae"] = Field("mse", description="mse or mae.")
    width: int = Field(
        48,
        ge=1,
        description="U-Net width: 48 = paper, 16 = quick unet-w16 (with a budget: fixed, not "
        "probed).",
    )
    residual: bool = Field(False, description="Predict the noise.")


class DataConfig(_Group):
    """The dataset, the training patches drawn from it and what validation scores against.

    ``batch_size`` is the global batch: with ``devices * num_nodes`` processes each process gets
    ``batch_size / world_size`` patches, so a DDP run takes the same optimiser steps as a
    single-process run. ``val_reference`` None (the default) takes the mode's, as its
    description says; :class:`~lowdose.training.config.TrainConfig` resolves it, and
    ``config.yaml`` keeps the resolved value. ``dose_range`` is a pair in YAML
    (``[LOW, HIGH]``) and ``LOW:HIGH`` on the command line; the re-noising is
    :mod:`lowdose.physics.dose_thinning` (docs/dose-robust.md).
    """

    path: Path = Field(description="Dataset file (.h5) from `lowdose simulate`.")
    patch: int = Field(
        64, ge=32, description="Training patch side in pixels, a multiple of 32 (64 for nb2nb)."
    )
    batch_size: int = Field(16, ge=1, description="Global batch size.")
    augment: bool = Field(True, description="Draw one of the 8 dihedral transforms per patch.")
    val_reference: Literal["realisation", "clean", "self"] | None = Field(
        None,
        description="What picks best.ckpt and drives the schedule: realisation (clean-free "
        "uPSNR, the n2n default), self (clean-free: the nb2nb/n2v loss on validation images "
        "with fixed masks, their default) or clean (n2c default; other modes are then labelled "
        "clean-selected).",
    )
    val_crop: int | None = Field(
        None, ge=32, description="Centre crop for validation (default: whole images)."
    )
    dose_range: tuple[float, float] | None = Field(
        None,
        description="LOW:HIGH fractions of the acquired dose, 0 < LOW <= HIGH <= 1 (e.g. "
        "0.1:1): each sample is re-noised to a dose drawn log-uniformly in the range, both "
        "realisations independently (X-ray photon thinning or CT AWGN; not sinogram noise). "
        "Clean-free; validation stays at the acquired dose. See docs/dose-robust.md.",
    )

    @field_validator("patch")
    @classmethod
    def _patch_multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"patch must be a multiple of 32 (five poolings), got {value}")
        return value

    @field_validator("dose_range", mode="before")
    @classmethod
    def _dose_range_pair(cls, value: Any) -> Any:
        return None if value is None else parse_dose_range(value)


class OptimisationConfig(_Group):
    """Adam, its learning-rate schedule and the weights that are validated and saved.

    ``lr_schedule`` ``"plateau"`` is the paper's: ``lr`` times ``lr_factor`` after
    ``lr_patience_epochs`` epochs without a better validation score. ``"cosine"``: linear
    warm-up over ``warmup_steps``, then cosine annealing to ``lr * lr_final_fraction`` at
    ``schedule.max_steps``, a function of the global step only
    (:func:`lowdose.training.schedule.cosine_lr`). ``ema_decay`` (e.g. 0.995): validate, select
    and save an exponential moving average of the weights instead of the raw iterate
    (:mod:`lowdose.training.weight_averaging`).
    """

    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    lr_schedule: Literal["plateau", "cosine"] = Field(
        "plateau",
        description="plateau (the paper's: lower lr when validation stalls) or cosine (warm-up, "
        "then cosine to lr_final_fraction of lr at max_steps; the budget's choice).",
    )
    lr_factor: float = Field(0.5, gt=0, lt=1, description="plateau: lr's factor at a stall.")
    lr_patience_epochs: int = Field(
        2, ge=0, description="plateau: epochs without a better validation score before a stall."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warm-up steps.")
    lr_final_fraction: float = Field(
        0.01, gt=0, le=1, description="cosine: the last step's lr as a fraction of lr."
    )
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="Validate and save an EMA of the weights, e.g. 0.995."
    )


class ScheduleConfig(_Group):
    """How long the run is and when it validates.

    ``max_steps`` stops training after exactly that many optimiser steps; ``epochs`` and
    ``samples_per_epoch`` are then derived (:func:`with_derived_epochs`) so that validation runs
    about ``validations`` times, the last time on the final weights. Without it an epoch is
    ``samples_per_epoch`` samples (default: every training pair once).

    ``budget`` (``HH:MM:SS``) asks for the CPU-budgeted recipe of :mod:`lowdose.training.budget`:
    while ``max_steps`` is unset, training starts with a short throughput probe that fixes
    width, steps and schedule (keys given explicitly win) and writes them into the run's
    ``config.yaml``, so a rerun or resume repeats the same steps without probing; with
    ``replan`` the run re-plans from its own measured rate and ``step_plan`` keeps the segments
    it ran (:mod:`lowdose.training.schedule`). ``max_time`` is a wall-clock guard, not a step
    budget.
    """

    epochs: int = Field(10, ge=1, description="Epochs (with max_steps: derived).")
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Stop after exactly this many optimiser steps (validating ~validations times).",
    )
    validations: int = Field(12, ge=1, description="With max_steps: validations in the run.")
    samples_per_epoch: int | None = Field(
        None,
        ge=1,
        description="Samples per epoch (default: all pairs; with max_steps: derived).",
    )
    budget: str | None = Field(
        None, description="Wall time for the whole run, HH:MM:SS, that a short probe plans."
    )
    replan: bool = Field(True, description="budget: re-plan from the loop's measured rate.")
    step_plan: list[tuple[int, int, int]] | None = Field(
        None, description="budget: the segments (start step, steps per epoch, max_steps) run."
    )
    stop_step: int | None = Field(
        None,
        ge=1,
        description="Stop after this many steps, the cosine still annealing to max_steps (a "
        "budget run stopped at its deadline writes it, so a rerun repeats the stop).",
    )
    max_time: str | None = Field(None, description="Wall-time limit, e.g. 00:05:00.")

    @field_validator("max_time", "budget")
    @classmethod
    def _wall_time_format(cls, value: str | None) -> str | None:
        if value is not None and not is_wall_time(value):
            raise ValueError(f"must look like 00:05:00 or 1:00:00:00, got {value!r}")
        return value


class RuntimeConfig(_Group):
    """Where the run writes, its seed, and the engine: processes, devices, precision, speed.

    Lightning runs DDP across ``devices`` processes per node and ``num_nodes`` nodes (gloo on
    CPU); ``seed`` fixes data order, crops, masks and the initial weights.
    """

    out: Path = Field(description="Run directory to create.")
    seed: int = Field(0, description="Seed for data order, crops and weights.")
    workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    precision: str = Field("32-true", description="Lightning precision, e.g. bf16-mixed.")
    accelerator: str = Field(
        "auto", description="cpu, gpu (or cuda) or auto (a GPU when torch sees one)."
    )
    devices: int = Field(1, ge=1, description="Devices (processes) per node.")
    num_nodes: int = Field(1, ge=1, description="Nodes for multi-node DDP.")
    strategy: str = Field("auto", description="auto, ddp, ddp_spawn, ... (gloo on CPU).")
    threads: int | None = Field(None, ge=1, description="torch threads per process.")
    channels_last: bool = Field(False, description="Channels-last memory format.")
    compile: bool = Field(False, description="torch.compile the network.")
    deterministic: bool = Field(False, description="Deterministic algorithms only.")
    checkpoint_every_n_steps: int = Field(50, ge=1, description="Write last.ckpt every N steps.")
    quiet: bool = Field(False, description="Log lines, no progress bar.")


def parse_dose_range(value: Any) -> tuple[float, float]:
    """``"LOW:HIGH"`` or a pair of numbers -> ``(LOW, HIGH)`` with ``0 < LOW <= HIGH <= 1``.

    Raises ``ValueError`` (one line, for the config's error message) otherwise.

    >>> parse_dose_range("0.1:1"), parse_dose_range([0.25, 0.5])
    ((0.1, 1.0), (0.25, 0.5))
    """
    rule = "use LOW:HIGH fractions of the acquired dose, 0 < LOW <= HIGH <= 1, e.g. 0.1:1"
    parts = value.split(":") if isinstance(value, str) else value
    try:
        low, high = (float(part) for part in parts)  # ValueError unless exactly two numbers
    except (TypeError, ValueError):
        raise ValueError(rule) from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high <= 1):
        raise ValueError(rule)
    return low, high
