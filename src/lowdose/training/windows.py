"""Training windows: the 8 dihedral transforms, the patch-size check and the tensor hand-off.

Pure array functions shared by :mod:`lowdose.training.pairs` (and its tests); none reads a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lowdose.core.errors import LowdoseInputError


def dihedral(images: np.ndarray, transform: int) -> np.ndarray:
    """Apply one of the 8 dihedral transforms to the last two axes.

    ``transform`` in 0..7: rotate by ``90 * (transform % 4)`` degrees (numpy.rot90), then, for
    ``transform >= 4``, mirror left-right. 0 is the identity. Returns a view when possible.
    """
    out = np.rot90(images, k=transform % 4, axes=(-2, -1))
    return out[..., ::-1] if transform >= 4 else out


def undo_dihedral(images: np.ndarray, transform: int) -> np.ndarray:
    """Inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, t), t) == x``."""
    out = images[..., ::-1] if transform >= 4 else images
    return np.rot90(out, k=-(transform % 4), axes=(-2, -1))


def checked_patch_shape(patch, height: int, width: int, path: Path) -> tuple[int, int]:
    """``(patch, patch)``, or the whole image for None; raises unless 1 <= patch <= min(H, W)."""
    if patch is None:
        return height, width
    if isinstance(patch, bool) or not isinstance(patch, int | np.integer) or patch < 1:
        raise LowdoseInputError(f"patch={patch!r} must be a positive integer or None")
    if patch > min(height, width):
        raise LowdoseInputError(
            f"{path}: patch {patch} is larger than the {height}x{width} images; use <= "
            f"{min(height, width)} or None"
        )
    return int(patch), int(patch)


def outside_nan(target: np.ndarray, fov: np.ndarray | None) -> np.ndarray:
    """``target`` with NaN where ``fov`` is 0 (a new array), or ``target`` itself."""
    return target if fov is None else np.where(fov.astype(bool), target, np.float32(np.nan))


def tensor(image: np.ndarray) -> torch.Tensor:
    """(p, p) array -> contiguous float32 tensor (1, p, p) that owns its memory."""
    return torch.from_numpy(np.array(image, dtype=np.float32, order="C"))[None]


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` window of the last two axes (a view; whole if smaller)."""
    height, width = images.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return images[..., top : top + size, left : left + size]
