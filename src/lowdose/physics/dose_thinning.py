"""Lower the dose of noisy data without its clean image: binomial thinning and added Gaussian noise.

Both re-noise a realisation we already have into an *independent* realisation at a fraction
``p`` (0 < p <= 1) of its dose, so two realisations re-noised separately stay a valid
Noise2Noise pair (their noises stay independent and zero-mean around the same object):

- **Photon counts** (X-ray projections, ``noise_model = "poisson"``): keep each detected photon
  with probability ``p`` (:func:`thin_counts`). If ``N ~ Poisson(l)`` and ``M | N ~ Binomial(N, p)``
  then ``M ~ Poisson(p l)``: exactly the counts of an acquisition at ``p`` times the dose, and
  thinned copies of independent acquisitions are independent. lowdose stores transmission
  ``counts / photons_per_pixel / scale`` (:mod:`lowdose.simulate.xray`), so
  :func:`thin_stored_transmission` recovers the counts, thins them and divides by the *new*
  photon count ``p * photons_per_pixel``: the image keeps its mean (the same transmission on the
  same scale) and its variance grows by ``1 / p``.
- **Additive white Gaussian noise** (CT AWGN, ``noise_model = "gaussian"``): add independent
  ``N(0, sigma_target^2 - sigma_now^2)`` (:func:`add_gaussian_to_reach`); variances of
  independent noises add. For quantum-limited noise the variance is inversely proportional to the
  dose, so ``p`` of the dose is ``sigma_target = sigma_now / sqrt(p)`` (:func:`sigma_at_dose`).

A dose *above* the acquired one cannot be made either way: that would remove noise whose values
are unknown without the clean image. CT with sinogram noise (noise that went through the
reconstruction, correlated across pixels, its level set per ray in the sinogram) and measured
data of unknown noise model cannot be re-noised in the image domain (:func:`dose_renoiser`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_array, checked_level

RENOISABLE_MODELS: tuple[str, ...] = ("poisson", "gaussian")
"""Dataset ``noise_model`` values whose realisations can be re-noised to a lower dose."""
COUNT_GRID_TOLERANCE = 1e-3
"""Largest distance (counts) of a recovered count from a whole number, beyond float round-off."""


def checked_dose_fraction(dose_fraction, name: str = "dose_fraction") -> float:
    """Return ``dose_fraction`` as float, raising unless ``0 < dose_fraction <= 1``."""
    value = checked_level(dose_fraction, name)
    if value > 1.0:
        raise LowdoseInputError(
            f"{name}={dose_fraction!r} is above the acquired dose; use a fraction in (0, 1] "
            "(noise cannot be removed without the clean image)"
        )
    return value


def thin_counts(counts, keep_fraction, *, rng: np.random.Generator) -> np.ndarray:
    """Binomial thinning: keep each counted photon with probability ``keep_fraction``.

    ``Binomial(Poisson(l), p) = Poisson(p l)``: Poisson counts at dose ``D`` become independent
    Poisson counts at dose ``p D``, with no clean image needed.

    Parameters
    ----------
    counts : array_like of int or integral float, any shape
        Photon counts, >= 0 (float values are rounded to the nearest integer).
    keep_fraction : float
        ``p`` in (0, 1].
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, same shape
        The kept counts (a new array; ``counts`` is not modified).

    Examples
    --------
    >>> thin_counts([0, 5, 7], 1.0, rng=np.random.default_rng(0)).tolist()
    [0, 5, 7]
    """
    p = checked_dose_fraction(keep_fraction, "keep_fraction")
    whole = np.rint(checked_array(counts, "counts", nonnegative=True)).astype(np.int64)
    return rng.binomial(whole, p)


def thin_stored_transmission(
    noisy, keep_fraction, *, photons_per_pixel, scale, rng: np.random.Generator, where="noisy"
) -> tuple[np.ndarray, float]:
    """Thin a stored noisy X-ray projection to ``keep_fraction`` of its dose, on the same scale.

    The counts ``noisy * scale * photons_per_pixel`` must be whole numbers (to
    :data:`COUNT_GRID_TOLERANCE` plus the storage dtype's round-off): values off that grid mean
    that ``photons_per_pixel`` or ``scale`` is not what the values were stored with, and
    rounding them would give data at some other dose without a word, so they raise.

    Parameters
    ----------
    noisy : array_like, any shape
        Stored values ``counts / photons_per_pixel / scale`` (>= 0), e.g. (H, W) or (B, H, W).
    keep_fraction : float
        ``p`` in (0, 1].
    photons_per_pixel : float
        The dataset's dose (``noise_level`` of a ``poisson`` dataset), > 0.
    scale : float or array_like broadcastable to ``noisy``
        Each image's stored divisor (``scale``; e.g. ``scale[:, None, None]`` for a stack), > 0.
        Required: for X-ray it is the clean maximum the simulation divided by (stored in the
        dataset), without which the counts cannot be recovered.
    rng : numpy.random.Generator
    where : str
        What the values are (the dataset file), named in the error.

    Returns
    -------
    thinned : ndarray, same shape and float dtype as ``noisy`` (float64 for integer input)
        ``thin_counts(counts, p) / (p * photons_per_pixel) / scale``: same mean, variance
        ``1 / p`` times the input's.
    photons_per_pixel : float
        The new dose, ``p * photons_per_pixel``.

    Raises
    ------
    LowdoseInputError
        One line naming ``where``: values off the count grid, a ``scale`` <= 0, ``p`` outside
        (0, 1].
    """
    values = checked_array(noisy, "noisy", nonnegative=True)
    photons = checked_level(photons_per_pixel, "photons_per_pixel")
    divisor = np.asarray(checked_array(scale, "scale", nonnegative=True), dtype=np.float64)
    if np.any(divisor <= 0):
        raise LowdoseInputError(f"{where}: scale must be > 0 (each image's stored divisor)")
    p = checked_dose_fraction(keep_fraction, "keep_fraction")
    counts = values.astype(np.float64) * divisor * photons
    _check_count_grid(counts, values.dtype, where)
    new_photons = p * photons
    thinned = thin_counts(counts, p, rng=rng) / new_photons / divisor
    return thinned.astype(_float_dtype(values)), new_photons


def sigma_at_dose(sigma_now, dose_fraction) -> float:
    """Gaussian noise sigma at ``dose_fraction`` of the dose: ``sigma_now / sqrt(p)``.

    Quantum-limited noise has variance inversely proportional to the dose.

    >>> sigma_at_dose(0.1, 0.25)
    0.2
    """
    return checked_level(sigma_now, "sigma_now") / math.sqrt(checked_dose_fraction(dose_fraction))


def add_gaussian_to_reach(noisy, sigma_now, sigma_target, *, rng: np.random.Generator):
    """Add independent white Gaussian noise so the total noise sigma becomes ``sigma_target``.

    Parameters
    ----------
    noisy : array_like, any shape
        Finite values carrying white Gaussian noise of standard deviation ``sigma_now``.
    sigma_now, sigma_target : float
        Standard deviations in the units of ``noisy``, ``0 < sigma_now <= sigma_target``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, same shape and float dtype as ``noisy`` (float64 for integer input)
        ``noisy + sqrt(sigma_target^2 - sigma_now^2) * N(0, 1)`` (a new array; a copy when the
        two sigmas are equal).
    """
    values = checked_array(noisy, "noisy", nonnegative=False)
    now, target = checked_level(sigma_now, "sigma_now"), checked_level(sigma_target, "sigma_target")
    if target < now:
        raise LowdoseInputError(
            f"sigma_target={target!r} is below sigma_now={now!r}: noise cannot be removed "
            "without the clean image; use a target >= the current sigma"
        )
    dtype = _float_dtype(values)
    extra = math.sqrt(target * target - now * now)
    if extra == 0.0:
        return values.astype(dtype, copy=True)
    return (values + extra * rng.standard_normal(values.shape)).astype(dtype)


@dataclass(frozen=True)
class DoseRenoiser:
    """Re-noise stored realisations of one dataset to a fraction of its dose.

    Attributes
    ----------
    noise_model : {"poisson", "gaussian"}
        The dataset's noise model.
    noise_level : float
        ``photons_per_pixel`` (poisson) or ``sigma`` on the stored scale (gaussian), > 0.
    where : str
        The dataset file, named in errors (values that do not match ``noise_level``).
    """

    noise_model: Literal["poisson", "gaussian"]
    noise_level: float
    where: str = "noisy"

    def at_dose(self, noisy, dose_fraction, *, scale=None, rng: np.random.Generator) -> np.ndarray:
        """``noisy`` (stored scale, any shape) re-noised to ``dose_fraction`` of the dose.

        ``scale`` (the stored divisor, broadcastable) is required for thinning (poisson) and
        unused otherwise. Returns a new array of the same shape and float dtype; the same
        ``rng`` state gives the same output.
        """
        if self.noise_model == "poisson":
            if scale is None:
                raise LowdoseInputError(
                    f"{self.where}: thinning needs each image's stored scale (the divisor its "
                    "counts were stored with); pass scale="
                )
            thinned, _ = thin_stored_transmission(
                noisy,
                dose_fraction,
                photons_per_pixel=self.noise_level,
                scale=scale,
                rng=rng,
                where=self.where,
            )
            return thinned
        target = sigma_at_dose(self.noise_level, dose_fraction)
        return add_gaussian_to_reach(noisy, self.noise_level, target, rng=rng)


def dose_renoiser(
    noise_model: str, noise_level: float, *, where: str, purpose: str = "--dose-range"
) -> DoseRenoiser:
    """The re-noiser for a dataset's ``noise_model`` and ``noise_level``, or one error line.

    Parameters
    ----------
    noise_model, noise_level
        The dataset file's attributes (:class:`lowdose.data.attributes.DatasetAttrs`).
    where
        The dataset file, named in the error and kept by the re-noiser for its own errors.
    purpose
        What asks for the lower dose, named in the error (``--dose-range``, ``re-noising``).

    Raises
    ------
    LowdoseInputError
        For ``sinogram`` (noise after the reconstruction is correlated and its level is set per
        ray: thinning the image would not give the data of a lower dose), ``measured`` (unknown
        noise model), or a poisson/gaussian file without a finite ``noise_level`` > 0.
    """
    if noise_model == "sinogram":
        raise LowdoseInputError(
            f"{where}: {purpose} cannot lower the dose of sinogram-noise CT (its noise went "
            "through the reconstruction: correlated, its level set per ray); simulate one dataset "
            "per dose with `lowdose simulate ct --noise sinogram --dose-fraction P`, or use an "
            "AWGN dataset"
        )
    if noise_model not in RENOISABLE_MODELS:
        raise LowdoseInputError(
            f"{where}: {purpose} needs simulated Poisson (X-ray) or Gaussian (CT AWGN) noise, "
            f"this file's noise_model is {noise_model!r} (an unknown noise model cannot be "
            f"re-noised); use the data at its acquired dose, without {purpose}"
        )
    if not (math.isfinite(noise_level) and noise_level > 0):
        name = "photons per pixel" if noise_model == "poisson" else "sigma"
        raise LowdoseInputError(
            f"{where}: attribute noise_level is {noise_level!r}; {purpose} needs the acquired "
            f"level ({name}): rebuild the file with lowdose simulate or set noise_level"
        )
    return DoseRenoiser(noise_model, float(noise_level), str(where))  # type: ignore[arg-type]


def _check_count_grid(counts: np.ndarray, stored_dtype: np.dtype, where: str) -> None:
    """Raise unless every recovered count is a whole number (see thin_stored_transmission)."""
    if counts.size == 0:
        return
    # A stored float carries a relative round-off of half its epsilon, which grows with the count
    # (float32 at 1e5 photons: ~0.006 counts); integers are exact.
    floating = np.issubdtype(stored_dtype, np.floating)
    resolution = float(np.finfo(stored_dtype).eps) if floating else 0.0
    off = np.abs(counts - np.rint(counts)) - resolution * np.abs(counts)
    if float(off.max()) > COUNT_GRID_TOLERANCE:
        worst = float(np.abs(counts - np.rint(counts)).max())
        raise LowdoseInputError(
            f"{where}: the stored values times scale times noise_level are not whole photon "
            f"counts (off by up to {worst:.3g}): noise_level (photons per pixel) or scale does "
            "not match the stored values; rebuild the file with lowdose simulate xray"
        )


def _float_dtype(array: np.ndarray) -> np.dtype:
    """float32/float64 are kept; integers and float16 compute in float64."""
    return array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float64)
