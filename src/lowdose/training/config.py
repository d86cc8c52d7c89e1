"""Validated configuration (pydantic) and its YAML form.

``TrainConfig`` holds everything one training run needs; a run directory keeps the resolved copy
as ``config.yaml``. Unknown keys are errors that name the key and list the valid ones, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.training.schedule import check_plan, epoch_steps

_MAX_TIME = re.compile(r"^(\d+:)?\d{1,2}:\d{2}:\d{2}$")

SINGLE_ACQUISITION_MODES: tuple[str, ...] = ("nb2nb", "n2v")
"""Modes that train on one noisy realisation per image (self-supervised)."""

_DEFAULT_VAL_REFERENCE = {"n2n": "realisation", "n2c": "clean", "nb2nb": "self", "n2v": "self"}

VAL_MONITORS: dict[str, str] = {
    "realisation": "val_upsnr_db",
    "clean": "val_psnr_db",
    "self": "val_self_db",
}
"""``val_reference`` -> the logged score that selects ``best.ckpt`` and drives the schedule."""

VIEW_SPLIT_MONITOR = "val_pair_db"
"""What selects ``best.ckpt`` for view-split pairs: the prediction's raw PSNR to the other half.

Halves reconstructed from disjoint views differ by complementary streaks as well as by noise,
so their ``Var(y_i - y_j) / 2`` over-reads the noise and a good estimate's uMSE goes negative
(``val_upsnr_db`` NaN). The raw MSE differs from the uMSE by the same constant for every epoch,
so it ranks epochs as the uMSE would and is always defined.
"""


def val_monitor(val_reference: str, *, view_split: bool = False) -> str:
    """The logged score that selects ``best.ckpt`` for ``val_reference`` and these pairs.

    >>> val_monitor("realisation"), val_monitor("realisation", view_split=True)
    ('val_upsnr_db', 'val_pair_db')
    """
    if view_split and val_reference == "realisation":
        return VIEW_SPLIT_MONITOR
    return VAL_MONITORS[val_reference]


class TrainConfig(BaseModel):
    """One training run: data, recipe (the paper's by default), engine and speed settings.

    ``batch_size`` is the global batch: with ``devices * num_nodes`` processes each process gets
    ``batch_size / world_size`` patches, so a DDP run takes the same optimiser steps as a
    single-process run. ``samples_per_epoch`` shortens (or lengthens) an epoch for big (small)
    datasets; by default an epoch is every training pair once.

    ``mode``: ``n2n`` (Noise2Noise, >= 2 realisations per image), ``n2c`` (clean targets), or
    the single-acquisition modes ``nb2nb`` (Neighbor2Neighbor; ``patch`` a multiple of 64, so
    the half-size sub-images stay multiples of 32) and ``n2v`` (Noise2Void), which train on one
    noisy realisation per image (see :mod:`lowdose.training.objectives`).

    ``val_reference`` is what validation scores against, and so what picks ``best.ckpt`` and
    drives the plateau schedule: ``"realisation"`` (the default for ``n2n``: the prediction of
    one noisy realisation against another, as the unbiased ``val_upsnr_db``; no clean image is
    read), ``"clean"`` (the default for ``n2c``, which trains on clean images anyway; a clean-free
    mode validated this way is labelled ``clean-selected`` everywhere) or ``"self"`` (the default
    for ``nb2nb`` and ``n2v``, and only for them: the mode's own loss on the validation images
    with fixed masks, as ``val_self_db``; needs one realisation and no clean image).

    ``schedule``: ``"plateau"`` (the paper's, the default: halve ``lr`` after
    ``lr_patience_epochs`` epochs without a better validation score) or ``"cosine"`` (linear
    warm-up over ``warmup_steps``, then cosine annealing to ``lr * lr_final_fraction`` at
    ``max_steps``; a function of the global step only, see
    :func:`lowdose.training.module.cosine_lr`). ``max_steps`` stops training after exactly that
    many optimiser steps; ``epochs`` and ``samples_per_epoch`` are then derived
    (:func:`with_derived_epochs`) so that validation runs about ``validations`` times, the last
    time on the final weights.
    ``budget`` (``HH:MM:SS``) asks for the CPU-budgeted recipe of
    :mod:`lowdose.training.budget`: while ``max_steps`` is unset, training starts with a short
    throughput probe that fixes width, steps and schedule (keys given explicitly win) and
    writes them into the run's ``config.yaml``, so a rerun or resume repeats the same steps
    without probing; with ``replan`` (the default) the run re-plans from its own measured rate
    and ``step_plan`` keeps the segments it ran (:mod:`lowdose.training.schedule`).
    ``max_time`` is a wall-clock guard, not a step budget.

    ``ema_decay`` (e.g. 0.995): validate, select and save an exponential moving average of the
    weights instead of the raw iterate (:mod:`lowdose.training.weight_averaging`). None: raw.

    ``dose_range`` ``(LOW, HIGH)``, ``0 < LOW <= HIGH <= 1`` (YAML ``[LOW, HIGH]``, command line
    ``LOW:HIGH``): train every sample at its own fraction of the acquired dose, drawn
    log-uniformly from the range, each realisation re-noised independently (binomial thinning or
    added Gaussian noise, :mod:`lowdose.physics.dose_thinning`; docs/dose-robust.md). None (the
    default) trains at the acquired dose. Validation always scores the acquired dose.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path
    out: Path
    mode: Literal["n2n", "n2c", "nb2nb", "n2v"] = "n2n"
    loss: Literal["mse", "mae"] = "mse"
    val_reference: Literal["realisation", "clean", "self"] = "realisation"
    epochs: int = Field(10, ge=1)
    patch: int = Field(64, ge=32, description="training patch side in pixels, multiple of 32")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_factor: float = Field(0.5, gt=0, lt=1)
    lr_patience_epochs: int = Field(2, ge=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["plateau", "cosine"] = "plateau"
    max_steps: int | None = Field(None, ge=1, description="optimiser steps; None: epochs")
    lr_final_fraction: float = Field(0.01, gt=0, le=1, description="cosine: final lr / lr")
    validations: int = Field(12, ge=1, description="with max_steps: validations in the run")
    budget: str | None = Field(None, description="HH:MM:SS: plan the run from a probe")
    replan: bool = Field(True, description="budget: re-plan from the loop's measured rate")
    step_plan: list[tuple[int, int, int]] | None = Field(None, description="re-planned epochs")
    width: int = Field(48, ge=1)
    residual: bool = False
    augment: bool = True
    samples_per_epoch: int | None = Field(None, ge=1)
    val_crop: int | None = Field(None, ge=32, description="centre crop for validation; whole")
    max_time: str | None = None
    seed: int = 0
    workers: int = Field(0, ge=0)
    precision: str = "32-true"
    accelerator: str = "auto"
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    threads: int | None = Field(None, ge=1)
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    checkpoint_every_n_steps: int = Field(50, ge=1)
    quiet: bool = False
    dose_range: tuple[float, float] | None = Field(None, description="LOW:HIGH dose fractions")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="EMA of the weights")

    @model_validator(mode="before")
    @classmethod
    def _default_val_reference(cls, values: Any) -> Any:
        # The default depends on the mode, and the resolved value is what config.yaml keeps.
        if isinstance(values, dict) and values.get("val_reference") is None:
            mode = values.get("mode") or "n2n"
            values = {**values, "val_reference": _DEFAULT_VAL_REFERENCE.get(mode, "realisation")}
        return values

    @model_validator(mode="after")
    def _single_acquisition_rules(self) -> TrainConfig:
        if self.val_reference == "self" and self.mode not in SINGLE_ACQUISITION_MODES:
            raise ValueError(
                f"val_reference 'self' scores the nb2nb/n2v objective; mode {self.mode} "
                "validates with 'realisation' or 'clean'"
            )
        if self.mode == "nb2nb" and self.patch % 64:
            raise ValueError(
                f"nb2nb halves the patch and the U-Net needs multiples of 32: patch must be a "
                f"multiple of 64, got {self.patch}"
            )
        if self.schedule == "cosine" and self.max_steps is None and self.budget is None:
            raise ValueError(
                "schedule 'cosine' anneals to the last step: set max_steps (or a budget)"
            )
        if self.step_plan is not None:
            check_plan(self.step_plan)
            if self.step_plan[-1][2] != self.max_steps:
                raise ValueError("step_plan's last max_steps must be max_steps")
        return self

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

    @field_validator("max_time", "budget")
    @classmethod
    def _wall_time_format(cls, value: str | None) -> str | None:
        if value is not None and not is_wall_time(value):
            raise ValueError(f"must look like 00:05:00 or 1:00:00:00, got {value!r}")
        return value


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


def is_wall_time(text: str) -> bool:
    """True for ``HH:MM:SS`` or ``DD:HH:MM:SS`` (Lightning's ``max_time`` forms)."""
    return bool(_MAX_TIME.match(text))


def wall_time_s(text: str) -> int:
    """``"HH:MM:SS"`` or ``"DD:HH:MM:SS"`` -> seconds.

    >>> wall_time_s("00:30:00"), wall_time_s("1:00:00:10")
    (1800, 86410)
    """
    parts = [int(part) for part in text.split(":")]
    days, hours, minutes, seconds = [0] * (4 - len(parts)) + parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_wall_time(seconds: float) -> str:
    """Seconds (rounded down) -> ``"HH:MM:SS"``, or ``"D:HH:MM:SS"`` from 24 hours on.

    >>> format_wall_time(2700.9), format_wall_time(90_000)
    ('00:45:00', '1:01:00:00')
    """
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}:{clock}" if days else clock


def steps_between_validations(max_steps: int, validations: int) -> int:
    """Steps per epoch for a run of ``max_steps``: a divisor of it, about ``max_steps/validations``.

    Lightning validates at the end of an epoch only, and a run stopped by ``max_steps`` inside an
    epoch never scores its final weights (the annealed end of a cosine run, usually its best), so
    the epoch length divides ``max_steps``: the divisor closest to ``max_steps / validations`` on
    a log scale (ties: more validations).

    >>> steps_between_validations(1200, 12), steps_between_validations(1000, 12)
    (100, 100)
    """
    target = max_steps / validations
    divisors = set()
    for low in range(1, math.isqrt(max_steps) + 1):
        if max_steps % low == 0:
            divisors.update((low, max_steps // low))
    return min(sorted(divisors), key=lambda d: abs(math.log(d / target)))


def with_derived_epochs(config: TrainConfig) -> TrainConfig:
    """``config`` with ``samples_per_epoch`` and ``epochs`` from ``max_steps`` (if set).

    Without ``max_steps`` the config is returned unchanged (the epoch-based, paper recipe). With
    it, an epoch is :func:`steps_between_validations` steps of ``batch_size`` samples and
    ``epochs * steps_per_epoch == max_steps``: the epochs stop the run at exactly ``max_steps``
    (Lightning's own ``max_steps`` is not used: resumed from an epoch-end checkpoint, its
    step-based loop skips an epoch). A fixed point, so a run's ``config.yaml`` reproduces it.
    """
    if config.max_steps is None:
        return config
    if config.step_plan is not None:  # re-planned: epochs as the segments say (datamodule)
        epochs = epoch_steps(config.step_plan)
        update = {"samples_per_epoch": epochs[0] * config.batch_size, "epochs": len(epochs)}
        return config.model_copy(update=update)
    steps_per_epoch = steps_between_validations(config.max_steps, config.validations)
    return config.model_copy(
        update={
            "samples_per_epoch": steps_per_epoch * config.batch_size,
            "epochs": config.max_steps // steps_per_epoch,
        }
    )


def make_train_config(values: dict[str, Any], *, source: str = "options") -> TrainConfig:
    """Validate ``values`` into a ``TrainConfig``; errors become one ``LowdoseInputError`` line.

    Parameters
    ----------
    values
        Field name -> value (paths as str or Path).
    source
        What the values came from (a file name), named in the error.
    """
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise LowdoseInputError(_one_line(exc, source, TrainConfig)) from None


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML training config; ``overrides`` (e.g. command-line flags) win over the file.

    Relative ``data``/``out`` paths in the file are taken relative to the working directory.
    """
    path = Path(path)
    if not path.is_file():
        raise LowdoseInputError(f"config file {path} not found: pass an existing YAML file")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise LowdoseInputError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(values, dict):
        raise LowdoseInputError(f"{path}: expected a mapping of keys to values at the top level")
    return make_train_config({**values, **(overrides or {})}, source=str(path))


def save_config(config: BaseModel, path: str | Path) -> None:
    """Write ``config`` as YAML (paths as strings), atomically."""
    values = config.model_dump(mode="json")
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))


def _one_line(exc: ValidationError, source: str, model: type[BaseModel]) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "<config>"
    if error["type"] == "extra_forbidden":
        valid = ", ".join(model.model_fields)
        return f"{source}: unknown key '{key}'; valid keys: {valid}"
    if error["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a rule across fields: its message names them, the input is all
        return f"{source}: {message}"
    return f"{source}: {key}: {message} (got {error.get('input')!r})"
