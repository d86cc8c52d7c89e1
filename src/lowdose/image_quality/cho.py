"""Channelized Hotelling observer (CHO) with Laguerre-Gauss channels: d' and AUC from image samples.

Where the Fourier observers of :mod:`lowdose.image_quality.detectability` assume a linear,
shift-invariant method in stationary noise, the CHO reads detectability directly from
signal-present and signal-absent ROIs of the method's outputs (ICRU Report 87, 2012; AAPM
TG-233, Samei et al. 2019). Each ROI ``g`` (``P = n x n`` pixels) is reduced to
``C`` channel outputs ``v = U^T g``; with the channel means ``v1, v0`` of the two classes and their
mean covariance ``S = (S1 + S0) / 2`` (unbiased),

    d'^2 = (v1 - v0)^T S^{-1} (v1 - v0),        AUC = Phi(d' / sqrt 2).

Laguerre-Gauss channels (e.g. Gallas and Barrett, JOSA A 20 (2003) 1725) suit a rotationally
symmetric signal at a known position:

    u_j(r) = sqrt(2) / a * exp(-pi r^2 / a^2) * L_j(2 pi r^2 / a^2),

``L_j`` the Laguerre polynomial of order ``j`` and ``a`` the width in pixels (about the signal's
diameter). A Gaussian signal ``exp(-pi r^2 / a^2)`` lies in channel 0's span, so for it in white
noise the CHO reaches the ideal observer's ``d' = sqrt(sum s^2) / sigma``.

d' estimated from ``M`` samples per class reads high by about ``C / M`` relatively (the inverse
of an estimated covariance); use ``M >> C``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_positive


@dataclass(frozen=True)
class ChoResult:
    """A CHO's detectability: ``dprime`` (>= 0) and ``auc = Phi(dprime / sqrt 2)`` in [0.5, 1]."""

    dprime: float
    auc: float


def laguerre_gauss_channels(size_px: int, n_channels: int, width_px: float) -> np.ndarray:
    """Laguerre-Gauss channels centred on a square ROI (module docstring).

    Parameters
    ----------
    size_px : int
        ROI side ``n``; the centre is ``((n - 1) / 2, (n - 1) / 2)``.
    n_channels : int
        ``C >= 1`` (orders 0 .. C - 1).
    width_px : float
        The Gaussian width ``a`` in pixels.

    Returns
    -------
    numpy.ndarray
        ``(C, n, n)`` float64; each channel has unit energy when ``a`` is well inside the ROI.

    Examples
    --------
    >>> u = laguerre_gauss_channels(64, 3, 10.0)
    >>> bool(np.allclose(np.einsum("ihw,jhw->ij", u, u), np.eye(3), atol=1e-6))
    True
    """
    n = int(size_px)
    if n != size_px or n < 2 or int(n_channels) != n_channels or n_channels < 1:
        raise LowdoseInputError(
            f"laguerre_gauss_channels: size_px={size_px!r} must be an integer >= 2 and "
            f"n_channels={n_channels!r} an integer >= 1"
        )
    a = checked_positive(width_px, "width_px")
    axis = np.arange(n) - (n - 1) / 2
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2  # (n, n) px^2
    gauss = math.sqrt(2) / a * np.exp(-np.pi * r2 / a**2)
    x = 2 * np.pi * r2 / a**2
    orders = np.eye(int(n_channels))
    return np.stack([gauss * np.polynomial.laguerre.lagval(x, order) for order in orders])


def _checked_samples(samples, name: str, shape_hw) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != tuple(shape_hw) or array.shape[0] < 2:
        raise LowdoseInputError(
            f"{name} has shape {np.shape(samples)}; pass M >= 2 ROIs (M, n, n) shaped like the "
            f"channels {tuple(shape_hw)}"
        )
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{name} contains NaN or Inf; pass finite ROIs")
    return array


def cho_dprime(signal_present, signal_absent, channels) -> ChoResult:
    """d' and AUC of the channelized Hotelling observer (module docstring).

    Parameters
    ----------
    signal_present, signal_absent : numpy.ndarray
        ``(M1, n, n)`` and ``(M0, n, n)`` ROIs (HU) centred on the signal's position, with and
        without the signal; ``M1, M0 >= 2`` and much more than the channel count.
    channels : numpy.ndarray
        ``(C, n, n)``, e.g. :func:`laguerre_gauss_channels`.

    Returns
    -------
    ChoResult
    """
    u = np.asarray(channels, dtype=np.float64)
    if u.ndim != 3:
        raise LowdoseInputError(f"channels has shape {u.shape}; pass (C, n, n)")
    present = _checked_samples(signal_present, "signal_present", u.shape[1:])
    absent = _checked_samples(signal_absent, "signal_absent", u.shape[1:])
    flat_u = u.reshape(u.shape[0], -1)  # (C, P)
    v1 = present.reshape(present.shape[0], -1) @ flat_u.T  # (M1, C)
    v0 = absent.reshape(absent.shape[0], -1) @ flat_u.T  # (M0, C)
    covariance = (np.atleast_2d(np.cov(v1.T)) + np.atleast_2d(np.cov(v0.T))) / 2  # (C, C)
    difference = v1.mean(axis=0) - v0.mean(axis=0)  # (C,)
    # lstsq, not inv: channels that see no noise (a zero ROI, a redundant channel) are singular
    template = np.linalg.lstsq(covariance, difference, rcond=None)[0]
    dprime = math.sqrt(max(float(difference @ template), 0.0))
    return ChoResult(dprime=dprime, auc=0.5 * (1 + math.erf(dprime / 2)))
