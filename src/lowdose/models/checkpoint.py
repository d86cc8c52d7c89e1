"""Load a trained denoiser from its Lightning checkpoint, with typed metadata; no trainer needed.

A training checkpoint (``RUN_DIR/best.ckpt`` or ``last.ckpt``, written by
:mod:`lowdose.training.run`) holds the network weights under ``state_dict`` (prefixed ``model.``)
and, under ``hyper_parameters``, the U-Net's constructor arguments (``model``), ``mode``, ``loss``
and ``meta``: a plain dict with the dataset's ``scaling`` (the keys of
:class:`lowdose.data.scaling.NetworkScaling`), ``dataset_sha256``, ``dataset``,
``val_reference`` and ``run_dir``. :func:`load_model` turns that into a ``UNet`` in eval mode and a
frozen :class:`CheckpointMeta`; keys a checkpoint lacks take the defaults below.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.models.unet import UNet


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
    """Rebuild the trained ``UNet`` from a checkpoint, in eval mode on CPU.

    The file is read with ``torch.load(weights_only=True)``: lowdose checkpoints hold only
    tensors and plain values, so nothing in a checkpoint file can run code when it is loaded.

    Parameters
    ----------
    checkpoint_path : str or Path
        ``RUN_DIR/best.ckpt`` (or any lowdose training checkpoint), or ``RUN_DIR`` itself.

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
        not fit the network its hyper-parameters name).
    """
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
    missing = [key for key in ("model", "mode", "loss") if key not in hparams]
    if missing or not isinstance(hparams["model"], dict):
        raise _unreadable(path, f"hyper_parameters lack {', '.join(missing) or 'a model dict'}")
    model = _network(path, hparams["model"], state)
    extra = hparams.get("meta") or {}
    meta = CheckpointMeta(
        model=CheckpointModel(name=model.name, width=model.width, residual=model.residual),
        mode=hparams["mode"],
        loss=hparams["loss"],
        scaling=NetworkScaling.from_dict(extra.get("scaling") or {}),
        dataset_sha256=extra.get("dataset_sha256"),
        run_dir=extra.get("run_dir"),
        val_reference=extra.get("val_reference"),
        global_step=checkpoint.get("global_step"),
        seed=extra.get("seed"),
    )
    return model.eval(), meta


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


def _network(path: Path, config: dict, state: dict) -> UNet:
    """The ``UNet`` that ``config`` names, with the ``model.``-prefixed weights of ``state``."""
    try:
        model = UNet(**config)
    except (TypeError, ValueError) as exc:
        raise _unreadable(path, f"unknown network settings {config}: {exc}") from None
    weights = {k.removeprefix("model."): v for k, v in state.items()}
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError):  # missing, unexpected, mis-shaped or non-tensor weights
        raise _unreadable(path, f"its weights do not fit {model.name}") from None
    return model


def _unreadable(path: Path, reason: str) -> LowdoseInputError:
    return LowdoseInputError(
        f"{path}: not a readable lowdose checkpoint ({reason}): "
        "pass RUN_DIR/best.ckpt of a lowdose training"
    )
