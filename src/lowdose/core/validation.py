"""Argument checks shared by the noise functions: real, finite, non-negative, positive levels.

Each raises :class:`lowdose.core.errors.LowdoseInputError` with one line naming the argument.
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


def checked_target(value) -> float:
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise LowdoseInputError(f"target PSNR {value!r} is not a number of dB") from None
    if not np.isfinite(target):
        raise LowdoseInputError(f"target PSNR {value!r} dB must be finite")
    return target
