"""The units of the user's images, stated or checked, and the way to the model's units and back.

A CT model works in HU; a PNG exported from a viewer holds 0..255 display values of some window,
a normalised TIFF 0..1, and a raw export ``HU + 1024``. Taken as HU, each of these is denoised as
an image of almost no contrast and comes back wrong without a warning. So ``--units`` says what
the numbers are (:func:`parse_units`):

``auto`` (default)
    The model's own units, checked (:func:`check_plausible`): for HU, a CT slice holds air, lung
    or fat (a 0.5th percentile at or below -150 HU) and no display-like range; for
    transmission, values about 0..1 (not photon counts). A failure is one line naming
    ``--units``.
``hu`` / the model's raw units (``transmission``)
    Taken as stated, unchecked (a tight crop of water is HU without any air in it).
``scaled``
    Already on the model's network scale: ``raw = scaled * divisor - offset`` (``dataset_max``
    and ``none`` models; per-image scaling has no fixed inverse).
``window:C,W``
    A display image of the HU window centre ``C``, width ``W``: ``HU = C - W/2 + W v / v_max``
    with ``v_max`` 255 for 8-bit values, 65535 for 16-bit and 1 for a float image within
    [0, 1]. The output is written back through the same window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.models.validity_range import is_hu_scaling

AIR_OR_FAT_HU = -150.0
"""A CT slice's 0.5th percentile lies at or below this (air, lung, fat or field-of-view padding)."""
_FIX = "pass --units hu (values are HU), window:C,W (a display image of that HU window) or scaled"


@dataclass(frozen=True)
class InputUnits:
    """What the input's numbers are.

    Attributes
    ----------
    name : str
        ``auto``, ``raw`` (the model's units, stated), ``scaled`` or ``window``.
    window_centre_hu, window_width_hu : float
        The display window (``window`` only).
    """

    name: str = "auto"
    window_centre_hu: float = 0.0
    window_width_hu: float = 0.0


def parse_units(text: str | None, scaling: NetworkScaling) -> InputUnits:
    """``--units`` text -> :class:`InputUnits` for a model with ``scaling``; one error line else."""
    value = (text or "auto").strip().lower()
    model_units = "hu" if is_hu_scaling(scaling) else scaling.raw_units.strip().lower()
    if value == "auto":
        return InputUnits()
    if value in ("hu", "raw") or (model_units and value == model_units):
        if value == "hu" and model_units != "hu":
            raise LowdoseInputError(f"--units hu: this model takes {model_units or 'raw'} values")
        return InputUnits("raw")
    if value == "scaled":
        if scaling.scaling_rule == "per_image_max":
            raise LowdoseInputError(
                "--units scaled: this model scales each image by its own maximum; pass raw values"
            )
        return InputUnits("scaled")
    match = re.fullmatch(r"window:\s*(-?[\d.]+)\s*,\s*([\d.]+)", value)
    if match is not None and model_units == "hu" and float(match[2]) > 0:
        return InputUnits("window", float(match[1]), float(match[2]))
    choices = (
        "auto, hu, scaled, window:C,W" if model_units == "hu" else f"auto, {model_units}, scaled"
    )
    raise LowdoseInputError(f"--units {text!r}: choose one of {choices} (C, W in HU, W > 0)")


def to_model_units(
    images: np.ndarray, units: InputUnits, scaling: NetworkScaling, *, dtype: str, source: str
) -> np.ndarray:
    """The input's values in the model's raw units (HU for CT), float32.

    Parameters
    ----------
    images : ndarray (H, W) or (B, H, W)
        As read.
    units : InputUnits
        From :func:`parse_units`.
    scaling : NetworkScaling
        The model's scaling.
    dtype : str
        The stored dtype of the file (``uint8`` ...): sets ``v_max`` of a window.
    source : str
        The file or folder, named in errors.

    Raises
    ------
    LowdoseInputError
        ``auto`` and the values do not look like the model's units (see :func:`check_plausible`).
    """
    values = np.asarray(images, dtype=np.float32)
    if units.name == "auto":
        check_plausible(values, scaling, source=source)
        return values
    if units.name == "raw":
        return values
    if units.name == "scaled":
        divisor = 1.0 if scaling.scaling_rule == "none" else float(scaling.divisor or 1.0)
        return (values.astype(np.float64) * divisor - scaling.scaling_offset).astype(np.float32)
    low, v_max = _window_low(units), _display_max(values, dtype)
    return (low + values.astype(np.float64) * units.window_width_hu / v_max).astype(np.float32)


def from_model_units(
    result: np.ndarray,
    units: InputUnits,
    scaling: NetworkScaling,
    *,
    dtype: str,
    reference: np.ndarray,
) -> np.ndarray:
    """Invert :func:`to_model_units` (``reference``: the input as read, for the window's v_max)."""
    values = np.asarray(result, dtype=np.float64)
    if units.name in ("auto", "raw"):
        return values.astype(np.float32)
    if units.name == "scaled":
        divisor = 1.0 if scaling.scaling_rule == "none" else float(scaling.divisor or 1.0)
        return ((values + scaling.scaling_offset) / divisor).astype(np.float32)
    v_max = _display_max(np.asarray(reference, np.float32), dtype)
    display = (values - _window_low(units)) / units.window_width_hu * v_max
    return np.clip(display, 0.0, v_max).astype(np.float32)


def check_plausible(values: np.ndarray, scaling: NetworkScaling, *, source: str) -> None:
    """Raise one line naming ``--units`` unless ``values`` look like the model's raw units.

    HU: the 0.5th percentile at or below :data:`AIR_OR_FAT_HU`, else the error names the likely
    case (0..255 display values, 0..1 normalised, HU + 1024 stored values). Transmission: the
    99.9th percentile at most 2 (photon counts are not transmission). Other units: unchecked.
    """
    low, high = (float(q) for q in np.percentile(values, [0.5, 99.9]))
    model_units = "hu" if is_hu_scaling(scaling) else scaling.raw_units.strip().lower()
    if model_units == "transmission" and high > 2.0:
        raise LowdoseInputError(
            f"{source}: values up to {high:.4g} are not transmission (about 0..1): divide by the "
            "flat field first, or pass --units transmission if they are"
        )
    if model_units != "hu" or low <= AIR_OR_FAT_HU:
        return
    lowest, highest = float(values.min()), float(values.max())
    if lowest >= 0 and highest <= 1.0:
        looks = "like a 0..1 normalised image"
    elif lowest >= 0 and highest <= 255 and np.all(values == np.round(values)):
        looks = "like an 8-bit display image"
    elif low >= -100 and high > 900:  # air near 0 and soft tissue near 1064
        looks = "like stored values without the -1024 intercept (HU + 1024)"
    else:
        looks = "like no CT slice (no air, lung or fat)"
    raise LowdoseInputError(
        f"{source}: values {lowest:.4g}..{highest:.4g} look {looks}, not HU; {_FIX}"
    )


def _window_low(units: InputUnits) -> float:
    return units.window_centre_hu - units.window_width_hu / 2.0


def _display_max(values: np.ndarray, dtype: str) -> float:
    kind = np.dtype(dtype) if dtype else np.dtype("float32")
    if np.issubdtype(kind, np.integer):
        return float(np.iinfo(kind).max) if kind.itemsize > 1 else 255.0
    return 1.0 if float(np.max(values)) <= 1.0 else 255.0
