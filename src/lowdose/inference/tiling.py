"""How to cut an image into tiles whose stitched network output equals the untiled output.

A U-Net's output near a tile edge differs from the untiled output (zero padding inside every
convolution, a shifted pooling grid), so tiles overlap and each keeps only its centre: a margin
is cropped from every tile side that is not an image edge ("crop the margin"). Stitching is then
exact, equal to one pass over the whole image to float round-off (measured <= 7e-6 on
outputs of order 1), when

* the margin is at least the network's receptive-field radius (:func:`probe_model` bounds it from
  the convolutions the network runs: 127 + 32 px for the paper's six-level U-Net, so 160;
  seams vanish from 128 on, measured), and
* every tile starts at a multiple of 32 and is a multiple of 32 long, so the five 2x2 poolings
  see the same grid in a tile as in the whole image. The image is first padded to a multiple of
  32 exactly as :class:`lowdose.models.UNet` pads internally (bottom/right, reflect).

The tile side is the largest that fits free memory (``/proc/meminfo`` on CPU,
``torch.cuda.mem_get_info`` on GPU) at the activation bytes per pixel the probe measures; an
image that fits is done in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lowdose.core.errors import LowdoseInputError

GRID_PX = 32  # five 2x2 poolings: tiles start and end on this grid
_PROBE_PX = 64
# Peak live activations measured here (w48: 1.1 kB/px, w16: 0.41-0.53 kB/px at 1024^2) are
# 1.0-1.4x the summed convolution outputs; 1.5x keeps a tile from swapping.
_MEMORY_SAFETY = 1.5
_CPU_MEMORY_FRACTION = 0.4  # other processes share the machine
_GPU_MEMORY_FRACTION = 0.7


@dataclass(frozen=True)
class Footprint:
    """What tiling needs to know about a network.

    Attributes
    ----------
    margin_px : int
        Pixels cropped from each inner tile side: receptive-field radius bound, multiple of 32.
    bytes_per_pixel : float
        Estimated peak float32 activation memory per input pixel during inference.
    """

    margin_px: int
    bytes_per_pixel: float


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one padded image go.

    Attributes
    ----------
    rows, cols : list of (int, int, int)
        :func:`tile_spans` along each axis.
    tile_hw : (int, int)
        Tile height and width in pixels (multiples of 32).
    margin_px : int
        Margin cropped from inner tile sides.
    batch : int
        Tiles per forward pass.
    """

    rows: list
    cols: list
    tile_hw: tuple[int, int]
    margin_px: int
    batch: int


def plan_tiles(
    footprint: Footprint,
    padded_hw: tuple[int, int],
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    budget_bytes: float,
) -> TilePlan:
    """Tile size, margin and batch for a padded ``(H, W)`` image (see ``inference.predict``).

    Returns
    -------
    TilePlan
        One tile per axis when the axis fits; the batch is lowered until it fits the budget.
    """
    margin = footprint.margin_px if overlap is None else _grid_ceil(max(0, overlap))
    side = choose_tile(footprint, budget_bytes) if tile is None else _grid_ceil(tile)
    if side <= 2 * margin and side < max(padded_hw):
        raise LowdoseInputError(
            f"tile={side} px keeps nothing after cropping a {margin} px margin from each side; "
            f"use a tile of at least {2 * margin + GRID_PX} px"
        )
    tile_hw = (min(side, padded_hw[0]), min(side, padded_hw[1]))
    fitting = int(budget_bytes // (footprint.bytes_per_pixel * tile_hw[0] * tile_hw[1]))
    return TilePlan(
        rows=tile_spans(padded_hw[0], side, margin),
        cols=tile_spans(padded_hw[1], side, margin),
        tile_hw=tile_hw,
        margin_px=margin,
        batch=max(1, min(batch_size, fitting)),
    )


def probe_model(model: nn.Module, *, device: str | torch.device = "cpu") -> Footprint:
    """Bound a network's receptive field and measure its activations with one 64x64 forward.

    Each ``nn.Conv2d`` adds ``dilation * (kernel - 1) // 2`` pixels times its level's stride (the
    input size over the convolution's input size). Poolings and upsamplings are functional in the
    U-Net and invisible to hooks; on tiles aligned to the 32-pixel grid they only move
    information within one deepest-level block, so one deepest stride is added.

    Parameters
    ----------
    model : torch.nn.Module
        On ``device``; not modified (hooks are removed afterwards).
    device : str or torch.device
        Where the probe runs.

    Returns
    -------
    Footprint
        ``margin_px`` at least 32.
    """
    radius, out_values, strides = 0.0, 0.0, [1.0]

    def hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal radius, out_values
        stride = _PROBE_PX / inputs[0].shape[-2]
        strides.append(stride)
        radius += module.dilation[0] * (module.kernel_size[0] - 1) // 2 * stride
        out_values += output[0].numel()

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles = [conv.register_forward_hook(hook) for conv in convs]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 1, _PROBE_PX, _PROBE_PX, device=device))
    finally:
        for handle in handles:
            handle.remove()
    radius += max(strides)
    margin_px = max(GRID_PX, _grid_ceil(math.ceil(radius)))
    bytes_per_pixel = 4.0 * _MEMORY_SAFETY * (out_values / _PROBE_PX**2 + 2.0)
    return Footprint(margin_px=margin_px, bytes_per_pixel=bytes_per_pixel)


def available_bytes(device: torch.device) -> float:
    """Bytes a prediction may use: a fraction of free GPU memory or of Linux ``MemAvailable``."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return _GPU_MEMORY_FRACTION * free
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return _CPU_MEMORY_FRACTION * int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2.0 * 1024**3  # no /proc (macOS): assume 2 GiB


def choose_tile(footprint: Footprint, budget_bytes: float) -> int:
    """Largest tile side (a multiple of 32) whose activations fit ``budget_bytes``.

    Never below ``2 * margin_px + 32``, the smallest tile that keeps a centre.
    """
    side = math.isqrt(int(budget_bytes / footprint.bytes_per_pixel))
    return max(GRID_PX * (side // GRID_PX), 2 * footprint.margin_px + GRID_PX)


def tile_spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int]]:
    """Tiles along one axis as ``(start, keep_lo, keep_hi)`` in padded-image pixels.

    Parameters
    ----------
    length : int
        Padded axis length, a multiple of 32.
    tile, margin : int
        Tile length and cropped margin, multiples of 32, ``tile > 2 * margin`` unless one tile
        covers the axis.

    Returns
    -------
    list of (int, int, int)
        Tile ``[start, start + min(tile, length))`` keeps its output on ``[keep_lo, keep_hi)``;
        the kept spans cover ``[0, length)`` and every start is a multiple of 32.

    Examples
    --------
    >>> tile_spans(1024, 512, 128)
    [(0, 0, 384), (256, 384, 640), (512, 640, 1024)]
    """
    if length <= tile:
        return [(0, 0, length)]
    starts = list(range(0, length - tile, tile - 2 * margin)) + [length - tile]
    return [
        (
            start,
            0 if start == 0 else start + margin,
            length if start + tile == length else start + tile - margin,
        )
        for start in starts
    ]


def pad_to_grid(stack: np.ndarray) -> np.ndarray:
    """Pad ``(B, H, W)`` bottom/right to multiples of 32 as ``UNet.forward`` does; float32 copy.

    Reflect padding (numpy ``reflect`` == torch ``reflect``) when both pads are smaller than the
    image, else edge replication (torch ``replicate``).
    """
    height, width = stack.shape[-2:]
    pad_h, pad_w = _grid_ceil(height) - height, _grid_ceil(width) - width
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    return np.pad(stack.astype(np.float32), ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)


def _grid_ceil(pixels: int) -> int:
    return GRID_PX * math.ceil(pixels / GRID_PX)
