"""Export a trained denoiser to TorchScript or ONNX, with its scaling in a JSON sidecar.

The exported graph takes ``image``: ``(B, 1, H, W)`` float32 of **any** ``H, W`` and returns
``denoised`` of the same shape. The padding to a multiple of 32 that the U-Net needs is part of
the graph (bottom/right reflect padding, replicate for images under 32 px, then a crop), exactly
as ``UNet.forward`` does, so outputs match PyTorch to float round-off. The network core is traced
on a 64 x 64 input (it has no data-dependent control flow once the size is a multiple of 32) and
wrapped in a scripted padding module; ONNX goes through the TorchScript-based exporter (opset 17)
with dynamic batch, height and width (it exports in under a second where the dynamo exporter
takes ~30 s on this machine).

Images must be on the network's scale: the sidecar ``<FILE>.json`` holds the dataset scaling
(``scaled = (raw + scaling_offset) / divisor``, see :mod:`lowdose.data.scaling`) and the model name.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from lowdose import __version__
from lowdose.core.atomic import atomic_path, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.extras import require_extra
from lowdose.models.checkpoint import CheckpointMeta

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17
_GRID_PX = 32
_TRACE_PX = 64


class PadToGrid(nn.Module):
    """Pad ``(B, C, H, W)`` bottom/right to multiples of 32, run ``core``, crop back to ``H, W``."""

    def __init__(self, core: nn.Module) -> None:
        super().__init__()
        self.core = core
        self.grid_px = _GRID_PX  # an attribute: TorchScript cannot read module-level ints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[-2]
        width = x.shape[-1]
        pad_h = (self.grid_px - height % self.grid_px) % self.grid_px
        pad_w = (self.grid_px - width % self.grid_px) % self.grid_px
        # reflect needs pad < size; UNet.forward falls back to replicate the same way
        if pad_h < height and pad_w < width:
            x = F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
        else:
            x = F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
        return self.core(x)[:, :, :height, :width]


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """A TorchScript module taking ``(B, 1, H, W)`` float32 of any size; ``model`` is not modified.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, 1, h, w)`` to ``(B, 1, h, w)`` for ``h, w`` multiples of 32, without
        data-dependent control flow at those sizes (the lowdose U-Net).

    Returns
    -------
    torch.jit.ScriptModule
        On CPU, in eval mode.
    """
    import copy

    core = copy.deepcopy(model).eval().cpu()
    example = torch.zeros(1, 1, _TRACE_PX, _TRACE_PX)
    with warnings.catch_warnings():
        # tracing warns about the U-Net's padding branch, which the wrapper makes constant
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(core, example, check_trace=False)
        return torch.jit.script(PadToGrid(traced))


def export_model(
    model: nn.Module,
    out_path: str | Path,
    *,
    fmt: Literal["torchscript", "onnx"],
    meta: CheckpointMeta,
) -> tuple[Path, Path]:
    """Write ``model`` as TorchScript (``.pt``) or ONNX plus a JSON sidecar, atomically.

    Parameters
    ----------
    model : torch.nn.Module
        The denoiser (from :func:`lowdose.models.checkpoint.load_model`); not modified.
    out_path : str or Path
        Model file to write; the sidecar is ``<out_path>.json``.
    fmt : {"torchscript", "onnx"}
        Export format.
    meta : CheckpointMeta
        The checkpoint's metadata (model, mode, loss, scaling ...), copied into the sidecar.

    Returns
    -------
    (Path, Path)
        The model file and the sidecar.

    Raises
    ------
    LowdoseInputError
        An unknown ``fmt``; ``"onnx"`` without the ``onnx`` extra (one line naming it).
    """
    if fmt not in FORMATS:
        raise LowdoseInputError(
            f"export format {fmt!r} is unknown; use torchscript, onnx or bioimageio"
        )
    if fmt == "onnx":  # before any work: torch's exporter needs the onnx package
        require_extra("onnx", "lowdose export --format onnx")
    path = Path(out_path)
    scripted = to_torchscript(model)
    with atomic_path(path) as tmp:
        if fmt == "torchscript":
            torch.jit.save(scripted, str(tmp))
        else:
            _write_onnx(scripted, tmp)
    sidecar = path.with_name(path.name + ".json")
    atomic_write_text(sidecar, json.dumps(sidecar_meta(meta, fmt), indent=2, default=str) + "\n")
    return path, sidecar


def sidecar_meta(meta: CheckpointMeta, fmt: str) -> dict:
    """What a user of the exported file needs: input contract, scaling and provenance."""

    return {
        "format": fmt,
        "onnx_opset": ONNX_OPSET if fmt == "onnx" else None,
        "input": {
            "name": "image",
            "shape": "(B, 1, H, W)",
            "dtype": "float32",
            "size": "any H, W; padded to multiples of 32 inside the graph",
        },
        "output": {"name": "denoised", "shape": "(B, 1, H, W)", "dtype": "float32"},
        "scaling": dataclasses.asdict(meta.scaling),
        "scaling_formula": (
            "scaled = (raw + scaling_offset) / divisor; raw = output * divisor - scaling_offset; "
            "per_image_max: divisor = max of the image Gaussian-smoothed with sigma 2 px"
        ),
        "model": dataclasses.asdict(meta.model),
        "mode": meta.mode,
        "loss": meta.loss,
        "dataset_sha256": meta.dataset_sha256,
        "lowdose_version": __version__,
        "torch_version": torch.__version__,
    }


def _write_onnx(scripted: torch.jit.ScriptModule, path: Path) -> None:
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            scripted,
            (torch.zeros(1, 1, _TRACE_PX, _TRACE_PX),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["denoised"],
            dynamic_axes={"image": dynamic, "denoised": dynamic},
            opset_version=ONNX_OPSET,
        )
