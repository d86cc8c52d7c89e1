"""The models shipped in the package: where they live, their records and model cards, reading them.

A built-in model ``NAME`` is three files in one folder (the package's ``models/builtin/``, or
the folder in the environment variable ``LOWDOSE_BUILTIN_DIR``):

``NAME.safetensors``
    The U-Net's weights only (safetensors: no code runs when it is read).
``NAME.json``
    Its :class:`BuiltinRecord`: the checkpoint's ``hyper_parameters`` (``model``, ``mode``,
    ``loss``, ``meta`` with ``scaling`` and ``validity``), the weights' SHA-256, and the
    :class:`ModelCard`. A model exists once its JSON exists: ``lowdose models pack`` writes it
    last, so a pack cut short lists nothing half-written.
``NAME.md``
    The model card for people, generated from the JSON (:mod:`lowdose.models.builtin_pack`).

:func:`lowdose.models.checkpoint.load_model` reads ``"builtin:NAME"`` through
:func:`read_builtin`, so a built-in model is used exactly like a checkpoint path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lowdose.core.errors import LowdoseInputError

BUILTIN_PREFIX = "builtin:"
"""``--model builtin:NAME`` names a built-in model instead of a checkpoint path."""
BUILTIN_DIR_ENV = "LOWDOSE_BUILTIN_DIR"
"""Environment variable: a folder of built-in models to use instead of the package's."""
PACKAGE_DIR = Path(__file__).resolve().parent / "builtin"
RECORD_FORMAT = "lowdose-builtin/1"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ModelCard(BaseModel):
    """What people need to know about a built-in model (``CARD.yaml`` of ``lowdose models pack``).

    ``units_in``/``units_out`` default to the checkpoint's raw units (``HU`` for CT in HU);
    ``window`` is a display window ``(low, high)`` in ``units_in`` (CT: soft tissue if unset).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1)
    description: str = ""
    modality: Literal["xray", "ct"]
    units_in: str | None = None
    units_out: str | None = None
    noise_model: str = Field(min_length=1)
    training_data: str = Field(min_length=1)
    data_licence: str = Field(min_length=1)
    data_citation: str = ""
    doses: str = Field(min_length=1)
    test_data: str = ""
    test_metrics: dict[str, float | str] = Field(min_length=1)
    command: str = Field(min_length=1)
    licence: str = "BSD-3-Clause"
    authors: list[str] = Field(default_factory=lambda: ["lowdose contributors"], min_length=1)
    window: tuple[float, float] | None = None


def read_card(path: str | Path) -> ModelCard:
    """``CARD.yaml`` as a :class:`~lowdose.models.builtin.ModelCard`; errors: one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise LowdoseInputError(f"--card {path} not found: pass a YAML model card")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LowdoseInputError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    if not isinstance(values, dict):
        raise LowdoseInputError(f"{path}: expected a mapping of card fields at the top level")
    try:
        return ModelCard.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "<card>"
        if error["type"] == "extra_forbidden":
            valid = ", ".join(ModelCard.model_fields)
            raise LowdoseInputError(f"{path}: unknown key '{key}'; valid keys: {valid}") from None
        raise LowdoseInputError(f"{path}: {key}: {error['msg']}") from None


@dataclasses.dataclass(frozen=True)
class BuiltinRecord:
    """``NAME.json``: what :class:`lowdose.models.checkpoint.CheckpointMeta` needs, and the card.

    Attributes
    ----------
    name : str
        The model's name (``builtin:NAME``): lower case letters, digits, ``.``, ``_``, ``-``.
    hyper_parameters : dict
        ``model`` (U-Net constructor arguments), ``mode``, ``loss`` and ``meta`` (``scaling``,
        ``validity``, ``dataset_sha256``, ``val_reference``, ``seed``), as the checkpoint held
        them (without the training machine's paths).
    global_step : int or None
        Optimiser steps of the packed checkpoint.
    weights_sha256 : str
        SHA-256 of ``NAME.safetensors``, checked on every load.
    weights_bytes, parameters : int
        Size of the weights file and number of network parameters.
    card : ModelCard
    lowdose_version : str
        The lowdose that packed it.
    """

    name: str
    hyper_parameters: dict[str, Any]
    global_step: int | None
    weights_sha256: str
    weights_bytes: int
    parameters: int
    card: ModelCard
    lowdose_version: str

    def to_json(self) -> str:
        """The JSON text of ``NAME.json`` (read back by :meth:`from_json`)."""
        values = {
            "format": RECORD_FORMAT,
            "name": self.name,
            "hyper_parameters": self.hyper_parameters,
            "global_step": self.global_step,
            "weights": {
                "file": f"{self.name}.safetensors",
                "sha256": self.weights_sha256,
                "bytes": self.weights_bytes,
                "parameters": self.parameters,
            },
            "card": self.card.model_dump(mode="json"),
            "lowdose_version": self.lowdose_version,
        }
        return json.dumps(values, indent=2) + "\n"

    @classmethod
    def from_json(cls, path: Path) -> BuiltinRecord:
        """Read ``NAME.json``; anything malformed is one ``LowdoseInputError`` line naming it."""
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            if values.get("format") != RECORD_FORMAT:
                raise ValueError(f"format {values.get('format')!r} is not {RECORD_FORMAT!r}")
            weights = values["weights"]
            return cls(
                name=str(values["name"]),
                hyper_parameters=dict(values["hyper_parameters"]),
                global_step=values.get("global_step"),
                weights_sha256=str(weights["sha256"]),
                weights_bytes=int(weights["bytes"]),
                parameters=int(weights["parameters"]),
                card=ModelCard.model_validate(values["card"]),
                lowdose_version=str(values.get("lowdose_version", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise LowdoseInputError(
                f"{path}: not a readable built-in model record ({reason}); "
                "repack it with lowdose models pack"
            ) from None


def builtin_dir() -> Path:
    """The folder of built-in models: ``$LOWDOSE_BUILTIN_DIR`` if set, else the package's."""
    override = os.environ.get(BUILTIN_DIR_ENV, "").strip()
    return Path(override) if override else PACKAGE_DIR


def builtin_names(folder: Path | None = None) -> list[str]:
    """Sorted names of the models (``NAME.json`` files) in ``folder`` (default: builtin_dir)."""
    folder = builtin_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.json") if NAME_PATTERN.match(path.stem))


def record_path(name: str, folder: Path | None = None) -> Path:
    """``FOLDER/NAME.json`` of an existing model, or a one-line error listing the names there."""
    folder = builtin_dir() if folder is None else Path(folder)
    path = folder / f"{name}.json"
    if NAME_PATTERN.match(name) and path.is_file():
        return path
    names = builtin_names(folder)
    known = f"available: {', '.join(names)}" if names else f"none are installed in {folder}"
    raise LowdoseInputError(
        f"{BUILTIN_PREFIX}{name}: no such built-in model; {known} (lowdose models lists them)"
    )


def read_builtin(name: str, folder: Path | None = None) -> tuple[BuiltinRecord, dict, Path]:
    """The record and weights of built-in model ``name``, checked against each other.

    Parameters
    ----------
    name : str
        ``NAME`` of ``builtin:NAME``.
    folder : Path, optional
        Where the models are (default :func:`builtin_dir`).

    Returns
    -------
    record : BuiltinRecord
    state : dict of str to torch.Tensor
        The network's ``state_dict`` (float32 on CPU).
    weights_path : Path
        ``NAME.safetensors``, for messages.

    Raises
    ------
    LowdoseInputError
        One line naming the file: an unknown name (listing the known ones), a malformed record,
        a missing or corrupt weights file, or weights whose SHA-256 the record does not name.
    """
    path = record_path(name, folder)
    record = BuiltinRecord.from_json(path)
    weights_path = path.with_suffix(".safetensors")
    if not weights_path.is_file():
        raise LowdoseInputError(f"{weights_path} not found: reinstall lowdose or repack {name}")
    data = weights_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.weights_sha256:
        raise LowdoseInputError(
            f"{weights_path}: its SHA-256 is not the one {path.name} records (corrupt or "
            f"replaced); reinstall lowdose or repack {name}"
        )
    return record, _safetensors_state(data, weights_path), weights_path


def _safetensors_state(data: bytes, path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load  # imports torch

    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise LowdoseInputError(
            f"{path}: not a readable safetensors file ({reason}); "
            "repack it with lowdose models pack"
        ) from None
