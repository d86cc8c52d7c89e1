"""The record of one reproduced experiment: ``RUN_DIR/<experiment>/experiment.json``.

``lowdose reproduce`` (:mod:`lowdose.pipeline.reproduce`) writes it when the dataset is built and
again, with the wall times, when every stage is done; the report (:mod:`lowdose.report.build`)
reads it back. Both go through :class:`ExperimentRecord`, so the keys are written in one place
and read typed. The JSON keys are the field names below (the file format of the first version,
unchanged); a missing key reads as its default, so a report can still be built from a folder
that only has results.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs


@dataclass(frozen=True)
class ExperimentRecord:
    """What ``experiment.json`` says about one experiment.

    Attributes
    ----------
    name : str
        The experiment's name (its folder under the run directory); empty when unknown.
    paper_table : str or None
        The paper's table it reproduces (Roman numeral, e.g. ``"III"``), if any.
    scale : str or None
        ``quick``, ``medium`` or ``paper``.
    baseline_target_db : float
        The dataset's target PSNR in dB (data_range 1 on the dataset scale); NaN when unknown.
    achieved_psnr_db : float
        The PSNR the noisy realisations reached (dB, same convention); NaN when unknown.
    dataset : str
        The dataset file, relative to the run directory.
    dataset_attrs : DatasetAttrs or None
        The dataset file's attributes.
    config : Mapping
        The resolved experiment configuration (pydantic's JSON form).
    environment : Mapping[str, str]
        Machine and versions (:meth:`lowdose.core.environment.Environment.report_fields`).
    wall_times_s : Mapping[str, float]
        Wall time per stage in seconds (``dataset_s``, ``train_s``, ..., ``total_s``).
    """

    name: str = ""
    paper_table: str | None = None
    scale: str | None = None
    baseline_target_db: float = math.nan
    achieved_psnr_db: float = math.nan
    dataset: str = ""
    dataset_attrs: DatasetAttrs | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    wall_times_s: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, values: Mapping[str, Any], *, where: str) -> ExperimentRecord:
        """Read the parsed JSON of ``experiment.json``; ``where`` names the file in errors."""
        attrs = values.get("dataset_attrs")
        return cls(
            name=str(values.get("name") or ""),
            paper_table=_optional_str(values.get("paper_table")),
            scale=_optional_str(values.get("scale")),
            baseline_target_db=_float(values.get("baseline_target_db")),
            achieved_psnr_db=_float(values.get("achieved_psnr_db")),
            dataset=str(values.get("dataset") or ""),
            dataset_attrs=(
                DatasetAttrs.from_hdf5(attrs, where=f"{where} (dataset_attrs)")
                if isinstance(attrs, Mapping)
                else None
            ),
            config=dict(values.get("config") or {}),
            environment=dict(values.get("environment") or {}),
            wall_times_s={k: _float(v) for k, v in (values.get("wall_times_s") or {}).items()},
        )

    def to_json(self) -> str:
        """The file's text: indented JSON with the keys in the order of the fields."""
        values = asdict(self)
        values["dataset_attrs"] = (
            self.dataset_attrs.to_hdf5() if self.dataset_attrs is not None else None
        )
        return json.dumps(values, indent=2, default=str)

    def with_wall_times(self, wall_times_s: Mapping[str, float]) -> ExperimentRecord:
        """A copy with the stages' wall times filled in."""
        return replace(self, wall_times_s=dict(wall_times_s))


def read_experiment_record(path: str | os.PathLike) -> ExperimentRecord:
    """Read ``experiment.json``; a malformed file is a one-line error naming it."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LowdoseInputError(f"{path}: no such file; run that experiment first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LowdoseInputError(f"{path}: not valid JSON ({exc}); rewrite or delete it") from None
    if not isinstance(values, dict):
        raise LowdoseInputError(f"{path}: expected a JSON object; rewrite or delete it")
    return ExperimentRecord.from_json(values, where=str(path))


def _float(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
