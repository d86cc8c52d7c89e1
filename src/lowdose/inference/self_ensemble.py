"""Self-ensemble at inference: average a network over the 8 dihedral transforms of an image.

A denoiser trained on patches in every orientation still gives slightly different outputs for a
rotated or mirrored input; averaging ``T^-1 f(T x)`` over the 4 rotations times an optional
mirror (the dihedral group D4) cancels part of its error at 8x the inference cost (Lim et al.
2017, "geometric self-ensemble"). The average is exactly equivariant: rotating or mirroring the
input rotates or mirrors the output (to float round-off). Pure NumPy: the network is any
function of a ``(B, h, w)`` stack (:func:`lowdose.inference.predict.predict` passes its tiler).

>>> import numpy as np
>>> image = np.arange(6.0).reshape(2, 3)
>>> all(np.array_equal(undo_dihedral(dihedral(image, *t), *t), image) for t in DIHEDRAL)
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lowdose.core.errors import LowdoseInputError

TTA_CHOICES = (1, 8)
#: The 8 dihedral transforms as (quarter turns counter-clockwise, mirror left-right first).
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple(
    (turns, mirror) for mirror in (False, True) for turns in range(4)
)


def checked_tta(tta) -> int:
    """Return ``tta`` as int, raising unless it is 1 (off) or 8 (the 8 dihedral transforms)."""
    if isinstance(tta, bool) or tta not in TTA_CHOICES:
        raise LowdoseInputError(
            f"--tta {tta}: self-ensemble takes 1 (off) or 8 (4 rotations x mirror); use 1 or 8"
        )
    return int(tta)


def dihedral(images: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """Mirror left-right (if ``mirror``), then rotate by ``turns`` quarter turns.

    Parameters
    ----------
    images : ndarray (..., H, W)
        Not modified.
    turns : int
        Quarter turns counter-clockwise, 0..3; odd turns swap H and W.
    mirror : bool
        Flip the last axis before rotating.

    Returns
    -------
    ndarray (..., H, W) or (..., W, H)
        A view of ``images`` (no copy).
    """
    flipped = images[..., ::-1] if mirror else images
    return np.rot90(flipped, turns, axes=(-2, -1))


def undo_dihedral(images: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """The inverse of :func:`dihedral` with the same ``turns`` and ``mirror``; a view."""
    rotated = np.rot90(images, -turns, axes=(-2, -1))
    return rotated[..., ::-1] if mirror else rotated


def self_ensemble(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """Mean over the dihedral transforms ``T`` of ``T^-1 run(T image)``.

    Parameters
    ----------
    run : callable
        ``run(stack) -> stack``: a network on a ``(B, h, w)`` float32 stack, same shape out.
        Called once per distinct view shape (once for a square image, twice otherwise: the
        views with H and W swapped form their own stack).
    image : ndarray (H, W)
        One image; not modified.

    Returns
    -------
    ndarray (H, W) float32
        The self-ensemble output. For a ``run`` that commutes with every dihedral transform
        (an identity, a pixel-wise or a symmetric-kernel linear map) it equals ``run(image)``.
    """
    views = [dihedral(image, *transform) for transform in DIHEDRAL]
    total = np.zeros(image.shape, dtype=np.float64)
    for shape in dict.fromkeys(view.shape for view in views):  # distinct, in order
        members = [n for n, view in enumerate(views) if view.shape == shape]
        outputs = run(np.ascontiguousarray(np.stack([views[n] for n in members])))  # (b, h, w)
        for n, output in zip(members, outputs, strict=True):
            total += undo_dihedral(output, *DIHEDRAL[n])
    return (total / len(DIHEDRAL)).astype(np.float32)
