"""The configuration of one training run (pydantic): its two layouts and its YAML form.

``TrainConfig`` holds everything one training run needs, in five groups
(:mod:`lowdose.training.config_groups`, where every default and description lives): ``model``
(what is learned and by which network), ``data`` (the dataset, its training patches and its
validation), ``optimisation`` (Adam, the learning-rate schedule, averaged weights), ``schedule``
(how long the run is and when it validates) and ``runtime`` (where it writes, its seed and the
engine).

The flat layout, every key at the top level (``data``, ``out``, ``mode``, ``epochs``, ...), is
what the command line, an experiment's ``train:`` block and the ``config.yaml`` of older run
directories use; it is accepted everywhere, each flat key naming one field of one group
(:data:`FLAT_KEYS`: ``data`` is ``data.path``, ``schedule`` is ``optimisation.lr_schedule``).
A run directory keeps the resolved config, grouped, as ``config.yaml``. Unknown keys are errors
that name the key and list the valid ones, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.training.config_groups import (
    DataConfig,
    ModelConfig,
    OptimisationConfig,
    RuntimeConfig,
    ScheduleConfig,
)
from lowdose.training.schedule import check_plan, epoch_steps

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
    """One training run: the five groups of the module docstring.

    Built from the grouped layout, the flat one (:data:`FLAT_KEYS`) or a mix of both (a flat
    key wins over its group's entry). Rules across groups: ``val_reference`` ``"self"`` only
    for ``nb2nb`` and ``n2v``; ``nb2nb`` needs a ``patch`` multiple of 64 (its half-size
    sub-images stay multiples of 32); ``lr_schedule`` ``"cosine"`` needs ``max_steps`` or a
    ``budget``; a ``step_plan`` ends at ``max_steps``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    optimisation: OptimisationConfig = Field(default_factory=OptimisationConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig

    @model_validator(mode="before")
    @classmethod
    def _grouped_with_val_reference(cls, values: Any) -> Any:
        if not isinstance(values, Mapping):
            return values
        values = grouped(values)
        data, model = values["data"], values["model"]
        if isinstance(data, dict) and data.get("val_reference") is None:
            # the default depends on the mode; config.yaml keeps the resolved value
            mode = (model.get("mode") if isinstance(model, dict) else None) or "n2n"
            values["data"] = {**data, "val_reference": _DEFAULT_VAL_REFERENCE.get(mode)}
        return values

    @model_validator(mode="after")
    def _rules_across_groups(self) -> TrainConfig:
        mode, data, schedule = self.model.mode, self.data, self.schedule
        if data.val_reference == "self" and mode not in SINGLE_ACQUISITION_MODES:
            raise ValueError(
                f"val_reference 'self' scores the nb2nb/n2v objective; mode {mode} "
                "validates with 'realisation' or 'clean'"
            )
        if mode == "nb2nb" and data.patch % 64:
            raise ValueError(
                f"nb2nb halves the patch and the U-Net needs multiples of 32: patch must be a "
                f"multiple of 64, got {data.patch}"
            )
        cosine = self.optimisation.lr_schedule == "cosine"
        if cosine and schedule.max_steps is None and schedule.budget is None:
            raise ValueError(
                "schedule 'cosine' anneals to the last step: set max_steps (or a budget)"
            )
        if schedule.step_plan is not None:
            check_plan(schedule.step_plan)
            if schedule.step_plan[-1][2] != schedule.max_steps:
                raise ValueError("step_plan's last max_steps must be max_steps")
        stop = schedule.stop_step
        if stop is not None and schedule.max_steps is not None and stop > schedule.max_steps:
            raise ValueError(f"stop_step {stop} is past max_steps {schedule.max_steps}")
        return self

    def flat_values(self, *, given_only: bool = False) -> dict[str, Any]:
        """Flat key -> value (:data:`FLAT_KEYS`); ``given_only``: the keys set explicitly."""
        values = {}
        for key, (group, field) in FLAT_KEYS.items():
            section = getattr(self, group)
            if not given_only or field in section.model_fields_set:
                values[key] = getattr(section, field)
        return values

    def with_values(self, **values: Any) -> TrainConfig:
        """A copy with these flat keys replaced (not validated again, like ``model_copy``)."""
        updates: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            group, field = FLAT_KEYS[key]
            updates.setdefault(group, {})[field] = value
        groups = {name: getattr(self, name).model_copy(update=u) for name, u in updates.items()}
        return self.model_copy(update=groups)


GROUPS: dict[str, type[BaseModel]] = {
    name: field.annotation for name, field in TrainConfig.model_fields.items()
}
"""Group name -> its model, in the order of ``config.yaml``."""

_FLAT_NAMES = {("data", "path"): "data", ("optimisation", "lr_schedule"): "schedule"}

FLAT_KEYS: dict[str, tuple[str, str]] = {
    _FLAT_NAMES.get((group, field), field): (group, field)
    for group, model in GROUPS.items()
    for field in model.model_fields
}
"""Flat key (a ``lowdose train`` option's name) -> ``(group, field)``."""


def train_field(key: str) -> FieldInfo:
    """The field behind flat ``key``: its default and description (the command line's help)."""
    group, field = FLAT_KEYS[key]
    return GROUPS[group].model_fields[field]


def grouped(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` in the grouped layout: flat keys moved into their groups, winning there.

    A key that names a group and holds a mapping (or a group model) is that group; any other
    key is flat. Unknown keys stay at the top level, where validation names them.

    >>> grouped({"data": "x.h5", "out": "run", "schedule": "cosine", "model": {"width": 16}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'model': {'width': 16}, 'data': {'path': 'x.h5'}, 'optimisation': {'lr_schedule': 'cosine'},
     'schedule': {}, 'runtime': {'out': 'run'}}
    """
    result: dict[str, Any] = {name: {} for name in GROUPS}
    flat = {}
    for key, value in values.items():
        if key in GROUPS and isinstance(value, BaseModel):
            result[key] = {name: getattr(value, name) for name in value.model_fields_set}
        elif key in GROUPS and isinstance(value, Mapping):
            result[key] = dict(value)
        elif key in FLAT_KEYS:
            flat[key] = value
        else:
            result[key] = value
    for key, value in flat.items():
        group, field = FLAT_KEYS[key]
        if isinstance(result[group], dict):  # else validation names the group that is no mapping
            result[group][field] = value
    return result


def merged(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with ``overrides`` winning field by field, grouped (either may be flat)."""
    result = grouped(values)
    for key, value in grouped(overrides).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


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
    schedule, batch_size = config.schedule, config.data.batch_size
    if schedule.max_steps is None:
        return config
    if schedule.step_plan is not None:  # re-planned: epochs as the segments say (datamodule)
        epochs = epoch_steps(schedule.step_plan)
        return config.with_values(samples_per_epoch=epochs[0] * batch_size, epochs=len(epochs))
    steps_per_epoch = steps_between_validations(schedule.max_steps, schedule.validations)
    return config.with_values(
        samples_per_epoch=steps_per_epoch * batch_size,
        epochs=schedule.max_steps // steps_per_epoch,
    )


def make_train_config(values: Mapping[str, Any], *, source: str = "options") -> TrainConfig:
    """Validate ``values`` into a ``TrainConfig``; errors become one ``LowdoseInputError`` line.

    Parameters
    ----------
    values
        Flat keys (:data:`FLAT_KEYS`), groups of fields, or both; paths as str or Path.
    source
        What the values came from (a file name), named in the error.
    """
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise LowdoseInputError(_one_line(exc, source)) from None


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML training config; ``overrides`` (e.g. command-line flags) win over the file.

    The file and the overrides may each be flat or grouped. Relative ``data``/``out`` paths in
    the file are taken relative to the working directory.
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
    return make_train_config(merged(values, overrides or {}), source=str(path))


def save_config(config: BaseModel, path: str | Path) -> None:
    """Write ``config`` as YAML (paths as strings), atomically."""
    values = config.model_dump(mode="json")
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))


def _one_line(exc: ValidationError, source: str) -> str:
    """The first error, naming the key as the user wrote it: flat, or ``group.key``."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    flat = {place: key for key, place in FLAT_KEYS.items()}
    key = flat.get(loc[:2], ".".join(loc)) or "<config>"
    if error["type"] == "extra_forbidden":
        group = GROUPS.get(loc[0]) if len(loc) == 2 else None
        valid = ", ".join(FLAT_KEYS if group is None else group.model_fields)
        return f"{source}: unknown key '{key}'; valid keys: {valid}"
    if error["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:  # a rule across fields: its message names them, the input is all
        return f"{source}: {message}"
    return f"{source}: {key}: {message} (got {error.get('input')!r})"
