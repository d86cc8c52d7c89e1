"""Noise models as pure, seeded functions (the target-PSNR solvers live in noise_levels).

Every random function takes ``rng: numpy.random.Generator`` (keyword-only, except in
:func:`realisations`, whose contract puts it fourth) and never modifies its input. Outputs keep a
floating input dtype (float32 stays float32); integer input gives float64.

- X-ray projections: transmission ``t = exp(-line_integral)`` in (0, 1]; detected counts
  ``~ Poisson(photons_per_pixel * t)``; noisy transmission ``counts / photons_per_pixel``
  (:func:`add_poisson_transmission`), or its post-log form ``-log(counts / photons_per_pixel)``
  (:func:`add_poisson_post_log`, also the CT sinogram step :func:`add_poisson_sinogram`, which can
  add Gaussian electronic noise to the counts before the log).
- Additive white Gaussian noise with standard deviation ``sigma`` (:func:`add_gaussian`), the
  paper's approximation of CT image noise.
- The levels that reach a target PSNR (:func:`~lowdose.physics.noise_levels.solve_photons_for_psnr`,
  ...) are in :mod:`lowdose.physics.noise_levels`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_array, checked_level

# Counts that replace a zero count before the log (the half-count rule), for simulated and
# measured (flat/dark-normalised) data alike.
ZERO_COUNT_FLOOR = 0.5


def add_poisson_transmission(transmission, photons_per_pixel, *, rng: np.random.Generator):
    """Poisson photon noise on a transmission image: ``Poisson(photons_per_pixel * t) / photons``.

    Parameters
    ----------
    transmission : array_like, any shape
        Clean transmission ``t = exp(-line_integral)``, finite and >= 0 (normally in (0, 1]).
    photons_per_pixel : float
        Unattenuated photon count per pixel (the dose), finite and > 0.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, same shape
        Noisy transmission, >= 0, in steps of ``1 / photons_per_pixel``; mean ``t`` and variance
        ``t / photons_per_pixel``.
    """
    t = checked_array(transmission, "transmission", nonnegative=True)
    photons = checked_level(photons_per_pixel, "photons_per_pixel")
    counts = rng.poisson(photons * t.astype(np.float64))
    return (counts / photons).astype(_out_dtype(t))


def add_poisson_post_log(
    line_integral, photons_per_pixel, *, rng: np.random.Generator, floor=ZERO_COUNT_FLOOR
):
    """Poisson noise on line integrals, returned after the log (X-ray post-log or CT sinogram).

    ``counts ~ Poisson(photons_per_pixel * exp(-line_integral))`` and the result is
    ``-log(max(counts, floor) / photons_per_pixel)``. A zero count has no logarithm: it is
    replaced by ``floor`` photons (default 0.5, the usual half-count rule), so the largest
    possible output is ``log(photons_per_pixel / floor)``.

    Parameters
    ----------
    line_integral : array_like, any shape
        Clean line integrals (dimensionless, ``mu`` x length), finite and >= 0; for a sinogram
        this is ``(n_angles, n_detectors)``. Clip tiny negative projector round-off first.
    photons_per_pixel : float
        Unattenuated photons per detector pixel (I0), finite and > 0.
    rng : numpy.random.Generator
    floor : float
        Count that replaces zero counts, > 0.

    Returns
    -------
    ndarray, same shape
        Noisy line integrals, finite.
    """
    integral = checked_array(line_integral, "line_integral", nonnegative=True)
    photons = checked_level(photons_per_pixel, "photons_per_pixel")
    floor = checked_level(floor, "floor")
    counts = rng.poisson(photons * np.exp(-integral.astype(np.float64)))
    return (-np.log(np.maximum(counts, floor) / photons)).astype(_out_dtype(integral))


def add_poisson_sinogram(
    line_integral,
    i0_photons,
    *,
    rng: np.random.Generator,
    floor=ZERO_COUNT_FLOOR,
    electronic_noise_counts: float = 0.0,
):
    """CT sinogram-domain noise: Poisson counts (+ electronic noise), then the log.

    Without electronic noise this is :func:`add_poisson_post_log` with ``I0 = i0_photons`` (the
    same draws). With ``electronic_noise_counts = sigma > 0`` the detector reading is
    ``counts + sigma * N(0, 1)`` (energy-integrating detectors add read-out noise to the quantum
    noise; the Gaussian draws follow the Poisson draws of the whole array), and
    ``-log(max(reading, floor) / I0)`` is returned: readings below the zero-count floor,
    negative ones included, are floored like a zero count.

    Parameters
    ----------
    line_integral : array_like (n_angles, n_detectors) or any shape
        Clean dimensionless line integrals, finite and >= 0.
    i0_photons : float
        Unattenuated photons per detector bin and view, finite and > 0.
    rng : numpy.random.Generator
    floor : float
        Counts that replace readings below it, > 0.
    electronic_noise_counts : float
        Standard deviation of the additive Gaussian read-out noise in counts, >= 0.

    Returns
    -------
    ndarray, same shape
        Noisy line integrals after the log, finite, dtype as :func:`add_poisson_post_log`.
    """
    sigma = float(
        checked_array(electronic_noise_counts, "electronic_noise_counts", nonnegative=True)
    )
    if sigma == 0.0:  # no Gaussian draws: the Poisson-only stream stays bit-identical
        return add_poisson_post_log(line_integral, i0_photons, rng=rng, floor=floor)
    integral = checked_array(line_integral, "line_integral", nonnegative=True)
    photons = checked_level(i0_photons, "i0_photons")
    floor = checked_level(floor, "floor")
    counts = rng.poisson(photons * np.exp(-integral.astype(np.float64)))
    reading = counts + sigma * rng.standard_normal(counts.shape)
    return (-np.log(np.maximum(reading, floor) / photons)).astype(_out_dtype(integral))


def add_gaussian(clean, sigma, *, rng: np.random.Generator):
    """Additive white Gaussian noise: ``clean + sigma * N(0, 1)``, not clipped.

    Parameters
    ----------
    clean : array_like, any shape
        Finite image values (any sign, e.g. scaled CT).
    sigma : float
        Standard deviation in the units of ``clean``, finite and > 0.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, same shape
    """
    image = checked_array(clean, "clean", nonnegative=False)
    sigma = checked_level(sigma, "sigma")
    dtype = _out_dtype(image)
    return (image + sigma * rng.standard_normal(image.shape, dtype=dtype)).astype(dtype)


def realisations(
    clean,
    level,
    n: int,
    rng: np.random.Generator,
    *,
    model: Literal["gaussian", "poisson"] = "gaussian",
):
    """``n`` independent noisy copies of each clean image.

    Parameters
    ----------
    clean : array_like, shape (..., H, W)
        Clean images: transmission for ``model="poisson"``, any finite values for Gaussian.
    level : float
        ``sigma`` (Gaussian) or ``photons_per_pixel`` (Poisson), > 0.
    n : int
        Number of realisations, >= 1.
    rng : numpy.random.Generator
    model : {"gaussian", "poisson"}

    Returns
    -------
    ndarray, shape (..., n, H, W)
        Realisation axis inserted before the image axes; dtype as :func:`add_gaussian`.
    """
    if model not in ("gaussian", "poisson"):
        raise LowdoseInputError(f"noise model {model!r} is unknown; use 'gaussian' or 'poisson'")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise LowdoseInputError(f"number of realisations n={n!r} must be an integer >= 1")
    image = np.asarray(clean)
    if image.ndim < 2:
        raise LowdoseInputError(f"clean has shape {image.shape}; pass (..., H, W) images")
    stacked = np.broadcast_to(image[..., None, :, :], (*image.shape[:-2], n, *image.shape[-2:]))
    if model == "poisson":
        return add_poisson_transmission(stacked, level, rng=rng)
    return add_gaussian(stacked, level, rng=rng)


def _out_dtype(array: np.ndarray) -> np.dtype:
    """float32/float64 are kept; integers and float16 compute in float64."""
    if array.dtype in (np.float32, np.float64):
        return array.dtype
    return np.dtype(np.float64)
