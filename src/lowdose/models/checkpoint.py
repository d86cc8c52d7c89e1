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
        realisation, no clean image read), ``"clean-selected"`` (validated against clean images)
        or ``""`` (unknown: a checkpoint without ``val_reference``)."""
        return {"realisation": "clean-free", "clean": "clean-selected"}.get(
            self.val_reference or "", ""
        )


def load_model(checkpoint_path: str | Path) -> tuple[torch.nn.Module, CheckpointMeta]:
    """Rebuild the trained ``UNet`` from a checkpoint, in eval mode on CPU.

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
        A missing file, or a file that is not a lowdose training checkpoint.
    """
    path = Path(checkpoint_path)
    if path.is_dir():
        path = path / "best.ckpt"
    if not path.is_file():
        raise LowdoseInputError(f"checkpoint {path} not found: pass RUN_DIR/best.ckpt")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    hparams = checkpoint.get("hyper_parameters", {})
    if "model" not in hparams:
        raise LowdoseInputError(f"{path} is not a lowdose training checkpoint")
    model = UNet(**hparams["model"])
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
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
