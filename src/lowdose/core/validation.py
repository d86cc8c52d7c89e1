"""The one home of generic argument checks: arrays, images, positive numbers, choices.

Naming rule (one flavour across lowdose): ``checked_<what>(value, name, ...)`` returns the value,
converted (``float``, ``ndarray``), or raises :class:`lowdose.core.errors.LowdoseInputError` with
one line naming the argument and the fix. Checks that belong to one part of the problem (a split
table, a projection volume, a pair of acquisitions) live with that part and are named
``check_<what>``: they return nothing and raise the same error.
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError


def checked_array(values, name: str, *, nonnegative: bool) -> np.ndarray:
    """Return ``values`` as an array, raising on non-real dtype, NaN, Inf or (optionally) < 0."""
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise LowdoseInputError(f"{name} has dtype {array.dtype}; pass real numbers")
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{name} contains NaN or Inf; pass finite values")
    if nonnegative and array.size and array.min() < 0:
        raise LowdoseInputError(
            f"{name} has negative values (min {array.min():.3g}); pass values >= 0 "
            "(clip round-off with numpy.maximum(x, 0))"
        )
    return array


def checked_level(value, name: str) -> float:
    """Return a noise level as float, raising unless it is a finite number > 0."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise LowdoseInputError(f"{name}={value!r} is not a number; pass a value > 0") from None
    if not np.isfinite(level) or level <= 0:
        raise LowdoseInputError(f"{name}={value!r} must be finite and > 0")
    return level


def checked_positive(value, name: str) -> float:
    """Return ``value`` as float, raising unless it is a finite number > 0."""
    return checked_level(value, name)


def checked_choice(value, name: str, choices) -> str:
    """Return ``value`` as str, raising unless it is one of ``choices``."""
    if value not in tuple(choices):
        raise LowdoseInputError(f"{name}={value!r}: use one of {', '.join(map(str, choices))}")
    return str(value)


def checked_image(image, name: str) -> np.ndarray:
    """Return a finite 2-D float32/float64 image of at least 2x2 pixels as an ndarray."""
    array = np.asarray(image)
    if array.ndim != 2 or min(array.shape) < 2:
        raise LowdoseInputError(
            f"{name}: expected a 2-D image of at least 2x2 pixels, got shape {array.shape}; "
            "pass one image (H, W) at a time"
        )
    if array.dtype not in (np.float32, np.float64):
        raise LowdoseInputError(
            f"{name}: image dtype is {array.dtype}; convert it to float32 or float64 first"
        )
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{name}: image contains NaN or Inf; pass a finite image")
    return array


def checked_images(images, name: str) -> np.ndarray:
    """Return finite real images, one ``(H, W)`` or a stack ``(B, H, W)``, as an ndarray."""
    array = checked_array(images, name, nonnegative=False)
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise LowdoseInputError(
            f"{name} has shape {array.shape}; pass one image (H, W) or a stack (B, H, W)"
        )
    return array


def checked_target(value) -> float:
    """Return a target PSNR in dB as float, raising unless it is a finite number."""
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise LowdoseInputError(f"target PSNR {value!r} is not a number of dB") from None
    if not np.isfinite(target):
        raise LowdoseInputError(f"target PSNR {value!r} dB must be finite")
    return target
