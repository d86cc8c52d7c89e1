"""Regions of interest and their statistics over an ensemble of realisations: sigma, bias, CNR.

A CT physicist measures noise, HU accuracy and contrast-to-noise ratio in regions of interest (ROIs)
of a uniform phantom (ICRU Report 87, 2012; AAPM TG-233, Samei et al. 2019). With ``N >= 2``
independent realisations of one object (simulated scans, repeated acquisitions), every statistic
here is taken *across realisations*, pixel by pixel, so that object structure inside a ROI (an edge,
a non-uniform insert, cupping) is never counted as noise:

* ensemble sigma: ``sqrt(mean over the ROI of var_n(x_n[p], ddof=1))``, in HU;
* HU bias: ``mean over the ROI of (mean_n x_n[p] - reference[p])``, in HU;
* CNR: ``|mean(insert) - mean(background)| / sigma(background)``, means of the ensemble mean.

Pixel ``(r, c)`` is the unit square centred at ``(r, c)``: the image covers ``[-0.5, H - 0.5] x
[-0.5, W - 0.5]`` in pixel units, and a ROI must lie wholly inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError


def checked_realisations(realisations, name: str = "realisations") -> np.ndarray:
    """Return ``(N, H, W)`` finite real realisations (``N >= 2``) as float64, a copy if needed.

    Raises
    ------
    LowdoseInputError
        Wrong number of dimensions, fewer than two realisations, non-real or non-finite values.
    """
    array = np.asarray(realisations)
    if array.ndim != 3:
        raise LowdoseInputError(
            f"{name} has shape {array.shape}; pass a stack (N, H, W) of N >= 2 realisations"
        )
    if array.shape[0] < 2:
        raise LowdoseInputError(
            f"{name} holds {array.shape[0]} realisation; ensemble statistics need N >= 2 "
            "independent realisations of the same object"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise LowdoseInputError(f"{name} has dtype {array.dtype}; pass real numbers (HU)")
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{name} contains NaN or Inf; pass finite values")
    return array.astype(np.float64, copy=False)


def checked_mask(mask, shape_hw: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Return a boolean ``(H, W)`` mask with at least one pixel set, raising otherwise."""
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise LowdoseInputError(
            f"{name} has dtype {array.dtype}; pass a boolean mask (e.g. from disc_mask)"
        )
    if array.shape != tuple(shape_hw):
        raise LowdoseInputError(
            f"{name} has shape {array.shape} but the images are {tuple(shape_hw)}; "
            "make the mask on the image grid"
        )
    if not array.any():
        raise LowdoseInputError(f"{name} selects no pixel; enlarge the ROI or move it")
    return array


def _checked_disc(shape_hw, centre_rc, outer_px: float, name: str) -> tuple[int, int, float, float]:
    """``(H, W, r0, c0)`` after checking that a disc of radius ``outer_px`` lies in the image."""
    height, width = (int(v) for v in shape_hw)
    r0, c0 = (float(v) for v in centre_rc)
    if not (np.isfinite(outer_px) and outer_px > 0):
        raise LowdoseInputError(f"{name}: radius {outer_px!r} px must be finite and > 0")
    inside = (
        r0 - outer_px >= -0.5
        and c0 - outer_px >= -0.5
        and r0 + outer_px <= height - 0.5
        and c0 + outer_px <= width - 0.5
    )
    if not inside:
        raise LowdoseInputError(
            f"{name}: a ROI of radius {outer_px:g} px at (row, col) = ({r0:g}, {c0:g}) reaches "
            f"outside the {height}x{width} image; move it inwards or make it smaller"
        )
    return height, width, r0, c0


def _squared_distance_px2(height: int, width: int, r0: float, c0: float) -> np.ndarray:
    rows = (np.arange(height) - r0)[:, None]
    cols = (np.arange(width) - c0)[None, :]
    return rows**2 + cols**2  # (H, W)


def disc_mask(shape_hw: tuple[int, int], centre_rc, radius_px: float) -> np.ndarray:
    """Pixels whose centres lie within ``radius_px`` of ``centre_rc``.

    Parameters
    ----------
    shape_hw : (int, int)
        Image shape ``(H, W)``.
    centre_rc : (float, float)
        Disc centre ``(row, col)`` in pixel units (pixel ``(r, c)`` is centred at ``(r, c)``).
    radius_px : float
        Radius in pixels, > 0; the disc must lie inside the image.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool.

    Examples
    --------
    >>> int(disc_mask((9, 9), (4, 4), 1.0).sum())
    5
    """
    height, width, r0, c0 = _checked_disc(shape_hw, centre_rc, float(radius_px), "disc_mask")
    return _squared_distance_px2(height, width, r0, c0) <= float(radius_px) ** 2


def annulus_mask(shape_hw: tuple[int, int], centre_rc, inner_px: float, outer_px: float):
    """Pixels whose centres lie at a distance in ``(inner_px, outer_px]`` of ``centre_rc``.

    The usual background of an insert (TG-233): a ring around it, clear of its edge.

    Parameters
    ----------
    shape_hw, centre_rc
        As for :func:`disc_mask`.
    inner_px, outer_px : float
        Inner and outer radius in pixels, ``0 <= inner_px < outer_px``; the outer disc must lie
        inside the image.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool.

    Examples
    --------
    >>> int(annulus_mask((9, 9), (4, 4), 1.0, 1.5).sum())
    4
    """
    inner, outer = float(inner_px), float(outer_px)
    if not (np.isfinite(inner) and 0 <= inner < outer):
        raise LowdoseInputError(
            f"annulus_mask: inner radius {inner_px!r} px must be >= 0 and below the outer "
            f"radius {outer_px!r} px"
        )
    height, width, r0, c0 = _checked_disc(shape_hw, centre_rc, outer, "annulus_mask")
    distance2 = _squared_distance_px2(height, width, r0, c0)
    return (distance2 > inner**2) & (distance2 <= outer**2)


def ensemble_sigma(realisations, mask) -> float:
    """Noise standard deviation in a ROI across realisations, free of object structure.

    ``sqrt(mean_{p in mask} var_n(x_n[p]))`` with the unbiased (``ddof=1``) variance over the N
    realisations at each pixel: the root of the mean noise variance, which the pixel-to-pixel
    standard deviation of one image only equals when the ROI is uniform.

    Parameters
    ----------
    realisations : numpy.ndarray
        ``(N, H, W)``, ``N >= 2`` independent realisations of one object, in HU.
    mask : numpy.ndarray
        ``(H, W)`` bool, the ROI.

    Returns
    -------
    float
        Noise sigma in HU (>= 0).
    """
    stack = checked_realisations(realisations)
    inside = checked_mask(mask, stack.shape[1:])
    variance_hu2 = stack[:, inside].var(axis=0, ddof=1)  # (P,)
    return float(np.sqrt(variance_hu2.mean()))


def hu_bias(realisations, reference, mask) -> float:
    """Mean over a ROI of the ensemble mean minus the reference (noise-free) image, in HU.

    Parameters
    ----------
    realisations : numpy.ndarray
        ``(N, H, W)``, ``N >= 2``, in HU.
    reference : numpy.ndarray
        ``(H, W)``, the noise-free reconstruction (or nominal HU map), in HU.
    mask : numpy.ndarray
        ``(H, W)`` bool.

    Returns
    -------
    float
        Bias in HU: > 0 when the method reads higher than the reference.
    """
    stack = checked_realisations(realisations)
    inside = checked_mask(mask, stack.shape[1:])
    truth = np.asarray(reference, dtype=np.float64)
    if truth.shape != stack.shape[1:] or not np.all(np.isfinite(truth)):
        raise LowdoseInputError(
            f"reference has shape {truth.shape} or non-finite values; pass a finite (H, W) "
            f"image matching the realisations {stack.shape[1:]}"
        )
    return float((stack[:, inside].mean(axis=0) - truth[inside]).mean())


def contrast_to_noise(realisations, insert_mask, background_mask) -> float:
    """``|mean(insert) - mean(background)| / ensemble_sigma(background)`` (dimensionless).

    Both means are over the ensemble mean image; the noise is the background's, as in TG-233.
    Infinite when the background has no noise and the contrast is not 0.
    """
    stack = checked_realisations(realisations)
    insert = checked_mask(insert_mask, stack.shape[1:], "insert_mask")
    background = checked_mask(background_mask, stack.shape[1:], "background_mask")
    mean_image = stack.mean(axis=0)  # (H, W)
    contrast_hu = abs(mean_image[insert].mean() - mean_image[background].mean())
    sigma_hu = ensemble_sigma(stack, background)
    if sigma_hu == 0:
        return float("inf") if contrast_hu > 0 else float("nan")
    return float(contrast_hu / sigma_hu)


@dataclass(frozen=True)
class RoiStats:
    """Statistics of one insert over an ensemble of realisations.

    Attributes
    ----------
    mean_hu : float
        Mean of the ensemble mean over the insert, HU.
    sigma_hu : float
        Ensemble noise sigma in the insert (:func:`ensemble_sigma`), HU.
    bias_hu : float
        :func:`hu_bias` of the insert against the reference, HU (NaN without a reference).
    cnr : float
        :func:`contrast_to_noise` of the insert against its background.
    background_sigma_hu : float
        Ensemble noise sigma in the background, HU (the CNR's denominator).
    """

    mean_hu: float
    sigma_hu: float
    bias_hu: float
    cnr: float
    background_sigma_hu: float


def roi_statistics(realisations, reference, insert_mask, background_mask) -> RoiStats:
    """:class:`RoiStats` of one insert; ``reference`` may be ``None`` (bias is then NaN).

    Parameters
    ----------
    realisations : numpy.ndarray
        ``(N, H, W)``, ``N >= 2``, in HU.
    reference : numpy.ndarray or None
        ``(H, W)`` noise-free image in HU.
    insert_mask, background_mask : numpy.ndarray
        ``(H, W)`` bool.
    """
    stack = checked_realisations(realisations)
    insert = checked_mask(insert_mask, stack.shape[1:], "insert_mask")
    background = checked_mask(background_mask, stack.shape[1:], "background_mask")
    return RoiStats(
        mean_hu=float(stack[:, insert].mean()),
        sigma_hu=ensemble_sigma(stack, insert),
        bias_hu=float("nan") if reference is None else hu_bias(stack, reference, insert),
        cnr=contrast_to_noise(stack, insert, background),
        background_sigma_hu=ensemble_sigma(stack, background),
    )
