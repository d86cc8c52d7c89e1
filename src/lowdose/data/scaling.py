"""The dataset's intensity scaling, applied before a network and inverted after it.

A network sees images on the scale it was trained on (the dataset file's ``scaling_rule``,
stored in every checkpoint as a :class:`NetworkScaling`), and the user gets its output back in the
input's own units:

``dataset_max`` (CT)
    ``scaled = (raw + scaling_offset) / divisor`` with the dataset's divisor (e.g. HU + 1024 over
    the dataset maximum).
``per_image_max`` (X-ray transmission)
    Training divided each image by its *clean* maximum, which is unknown at inference. The
    divisor is estimated from the noisy image as the maximum of a Gaussian-smoothed copy
    (``sigma = 2`` px): smoothing removes most of the noise that would bias a plain maximum
    upwards (by about 3 noise standard deviations on a 512^2 image), while a bright region
    several pixels wide keeps its level. Any error in the estimate changes the level the
    network sees, never the units of the output, because the same divisor is multiplied back.
``none``
    The network works in raw units.

CT in HU (the paper's rule, and the one home of the conversion): ``scaled = (HU + 1024) / divisor``
(:func:`hu_to_scaled`; clean images clipped at 0 first, noisy ones not, so the noise in air
keeps its sign) and back ``HU = scaled * divisor - 1024`` (:func:`scaled_to_hu`). The divisor is
the dataset maximum of ``HU + 1024`` (the stored ``scale``); ``scaling_offset`` = 1024.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowdose.core.errors import LowdoseInputError

SCALING_RULES = ("dataset_max", "per_image_max", "none")
SMOOTHING_SIGMA_PX = 2.0
HU_OFFSET = 1024.0
"""HU added before dividing (air, -1000 HU, lands just above 0; the ``scaling_offset`` of CT)."""


def hu_to_scaled(hu, divisor, *, clip: bool = False) -> np.ndarray:
    """HU -> the dataset scale: ``(HU + 1024) / divisor``, float32.

    Parameters
    ----------
    hu : array_like
        Images in HU.
    divisor : float or array_like broadcastable to ``hu``
        The dataset's divisor (``scale``; e.g. ``scale[:, None, None]`` per image).
    clip : bool
        Clip ``HU + 1024`` at 0 first (clean images: the paper's rule); noisy images are not
        clipped.

    Examples
    --------
    >>> hu_to_scaled([-2024.0, -1024.0, 976.0], 2000.0, clip=True).tolist()
    [0.0, 0.0, 1.0]
    >>> hu_to_scaled([-2024.0], 2000.0).tolist()
    [-0.5]
    """
    shifted = np.asarray(hu, np.float64) + HU_OFFSET
    if clip:
        shifted = np.maximum(shifted, 0.0)
    return (shifted / np.asarray(divisor, np.float64)).astype(np.float32)


def scaled_to_hu(scaled, divisor) -> np.ndarray:
    """The dataset scale -> HU: ``scaled * divisor - 1024``, float32 (inverse of
    :func:`hu_to_scaled` for unclipped values).

    Examples
    --------
    >>> scaled_to_hu([0.0, 0.5], 2048.0).tolist()
    [-1024.0, 0.0]
    """
    return (np.asarray(scaled, np.float64) * np.asarray(divisor, np.float64) - HU_OFFSET).astype(
        np.float32
    )


@dataclass(frozen=True)
class NetworkScaling:
    """How raw images map to a network's training scale: what every checkpoint stores.

    ``scaled = (raw + scaling_offset) / divisor`` (see the module docstring for the rules).
    The rule is checked where it is applied (:func:`scale_to_network`), so a model with an
    unknown rule still loads for work on the dataset scale.

    Attributes
    ----------
    scaling_rule : str
        ``dataset_max``, ``per_image_max`` or ``none`` (the dataset's ``scaling_rule``).
    scaling_offset : float
        Raw units added before dividing (1024 for HU, 0 otherwise).
    raw_units : str
        Units of the raw values (``transmission``, ``hu`` ...).
    divisor : float or None
        The dataset's one divisor (raw units) when every image has the same ``scale``, else None.
    data_range : float
        PSNR data range on the network's scale (the dataset's ``psnr_data_range``).
    """

    scaling_rule: str = "none"
    scaling_offset: float = 0.0
    raw_units: str = ""
    divisor: float | None = None
    data_range: float = 1.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NetworkScaling:
        """Read the dict form a checkpoint stores (missing keys take the defaults above)."""
        divisor = values.get("divisor")
        return cls(
            scaling_rule=str(values.get("scaling_rule", "none")),
            scaling_offset=float(values.get("scaling_offset", 0.0) or 0.0),
            raw_units=str(values.get("raw_units", "")),
            divisor=None if divisor is None else float(divisor),
            data_range=float(values.get("data_range", 1.0)),
        )


def scale_to_network(raw, scaling: NetworkScaling) -> tuple[np.ndarray, np.ndarray]:
    """Put raw images on the network's training scale.

    Parameters
    ----------
    raw : array_like, shape (H, W) or (B, H, W)
        Images in their own units (transmission, HU, counts ...), finite.
    scaling : NetworkScaling
        ``scaling_rule`` (``dataset_max`` | ``per_image_max`` | ``none``), ``scaling_offset``
        (raw units) and, for ``dataset_max``, ``divisor`` (> 0).

    Returns
    -------
    scaled : ndarray, same shape as ``raw``, float32
        ``(raw + offset) / divisor``, about [0, 1] for the two ``*_max`` rules.
    divisor : ndarray, shape () or (B,), float64
        The divisor used per image; pass it to :func:`scale_from_network`.

    Examples
    --------
    >>> scaled, divisor = scale_to_network(np.array([[0.0, 1000.0]]), NetworkScaling(
    ...     scaling_rule="dataset_max", scaling_offset=1000.0, divisor=2000.0))
    >>> scaled.tolist(), float(divisor)
    ([[0.5, 1.0]], 2000.0)
    """
    rule, offset = _rule_and_offset(scaling)
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise LowdoseInputError(f"images have shape {array.shape}; pass (H, W) or (B, H, W)")
    shifted = array + offset
    if rule == "none":
        divisor = np.ones(array.shape[:-2])
    elif rule == "dataset_max":
        divisor = np.full(array.shape[:-2], _dataset_divisor(scaling))
    else:
        divisor = estimate_clean_max(shifted)
    scaled = shifted / divisor[..., None, None]
    return scaled.astype(np.float32), divisor


def scale_from_network(scaled, scaling: NetworkScaling, divisor) -> np.ndarray:
    """Invert :func:`scale_to_network`: ``raw = scaled * divisor - offset``.

    Parameters
    ----------
    scaled : array_like, shape (H, W) or (B, H, W)
        Network output on the training scale.
    scaling : NetworkScaling
        The same ``scaling`` given to :func:`scale_to_network`.
    divisor : array_like, shape () or (B,)
        The divisor it returned.

    Returns
    -------
    ndarray, same shape as ``scaled``, float32
        Images in the raw units.
    """
    _rule, offset = _rule_and_offset(scaling)
    array = np.asarray(scaled, dtype=np.float64)
    factor = np.asarray(divisor, dtype=np.float64)[..., None, None]
    return (array * factor - offset).astype(np.float32)


def estimate_clean_max(noisy, *, sigma_px: float = SMOOTHING_SIGMA_PX) -> np.ndarray:
    """Robust per-image estimate of the clean maximum: max of a Gaussian-smoothed image.

    Parameters
    ----------
    noisy : array_like, shape (H, W) or (B, H, W)
        Noisy images (offset already added), finite.
    sigma_px : float
        Gaussian standard deviation in pixels (mirror borders).

    Returns
    -------
    ndarray, shape () or (B,), float64
        One positive divisor per image; an image whose smoothed maximum is <= 0 gets 1.0 (an
        all-dark image has no level to normalise).
    """
    array = np.asarray(noisy, dtype=np.float64)
    sigmas = (0.0,) * (array.ndim - 2) + (sigma_px, sigma_px)
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    smoothed = ndimage.gaussian_filter(array, sigma=sigmas, mode="mirror")
    peak = smoothed.max(axis=(-2, -1))
    return np.where(peak > 0, peak, 1.0)


def _rule_and_offset(scaling: NetworkScaling) -> tuple[str, float]:
    rule = scaling.scaling_rule
    if rule not in SCALING_RULES:
        raise LowdoseInputError(
            f"scaling_rule {rule!r} in the checkpoint is unknown; expected one of {SCALING_RULES}"
        )
    return rule, float(scaling.scaling_offset)


def _dataset_divisor(scaling: NetworkScaling) -> float:
    divisor = scaling.divisor
    if divisor is None or not np.isfinite(float(divisor)) or float(divisor) <= 0:
        raise LowdoseInputError(
            f"checkpoint scaling is dataset_max but its divisor is {divisor!r}; "
            "retrain with a lowdose dataset that stores its scale"
        )
    return float(divisor)
