"""Noise levels that reach a target PSNR, and the PSNR a noisy stack actually reached.

:func:`solve_photons_for_psnr` and :func:`solve_sigma_for_psnr` return the level whose *expected
mean of per-image PSNR* equals the target, in closed form (second-order exact: the Jensen term of
the log is included, ~1e-3 dB on 64x64 images). :func:`solve_level_numerically` searches any
monotone noise model (e.g. sinogram Poisson + FBP) with actual draws. :func:`achieved_psnr_db`
measures what a built stack really reached. The noise models themselves are in
:mod:`lowdose.physics.noise`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.core.validation import checked_array, checked_level, checked_target

# dB per natural-log unit: PSNR = -DB_PER_NEPER * ln(MSE) + const.
_DB_PER_NEPER = 10.0 / np.log(10.0)


@dataclass(frozen=True)
class NoiseLevel:
    """A solved noise level and the mean per-image PSNR it is expected to give.

    Attributes
    ----------
    level : float
        photons_per_pixel (Poisson), sigma (Gaussian, data units) or I0 (sinogram), > 0.
    expected_psnr_db : float
        Expected mean over images of the per-image PSNR (dB) at this level.
    """

    level: float
    expected_psnr_db: float


def solve_photons_for_psnr(transmission, target_psnr_db) -> NoiseLevel:
    """Photons per pixel whose expected mean per-image PSNR equals the target (paper's scaling).

    Scaling (the paper's X-ray rule): each clean projection is divided by its own maximum
    ``m_i`` and its noisy copies by the same number; PSNR uses ``data_range = 1``. With
    ``P`` pixels, ``S_i = sum(t_i)`` and ``Q_i = sum(t_i**2)``, the expected MSE of image ``i`` is
    ``S_i / (P * photons * m_i**2)`` and the expected PSNR, to second order,
    ``-10 log10(E[MSE_i]) + 10/ln(10) * (1 / (photons * S_i) + 2 Q_i / S_i**2) / 2``. The mean
    over images is solved for ``photons`` by a few fixed-point steps (the second term is tiny).

    Parameters
    ----------
    transmission : array_like, shape (H, W) or (I, H, W)
        Clean transmission images, finite, >= 0, each with a positive maximum.
    target_psnr_db : float
        Target mean PSNR in dB (e.g. 29.91 for the paper's X-ray set), finite.

    Returns
    -------
    NoiseLevel
        ``level`` = photons_per_pixel.
    """
    t = checked_array(transmission, "transmission", nonnegative=True).astype(np.float64)
    t = t.reshape(-1, *t.shape[-2:]) if t.ndim >= 2 else t
    if t.ndim != 3:
        raise LowdoseInputError(f"transmission has shape {t.shape}; pass (H, W) or (I, H, W)")
    target = checked_target(target_psnr_db)
    peak = t.max(axis=(1, 2))
    if np.any(peak <= 0):
        raise LowdoseInputError("a transmission image is all zero; its max cannot scale it")
    sums = t.sum(axis=(1, 2))
    squares = (t * t).sum(axis=(1, 2))
    pixels = t.shape[1] * t.shape[2]

    def expected(photons: float) -> float:
        mse = sums / (pixels * photons * peak**2)
        spread = 1.0 / (photons * sums) + 2.0 * squares / sums**2
        return float(np.mean(-10.0 * np.log10(mse) + _DB_PER_NEPER * spread / 2.0))

    photons = 1.0
    for _ in range(6):  # PSNR is ~10 log10(photons) + const: converges in 2-3 steps
        photons *= 10.0 ** ((target - expected(photons)) / 10.0)
    return NoiseLevel(level=float(photons), expected_psnr_db=expected(photons))


def solve_sigma_for_psnr(clean, target_psnr_db, *, data_range) -> NoiseLevel:
    """AWGN sigma whose expected mean per-image PSNR equals the target (no clipping).

    The MSE of an image of ``P`` pixels is ``sigma**2 * chi2_P / P``, so the expected PSNR is
    ``10 log10(data_range**2 / sigma**2) + 10/ln(10) / P`` (second order), the same for every
    image; only the image size of ``clean`` matters.

    Parameters
    ----------
    clean : array_like, shape (H, W) or (I, H, W)
        Clean images on the scale the PSNR is measured on (CT: divided by the dataset max).
    target_psnr_db : float
        Target PSNR in dB (e.g. 24.44 or 18.66 for the paper's CT sets).
    data_range : float
        PSNR data range on that scale (1.0 on the paper's scaling), > 0.

    Returns
    -------
    NoiseLevel
        ``level`` = sigma in the units of ``clean``.
    """
    image = checked_array(clean, "clean", nonnegative=False)
    if image.ndim not in (2, 3):
        raise LowdoseInputError(f"clean has shape {image.shape}; pass (H, W) or (I, H, W)")
    target = checked_target(target_psnr_db)
    data_range = checked_level(data_range, "data_range")
    jensen_db = _DB_PER_NEPER / (image.shape[-1] * image.shape[-2])
    sigma = data_range * 10.0 ** (-(target - jensen_db) / 20.0)
    return NoiseLevel(level=float(sigma), expected_psnr_db=target)


def solve_level_numerically(
    psnr_at_level: Callable[[float], float],
    target_psnr_db: float,
    *,
    low: float,
    high: float,
    tol_db: float = 0.02,
    max_steps: int = 60,
) -> NoiseLevel:
    """Bisect (in log level) any monotone noise model for a target PSNR, using actual draws.

    For models without a closed form (sinogram Poisson followed by FBP). ``psnr_at_level`` must
    be deterministic (seed its own draws), and monotone over ``[low, high]``, increasing
    (photons, I0) or decreasing (sigma) with the level.

    Returns
    -------
    NoiseLevel
        The level and the PSNR measured there (within ``tol_db`` of the target).
    """
    target = checked_target(target_psnr_db)
    low, high = checked_level(low, "low"), checked_level(high, "high")
    at_low, at_high = psnr_at_level(low), psnr_at_level(high)
    if not min(at_low, at_high) <= target <= max(at_low, at_high):
        raise LowdoseInputError(
            f"target {target} dB is outside [{at_low:.2f}, {at_high:.2f}] dB reached between "
            f"levels {low} and {high}; widen the bracket"
        )
    rising = at_high > at_low
    best = NoiseLevel(low, at_low)
    for _ in range(max_steps):
        mid = float(np.sqrt(low * high))
        value = psnr_at_level(mid)
        best = NoiseLevel(mid, value)
        if abs(value - target) <= tol_db:
            break
        if (value < target) == rising:
            low = mid
        else:
            high = mid
    return best


def achieved_psnr_db(
    clean,
    noisy,
    *,
    data_range: float = 1.0,
    scaling: Literal["none", "per_image_max"] = "none",
) -> float:
    """Mean per-image PSNR (dB) of a noisy stack against its clean images.

    Parameters
    ----------
    clean : array_like, shape (H, W) or (I, H, W)
    noisy : array_like, shape of ``clean``, or (I, N, H, W) / (N, H, W) with realisations
    data_range : float
        PSNR data range on the measured scale.
    scaling : {"none", "per_image_max"}
        ``"per_image_max"`` first divides each clean image and its noisy copies by the clean
        image's maximum (the paper's X-ray rule), for raw transmission input.

    Returns
    -------
    float
        Mean over all images and realisations.
    """
    ref = np.asarray(clean, dtype=np.float64)
    est = np.asarray(noisy)
    if est.ndim == ref.ndim + 1:
        ref = ref[..., None, :, :]  # (..., 1, H, W): broadcast over realisations
    if scaling == "per_image_max":
        peak = ref.max(axis=(-2, -1), keepdims=True)
        if np.any(peak <= 0):
            raise LowdoseInputError("a clean image is all zero; its max cannot scale it")
        ref, est = ref / peak, est / peak
    elif scaling != "none":
        raise LowdoseInputError(f"scaling {scaling!r} is unknown; use 'none' or 'per_image_max'")
    try:
        ref = np.broadcast_to(ref, est.shape)
    except ValueError:
        raise LowdoseInputError(
            f"noisy shape {est.shape} does not match clean shape {np.shape(clean)}"
        ) from None
    values = psnr(
        ref.reshape(-1, *est.shape[-2:]), est.reshape(-1, *est.shape[-2:]), data_range=data_range
    )
    return float(np.mean(values))
