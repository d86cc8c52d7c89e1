"""Denoise images of any size, one image or a stack, on CPU or GPU, without tile seams.

:func:`predict` runs a network on the network's scale in overlapping tiles planned by
:mod:`lowdose.inference.tiling` (crop-the-margin with a receptive-field margin on a 32-pixel grid,
so the output equals one untiled pass to float round-off), optionally averaged over the 8
dihedral transforms of each image (``tta=8``, :mod:`lowdose.inference.self_ensemble`);
:func:`denoise` wraps it in the dataset's scaling (:mod:`lowdose.data.scaling`) so the output
is in the input's units; :func:`denoise_in_field_of_view` shows the network air where a CT
scanner stored padding outside the reconstructed field of view, and puts the padding back
afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.core.validation import checked_images
from lowdose.data.scaling import NetworkScaling, scale_from_network, scale_to_network
from lowdose.inference.self_ensemble import checked_tta, self_ensemble
from lowdose.inference.tiling import (
    Footprint,
    available_bytes,
    pad_to_grid,
    plan_tiles,
    probe_model,
)
from lowdose.physics.field_of_view import AIR_HU

DENOISE_STAGE = "denoise"


def predict(
    model: nn.Module,
    images,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    channels_last: bool = True,
    tta: int = 1,
    progress: Progress | None = None,
    on_image_done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run ``model`` over images of any size in overlapping tiles; stitched output is seam-free.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, 1, h, w)`` float32 to ``(B, 1, h, w)`` for ``h, w`` multiples of 32. Not
        modified (a copy is moved to ``device``).
    images : array_like, shape (H, W) or (B, H, W)
        Real, finite images on the network's scale (see :mod:`lowdose.data.scaling`); not modified.
    tile : int, optional
        Tile side in pixels (rounded up to a multiple of 32). Default: the largest that fits
        free memory, so an image that fits is done in one pass.
    overlap : int, optional
        Margin cropped from each inner tile side (rounded up to 32). Default: the network's
        receptive-field bound, which makes tiled output equal untiled output; a smaller value
        is faster but leaves seams.
    batch_size : int
        Tiles per forward pass (lowered automatically when the tiles would not fit in memory).
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    channels_last : bool
        Use the NHWC memory layout (faster for convolutions on CPU).
    tta : {1, 8}
        1: one pass per image. 8: the self-ensemble, the mean of the network over the 8
        dihedral transforms of each image (4 rotations x mirror), each output transformed back
        (:mod:`lowdose.inference.self_ensemble`); 8x the time, exactly equivariant.
    progress : Progress, optional
        ``progress("denoise", done, n_images)`` after each image is complete (``done``: images
        finished so far, see :mod:`lowdose.core.progress`), whatever ``tta``.
    on_image_done : callable, optional
        ``on_image_done(done)`` with the same count, for a caller that wants the count alone.

    Returns
    -------
    ndarray, same shape as ``images``, float32
        The network output.
    """
    views = checked_tta(tta)
    array = checked_images(images, "images")
    stack = array[None] if array.ndim == 2 else array
    dev = checked_device(device)
    work = copy.deepcopy(model).eval().to(dev)
    if channels_last:
        work = work.to(memory_format=torch.channels_last)
    tiler = _Tiler(
        work,
        dev,
        probe_model(work, device=dev),
        available_bytes(dev),
        tile,
        overlap,
        batch_size,
        channels_last,
    )
    report = _image_progress(progress, on_image_done)
    if views == 1:
        result = tiler(stack, report)
    else:
        result = np.empty(stack.shape, dtype=np.float32)
        for index, image in enumerate(stack):  # the 8 views of one image batch together
            result[index] = self_ensemble(tiler, image)
            if report is not None:
                report(DENOISE_STAGE, index + 1, len(stack))
    return result[0] if array.ndim == 2 else result


@dataclass(frozen=True)
class _Tiler:
    """A network on its device and how to tile for it: called on one ``(B, H, W)`` stack."""

    work: nn.Module
    device: torch.device
    footprint: Footprint
    budget_bytes: float
    tile: int | None
    overlap: int | None
    batch_size: int
    channels_last: bool

    def __call__(self, stack: np.ndarray, report: Progress | None = None) -> np.ndarray:
        """(B, H, W) float32 network output; ``report`` as images finish. Each stack shape
        gets its own plan, so views with H and W swapped tile as well as the image."""
        n_images, height, width = stack.shape
        padded = pad_to_grid(stack)
        plan = plan_tiles(
            self.footprint,
            padded.shape[1:],
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            budget_bytes=self.budget_bytes,
        )
        jobs = [(i, r, c) for i in range(n_images) for r in plan.rows for c in plan.cols]
        out = np.empty(padded.shape, dtype=np.float32)
        finished = 0
        with torch.inference_mode():
            for first in range(0, len(jobs), plan.batch):
                chunk = jobs[first : first + plan.batch]
                _run_chunk(
                    self.work, padded, out, chunk, plan.tile_hw, self.device, self.channels_last
                )
                # jobs run image by image: the next job's image index counts the finished ones
                now = jobs[first + plan.batch][0] if first + plan.batch < len(jobs) else n_images
                if report is not None and now > finished:
                    report(DENOISE_STAGE, now, n_images)
                finished = now
        return out[:, :height, :width]


def denoise(model: nn.Module, raw, *, scaling: NetworkScaling, **predict_kwargs) -> np.ndarray:
    """Denoise images given in their own units; the output is in the same units.

    Parameters
    ----------
    model : torch.nn.Module
        A trained denoiser (see :func:`lowdose.models.checkpoint.load_model`).
    raw : array_like, shape (H, W) or (B, H, W)
        Images in raw units (transmission, HU ...), finite.
    scaling : NetworkScaling
        The checkpoint's ``meta.scaling``: applied before the network, inverted after it.
    **predict_kwargs
        Passed to :func:`predict` (``tile``, ``batch_size``, ``device``, ``tta``, ``progress`` ...).

    Returns
    -------
    ndarray, same shape as ``raw``, float32
        Denoised images in raw units.
    """
    scaled, divisor = scale_to_network(checked_images(raw, "images"), scaling)
    return scale_from_network(predict(model, scaled, **predict_kwargs), scaling, divisor)


def denoise_in_field_of_view(
    model: nn.Module,
    raw,
    field_of_view,
    *,
    scaling: NetworkScaling,
    fill: float = AIR_HU,
    **predict_kwargs,
) -> np.ndarray:
    """Denoise inside the field of view only; outside, the input comes back unchanged.

    Scanners store the outside of the reconstruction circle as padding (-2048 or -3024 HU). A
    network never trained on that step of ~2000 HU would spread it over the whole image, so the
    network sees ``fill`` (air) there instead, and the output keeps the input's own values there
    (for DICOM: the exact stored padding on writing back).

    Parameters
    ----------
    model : torch.nn.Module
        A trained denoiser.
    raw : array_like, shape (H, W) or (B, H, W), finite
        Images in raw units (HU for ``fill = AIR_HU``); not modified.
    field_of_view : array_like of bool, same shape as ``raw``
        True inside (:func:`lowdose.physics.field_of_view.field_of_view_mask`).
    scaling : NetworkScaling
        The checkpoint's ``meta.scaling``.
    fill : float
        Value (raw units) the network sees outside the field of view.
    **predict_kwargs
        Passed to :func:`predict`.

    Returns
    -------
    ndarray, same shape as ``raw``, float32
        Denoised inside the field of view, ``raw`` outside; inside it equals the denoising of
        ``raw`` with ``fill`` outside, bit for bit.
    """
    images = checked_images(raw, "images")
    inside = np.asarray(field_of_view, dtype=bool)
    if inside.shape != images.shape:
        raise LowdoseInputError(
            f"field of view mask of shape {inside.shape} for images of shape {images.shape}"
        )
    filled = np.where(inside, images, np.float32(fill)).astype(np.float32)
    result = denoise(model, filled, scaling=scaling, **predict_kwargs)
    return np.where(inside, result, images).astype(np.float32)


def _run_chunk(work, padded, out, chunk, tile_hw, device, channels_last) -> None:
    th, tw = tile_hw
    tiles = np.stack([padded[i, r[0] : r[0] + th, c[0] : c[0] + tw] for i, r, c in chunk])
    x = torch.from_numpy(tiles)[:, None].to(device)  # (b, 1, th, tw)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = work(x)[:, 0].float().cpu().numpy()  # (b, th, tw)
    for (i, (r0, r_lo, r_hi), (c0, c_lo, c_hi)), tile_out in zip(chunk, y, strict=True):
        out[i, r_lo:r_hi, c_lo:c_hi] = tile_out[r_lo - r0 : r_hi - r0, c_lo - c0 : c_hi - c0]


def _image_progress(
    progress: Progress | None, on_image_done: Callable[[int], None] | None
) -> Progress | None:
    """One :class:`Progress` reporting to ``progress`` and to ``on_image_done``."""
    if on_image_done is None:
        return progress

    def both(stage: str, done: int, total: int) -> None:
        on_image_done(done)
        if progress is not None:
            progress(stage, done, total)

    return both


def checked_device(device: str | torch.device) -> torch.device:
    """Return ``device`` as a ``torch.device``, raising unless it names one that is available."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LowdoseInputError(
            f"device {device!r} is not a torch device; use cpu or cuda"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LowdoseInputError(f"device {device!r} requested but CUDA is not available; use cpu")
    return dev
