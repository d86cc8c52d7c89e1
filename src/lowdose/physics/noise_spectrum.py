"""The noise power spectrum (NPS) of an image's noise, in the convention BM3D takes, clean-free.

FBP correlates CT noise (lag-1 correlation ~0.6 with a Hann kernel): a white-noise level says
how much noise there is but not *where in frequency*, and a filter told "white" under-smooths
the mid frequencies where FBP noise lives. The spectrum says both.

Convention (the ``bm3d`` package's ``sigma_psd`` when given as an array): for noise ``n`` of an
(H, W) image, ``psd = E |FFT2(n)|^2`` with the unnormalised FFT (``numpy.fft.fft2``), DC at
``[0, 0]``. By Parseval the per-pixel noise variance is ``psd.mean() / (H W)``; white noise of
sd ``sigma`` has ``psd = sigma**2 H W`` at every frequency.

From two acquisitions (:func:`pair_noise_psd`): ``d = (y1 - y2) / sqrt(2)`` holds exactly the
noise of one acquisition (the object cancels), so the mean periodogram of ``d`` over the pairs is
an unbiased estimate of the noise spectrum; no clean image anywhere.

From one image: :mod:`lowdose.physics.single_image_noise` (same convention).
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError


def pair_noise_psd(first, second, *, inside=None) -> np.ndarray:
    """Noise power spectrum of one acquisition from pairs of acquisitions, clean-free.

    Parameters
    ----------
    first, second : ndarray (B, H, W) or (H, W), float
        Two independent noisy acquisitions of the same B images, same scale.
    inside : ndarray of bool, same shape as ``first``, optional
        Pixels that carry noise (the scanner's field of view). Outside, the difference is set to
        0 and the spectrum is scaled by ``H W / pixels inside`` so its level is that of the
        noise inside (padding outside the field of view would otherwise dilute it).

    Returns
    -------
    ndarray (H, W) float64
        ``mean_b |FFT2((y1_b - y2_b) / sqrt(2))|^2`` in the module's convention (DC at
        ``[0, 0]``; ``psd.mean() / (H W)`` is the per-pixel noise variance).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y1, y2 = rng.normal(0, 0.1, (2, 8, 32, 32))
    >>> round(float(pair_noise_psd(y1, y2).mean() / 32**2), 3)  # sigma**2 = 0.01
    0.01
    """
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise LowdoseInputError(
            f"pair_noise_psd: acquisitions {a.shape} and {b.shape} must be equal (H, W) or "
            "(B, H, W) stacks"
        )
    a, b = (a[None], b[None]) if a.ndim == 2 else (a, b)
    difference = (a - b) / np.sqrt(2.0)
    fraction = 1.0
    if inside is not None:
        mask = np.broadcast_to(np.asarray(inside, bool).reshape(difference.shape), difference.shape)
        fraction = float(mask.mean())
        if fraction == 0.0:
            raise LowdoseInputError("pair_noise_psd: no pixel inside the field of view")
        difference = np.where(mask, difference - _masked_mean(difference, mask), 0.0)
    return noise_psd(difference) / fraction


def noise_psd(noise) -> np.ndarray:
    """The spectrum of known noise: the mean periodogram ``mean_b |FFT2(n_b)|^2`` (DC at [0, 0]).

    Parameters
    ----------
    noise : ndarray (B, H, W) or (H, W) float
        Noise realisations (a pair difference over sqrt(2), or ``noisy - clean`` for an oracle).

    Returns
    -------
    ndarray (H, W) float64

    >>> float(noise_psd(np.ones((2, 4, 4)))[0, 0])  # all power at DC: (4 * 4)**2
    256.0
    """
    stack = np.asarray(noise, dtype=np.float64)
    stack = stack[None] if stack.ndim == 2 else stack
    return (np.abs(np.fft.fft2(stack)) ** 2).mean(axis=0)  # (H, W)


def psd_noise_variance(psd) -> float:
    """Per-pixel noise variance of a spectrum in this module's convention: ``mean(psd) / (H W)``.

    >>> psd_noise_variance(np.full((4, 8), 0.5 * 32))
    0.5
    """
    psd = np.asarray(psd, dtype=np.float64)
    return float(psd.mean() / psd.size)


def unit_spectrum(psd) -> np.ndarray:
    """``psd`` scaled to a per-pixel noise variance of 1: the spectrum's *shape*.

    FBP noise keeps its shape across slices of one scan protocol (geometry and kernel) while its
    level follows each slice's attenuation; a shape times each slice's own variance fits both.

    >>> float(psd_noise_variance(unit_spectrum(np.full((4, 4), 3.0 * 16))))
    1.0
    """
    psd = np.asarray(psd, dtype=np.float64)
    variance = psd_noise_variance(psd)
    if not variance > 0:
        raise LowdoseInputError("unit_spectrum: the spectrum has no power")
    return psd / variance


def _masked_mean(stack: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, 1, 1) mean of each image over its masked pixels (0 where none)."""
    counts = np.maximum(mask.sum(axis=(1, 2), keepdims=True), 1)
    return np.where(mask, stack, 0.0).sum(axis=(1, 2), keepdims=True) / counts
