"""Load a trained denoiser from its Lightning checkpoint, with typed metadata; no trainer needed.

A training checkpoint (``RUN_DIR/best.ckpt`` or ``last.ckpt``, written by
:mod:`lowdose.training.run`) holds the network weights under ``state_dict`` (prefixed ``model.``)
and, under ``hyper_parameters``, the U-Net's constructor arguments (``model``), ``mode``, ``loss``
and ``meta``: a plain dict with the dataset's ``scaling`` (the keys of
:class:`lowdose.data.scaling.NetworkScaling`), ``dataset_sha256``, ``dataset``,
``val_reference``, ``run_dir`` and, once measured, ``validity``
(:class:`~lowdose.models.validity_range.ValidityRange`, importable from here too) and
``scores`` (:class:`~lowdose.models.validation_scores.ValidationScores`, written into
``best.ckpt`` by :func:`store_meta` when training ends). :func:`load_model` turns that into a
``UNet`` in eval mode and a frozen :class:`CheckpointMeta`; keys a checkpoint lacks take the
defaults below.

``load_model("builtin:NAME")`` reads a model shipped in the package instead
(:mod:`lowdose.models.builtin`: safetensors weights and a JSON record holding the same
hyper-parameters), through the same code, so a built-in model is used exactly like a checkpoint.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.models.builtin import BUILTIN_PREFIX, read_builtin
from lowdose.models.unet import UNet
from lowdose.models.validation_scores import ValidationScores
from lowdose.models.validity_range import ValidityRange

WEIGHT_PREFIX = "model."
"""The prefix of the network's weights in a training checkpoint's ``state_dict`` (the training
module holds the U-Net as its ``model``)."""


@dataclass(frozen=True)
class CheckpointModel:
    """The network a checkpoint holds: ``name`` (``"unet-w16-res"``), ``width``, ``residual``."""

    name: str
    width: int
    residual: bool


@dataclass(frozen=True)
class CheckpointMeta:
    """What a training checkpoint says about its model and the data it was trained on.

    Attributes
    ----------
    model : CheckpointModel
    mode : str
        ``"n2n"`` or ``"n2c"``.
    loss : str
        ``"mse"`` or ``"mae"``.
    scaling : NetworkScaling
        Raw units -> the network's scale (applied before the network, inverted after it).
    dataset_sha256 : str or None
        SHA-256 of the training dataset's split table (:func:`lowdose.data.dataset.dataset_sha256`).
    run_dir : str or None
        The training run directory (absolute, as it was when training ran).
    val_reference : str or None
        ``"clean"`` or ``"realisation"``: what the validation PSNR was measured against.
    global_step : int or None
        Optimiser steps done when the checkpoint was written.
    seed : int or None
        The training seed (``TrainConfig.seed``); None for checkpoints that predate it.
    validity : ValidityRange or None
        Where the model helps (input noise levels); None for checkpoints that predate it.
    scores : ValidationScores or None
        The model's validation score beside its noisy input's (the identity's), scored the same
        way; None for checkpoints that predate it and for built-in models.
    """

    model: CheckpointModel
    mode: str
    loss: str
    scaling: NetworkScaling = field(default_factory=NetworkScaling)
    dataset_sha256: str | None = None
    run_dir: str | None = None
    val_reference: str | None = None
    global_step: int | None = None
    seed: int | None = None
    validity: ValidityRange | None = None
    scores: ValidationScores | None = None

    @property
    def selection(self) -> str:
        """How ``best.ckpt`` was chosen: ``"clean-free"`` (validated against a second noisy
        realisation, or by the single-acquisition mode's own loss: ``val_reference`` ``"self"``;
        no clean image read), ``"clean-selected"`` (validated against clean images) or ``""``
        (unknown: a checkpoint without ``val_reference``)."""
        return {"realisation": "clean-free", "self": "clean-free", "clean": "clean-selected"}.get(
            self.val_reference or "", ""
        )


def load_model(checkpoint_path: str | Path) -> tuple[torch.nn.Module, CheckpointMeta]:
    """Rebuild the trained ``UNet`` from a checkpoint or a built-in model, in eval mode on CPU.

    The file is read with ``torch.load(weights_only=True)``: lowdose checkpoints hold only
    tensors and plain values, so nothing in a checkpoint file can run code when it is loaded
    (built-in models are safetensors and JSON, which cannot either).

    Parameters
    ----------
    checkpoint_path : str or Path
        ``RUN_DIR/best.ckpt`` (or any lowdose training checkpoint), ``RUN_DIR`` itself, or
        ``"builtin:NAME"`` for a model shipped in the package (:mod:`lowdose.models.builtin`).

    Returns
    -------
    model : lowdose.models.unet.UNet
        Maps ``(B, 1, H, W)`` images on the dataset scale to denoised ones on the same scale.
    meta : CheckpointMeta

    Raises
    ------
    LowdoseInputError
        One line naming the file: a missing file, or one that is not a readable lowdose training
        checkpoint (empty, cut short, corrupt, another program's checkpoint, or weights that do
        not fit the network its hyper-parameters name); for ``builtin:NAME`` an unknown name
        (the line lists the known ones) or a corrupt record or weights file.

    Examples
    --------
    >>> model, meta = load_model("builtin:ct-sinogram")
    >>> meta.model.name, meta.mode, meta.scaling.raw_units
    ('unet-w16-res', 'n2n', 'hu')
    """
    if str(checkpoint_path).startswith(BUILTIN_PREFIX):
        return _load_builtin(str(checkpoint_path).removeprefix(BUILTIN_PREFIX))
    path = Path(checkpoint_path)
    if path.is_dir():
        path = path / "best.ckpt"
    if not path.is_file():
        raise LowdoseInputError(f"checkpoint {path} not found: pass RUN_DIR/best.ckpt")
    checkpoint = _read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters")
    state = checkpoint.get("state_dict")
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise _unreadable(path, "no lowdose hyper_parameters and state_dict")
    unreadable = partial(_unreadable, path)
    model, meta = _model_and_meta(hparams, state, checkpoint.get("global_step"), unreadable)
    return model.eval(), meta


def _load_builtin(name: str) -> tuple[UNet, CheckpointMeta]:
    record, state, weights_path = read_builtin(name)

    def unreadable(reason: str) -> LowdoseInputError:
        return LowdoseInputError(
            f"{weights_path}: not a readable built-in model ({reason}): reinstall lowdose or "
            f"repack {name} with lowdose models pack"
        )

    model, meta = _model_and_meta(record.hyper_parameters, state, record.global_step, unreadable)
    return model.eval(), meta


def _model_and_meta(
    hparams: Mapping[str, Any],
    state: Mapping[str, Any],
    global_step: int | None,
    unreadable: Callable[[str], LowdoseInputError],
) -> tuple[UNet, CheckpointMeta]:
    """The network and typed metadata that ``hyper_parameters`` and weights describe."""
    missing = [key for key in ("model", "mode", "loss") if key not in hparams]
    if missing or not isinstance(hparams["model"], dict):
        raise unreadable(f"hyper_parameters lack {', '.join(missing) or 'a model dict'}")
    model = _network(hparams["model"], state, unreadable)
    extra = hparams.get("meta") or {}
    meta = CheckpointMeta(
        model=CheckpointModel(name=model.name, width=model.width, residual=model.residual),
        mode=hparams["mode"],
        loss=hparams["loss"],
        scaling=NetworkScaling.from_dict(extra.get("scaling") or {}),
        dataset_sha256=extra.get("dataset_sha256"),
        run_dir=extra.get("run_dir"),
        val_reference=extra.get("val_reference"),
        global_step=global_step,
        seed=extra.get("seed"),
        validity=_validity(extra.get("validity"), unreadable),
        scores=_scores(extra.get("scores"), unreadable),
    )
    return model, meta


def _scores(values: Any, unreadable: Callable[[str], LowdoseInputError]) -> ValidationScores | None:
    if values is None:  # checkpoints from before the identity was scored
        return None
    try:
        return ValidationScores.from_dict(values)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise unreadable(f"meta.scores is malformed: {type(exc).__name__} {exc}") from None


def store_meta(checkpoint_path: str | Path, **values: Any) -> None:
    """Rewrite a training checkpoint with ``values`` merged into ``hyper_parameters["meta"]``.

    Everything else in the file is kept; the new file replaces the old one atomically
    (:func:`lowdose.core.atomic.atomic_path`), so a crash leaves the old checkpoint whole.
    ``values`` must be plain values (numbers, strings, lists, dicts) so the file still loads
    with ``weights_only=True``. Raises ``LowdoseInputError`` (one line naming the file) for a
    missing or unreadable checkpoint.
    """

    def merge(checkpoint: dict, path: Path) -> None:
        hparams = checkpoint.get("hyper_parameters")
        if not isinstance(hparams, dict):
            raise _unreadable(path, "no lowdose hyper_parameters")
        hparams["meta"] = {**(hparams.get("meta") or {}), **values}

    _rewrite(checkpoint_path, merge)


def _validity(values: Any, unreadable: Callable[[str], LowdoseInputError]) -> ValidityRange | None:
    if values is None:  # checkpoints from before validity was measured
        return None
    try:
        return ValidityRange.from_dict(values)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise unreadable(f"meta.validity is malformed: {type(exc).__name__} {exc}") from None


def store_identity(checkpoint_path: str | Path) -> None:
    """Rewrite a residual U-Net's training checkpoint so that its network is the identity.

    The output convolution (:attr:`UNet.OUTPUT_LAYER`) of the saved weights (and of the raw
    weights beside the averaged ones) is set to zero: the residual net's untrained state, output =
    input. Everything else is kept; the file is replaced atomically.

    Raises
    ------
    LowdoseInputError
        A missing or unreadable checkpoint, or one of a non-residual network (no identity state).
    """

    def zero_output_layer(checkpoint: dict, path: Path) -> None:
        if not (checkpoint.get("unet_config") or {}).get("residual"):
            raise LowdoseInputError(
                f"{path}: not a residual network, whose untrained state is input"
            )
        for states in ("state_dict", "current_model_state"):
            weights = checkpoint.get(states)
            for part in ("weight", "bias"):
                key = f"{WEIGHT_PREFIX}{UNet.OUTPUT_LAYER}.{part}"
                if isinstance(weights, dict) and key in weights:
                    weights[key] = torch.zeros_like(weights[key])

    _rewrite(checkpoint_path, zero_output_layer)


def _rewrite(checkpoint_path: str | Path, change: Callable[[dict, Path], None]) -> None:
    """Read a training checkpoint, ``change(checkpoint, path)`` it, replace the file atomically."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise LowdoseInputError(f"checkpoint {path} not found: pass RUN_DIR/best.ckpt")
    checkpoint = _read_checkpoint(path)
    change(checkpoint, path)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _read_checkpoint(path: Path) -> dict:
    """``torch.load`` of ``path`` as a dict, or one-line ``LowdoseInputError`` saying why not."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    # What torch.load raises for files that are not (whole) torch checkpoints: an empty file
    # (EOFError), a cut-short or corrupt archive (RuntimeError, BadZipFile, or OSError EINVAL
    # from torch's zip reader, depending on where it was cut), bytes that are no pickle, or a
    # pickle of objects that weights_only refuses (UnpicklingError, KeyError, ...). A file the
    # user may not read stays a PermissionError: the command line says so.
    except PermissionError:
        raise
    except EOFError:
        raise _unreadable(path, "the file is empty or ends early") from None
    except (RuntimeError, zipfile.BadZipFile, OSError):
        raise _unreadable(path, "not a complete torch archive: cut short or corrupt") from None
    except (pickle.UnpicklingError, KeyError, ValueError, TypeError, AttributeError, IndexError):
        reason = "corrupt bytes, or objects other than tensors and plain values"
        raise _unreadable(path, reason) from None
    if not isinstance(checkpoint, dict):
        raise _unreadable(path, f"it holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def _network(
    config: dict, state: Mapping[str, Any], unreadable: Callable[[str], LowdoseInputError]
) -> UNet:
    """The ``UNet`` that ``config`` names, with the (``model.``-prefixed) weights of ``state``."""
    try:
        model = UNet(**config)
    except (TypeError, ValueError) as exc:
        raise unreadable(f"unknown network settings {config}: {exc}") from None
    weights = {k.removeprefix(WEIGHT_PREFIX): v for k, v in state.items()}
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError):  # missing, unexpected, mis-shaped or non-tensor weights
        raise unreadable(f"its weights do not fit {model.name}") from None
    return model


def _unreadable(path: Path, reason: str) -> LowdoseInputError:
    return LowdoseInputError(
        f"{path}: not a readable lowdose checkpoint ({reason}): "
        "pass RUN_DIR/best.ckpt of a lowdose training"
    )
