"""Detectability index d' of a low-contrast disc from TTF and NPS: NPW and NPW with an eye filter.

Fourier-domain model observers of AAPM TG-233 (Samei et al. 2019) and ICRU Report 87 (2012), for a
signal-known-exactly detection task ``W`` (the Fourier transform of the lesion, HU mm^2) imaged with
the method's TTF in noise of power spectrum NPS (HU^2 mm^2), summed over the NPS grid with ``df =
dfx dfy``:
* non-prewhitening (NPW), the matched filter without noise decorrelation:
  ``d'^2 = [sum |W|^2 TTF^2 df]^2 / sum |W|^2 TTF^2 NPS df``;
* NPW with an eye filter ``E`` (NPWE), the human visual system's band-pass response:
  ``d'^2 = [sum |W|^2 TTF^2 E^2 df]^2 / sum |W|^2 TTF^2 E^4 (NPS + N_i) df``, with ``N_i`` an
  optional internal noise (a white power spectral density, HU^2 mm^2, seen through the eye
  filter like the image noise).

For white noise (``NPS = sigma^2 dx dy``) and ``TTF = 1``, NPW reduces to the matched filter:
``d'^2 = sum |W|^2 df / (sigma^2 dx dy)``, which by Parseval is ``sum_pixels s^2 / sigma^2`` for
the pixelated signal ``s`` whose DFT times ``dx dy`` is ``W`` (tests/image_quality).
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_positive
from lowdose.image_quality.nps import Nps2D
from lowdose.image_quality.ttf import Ttf

EYE_PEAK_CYCLES_PER_DEGREE = 4.0
"""Peak of Burgess's eye filter (Burgess, JOSA A 11 (1994) 1237): ``c`` is set so E peaks here."""


def disc_task(diameter_mm: float, contrast_hu: float, fx, fy) -> np.ndarray:
    """The Fourier transform ``W`` of a flat disc lesion, on a frequency grid.

    ``W(f) = contrast * pi r^2 * 2 J1(2 pi r f) / (2 pi r f)`` (a jinc), with ``W(0) = contrast *
    pi r^2``, the lesion's integral; real and even, so ``|W| = W`` up to sign.

    Parameters
    ----------
    diameter_mm : float
        Disc diameter ``2 r`` in mm, > 0.
    contrast_hu : float
        Disc minus background, HU (its sign does not change d').
    fx, fy : numpy.ndarray
        ``(nx,)``, ``(ny,)`` frequencies in cycles/mm (e.g. ``Nps2D.fx``, ``Nps2D.fy``).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64, HU mm^2.

    Examples
    --------
    >>> w = disc_task(10.0, 5.0, np.array([0.0, 0.1]), np.array([0.0]))
    >>> round(float(w[0, 0]), 4) == round(5 * np.pi * 25, 4)
    True
    """
    from scipy.special import j1  # scipy.special is heavy to import; only d' needs it

    radius_mm = checked_positive(diameter_mm, "diameter_mm") / 2
    rho = np.hypot(np.asarray(fx, dtype=np.float64)[None, :], np.asarray(fy, np.float64)[:, None])
    x = 2 * np.pi * radius_mm * rho  # (ny, nx)
    safe = np.where(x > 0, x, 1.0)
    jinc = np.where(x > 0, 2 * j1(safe) / safe, 1.0)
    return float(contrast_hu) * np.pi * radius_mm**2 * jinc


def eye_filter(
    f,
    *,
    pixel_mm: float,
    viewing_distance_mm: float = 500.0,
    display_pixel_mm: float = 0.2,
    zoom: float = 1.0,
    n: float = 1.3,
    c: float | None = None,
    rho_exponent: float = 2.0,
) -> np.ndarray:
    """The NPWE eye filter ``E(rho) = rho^n exp(-c rho^g)``, normalised to 1 at its peak.

    ``rho`` is the frequency on the retina in cycles per degree. An image frequency ``f``
    (cycles/mm in the patient) shown with ``pixel_mm`` image pixels on ``display_pixel_mm``
    display pixels, magnified ``zoom`` times, has ``f * pixel_mm / (zoom * display_pixel_mm)``
    cycles per display mm, and one degree spans ``viewing_distance_mm * pi / 180`` display mm:

        rho = f * pixel_mm / (zoom * display_pixel_mm) * viewing_distance_mm * pi / 180.

    The default ``n = 1.3``, ``g = 2`` and ``c = n / (2 * 4^2) deg^2`` (the filter peaks at 4 cycles
    per degree) are Burgess's (JOSA A 11 (1994) 1237). CT studies of NPWE detectability (TG-233;
    Solomon and Samei) use filters of this family, not always with these constants: check the
    study's before comparing d' values with it. The defaults of the display are ours: a diagnostic
    monitor's 0.2 mm pixel seen from 500 mm, one image pixel per display pixel. Other studies use
    other shapes; pass ``n``, ``c`` and ``rho_exponent`` to match them.

    Parameters
    ----------
    f : array_like
        Radial frequencies in cycles/mm, >= 0, any shape.
    pixel_mm : float
        Image pixel size in mm.
    viewing_distance_mm, display_pixel_mm, zoom : float
        Viewing geometry (above).
    n, c, rho_exponent : float
        The filter's shape; ``c`` in ``deg^g``, default: the peak at 4 cycles/degree.

    Returns
    -------
    numpy.ndarray
        ``E``, the shape of ``f``, in [0, 1], 0 at ``f = 0``.
    """
    exponent = checked_positive(n, "n")
    gamma = checked_positive(rho_exponent, "rho_exponent")
    peak = EYE_PEAK_CYCLES_PER_DEGREE
    scale = exponent / (gamma * peak**gamma) if c is None else checked_positive(c, "c")
    distance_mm = checked_positive(viewing_distance_mm, "viewing_distance_mm")
    magnification = (  # display mm per image mm
        checked_positive(zoom, "zoom")
        * checked_positive(display_pixel_mm, "display_pixel_mm")
        / checked_positive(pixel_mm, "pixel_mm")
    )
    display_mm_per_degree = distance_mm * np.pi / 180
    rho = np.abs(np.asarray(f, dtype=np.float64)) / magnification * display_mm_per_degree
    rho_peak = (exponent / (gamma * scale)) ** (1 / gamma)  # where d log E / d rho = 0

    def shape(r):
        return r**exponent * np.exp(-scale * r**gamma)

    return shape(rho) / shape(rho_peak)


def ttf_2d(ttf: Ttf, fx, fy) -> np.ndarray:
    """A radial TTF on a 2-D frequency grid: linear in ``|f|``, 1 at 0, 0 past its last frequency.

    Parameters
    ----------
    ttf : Ttf
        From :func:`lowdose.image_quality.ttf.circular_edge_ttf`.
    fx, fy : numpy.ndarray
        ``(nx,)``, ``(ny,)`` frequencies in cycles/mm.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64, dimensionless.
    """
    rho = np.hypot(np.asarray(fx, dtype=np.float64)[None, :], np.asarray(fy, np.float64)[:, None])
    freq = np.concatenate([[0.0], ttf.frequencies[1:]])
    curve = np.concatenate([[1.0], ttf.ttf[1:]])
    return np.interp(rho, freq, curve, left=1.0, right=0.0)


def _checked_grids(task, ttf2d, nps: Nps2D) -> tuple[np.ndarray, np.ndarray]:
    shape = nps.values.shape
    w = np.asarray(task, dtype=np.float64)
    t = np.asarray(ttf2d, dtype=np.float64)
    if w.shape != shape or t.shape != shape:
        raise LowdoseInputError(
            f"task {w.shape} and ttf2d {t.shape} must lie on the NPS grid {shape}; build them "
            "from nps.fx and nps.fy (disc_task, ttf_2d)"
        )
    return w, t


def dprime_npw(task, ttf2d, nps: Nps2D) -> float:
    """Non-prewhitening d' (module docstring).

    Parameters
    ----------
    task : numpy.ndarray
        ``(ny, nx)`` ``W`` in HU mm^2 on the NPS grid (:func:`disc_task` of ``nps.fx, nps.fy``).
    ttf2d : numpy.ndarray
        ``(ny, nx)`` TTF on that grid (:func:`ttf_2d`), or ``1`` for a perfect system.
    nps : Nps2D
        The noise, HU^2 mm^2.

    Returns
    -------
    float
        d' (dimensionless, >= 0).
    """
    w, t = _checked_grids(task, np.broadcast_to(ttf2d, nps.values.shape), nps)
    dfy, dfx = nps.df_per_mm
    signal = (w * t) ** 2 * dfx * dfy  # (ny, nx) HU^2 mm^2 per cell
    noise = (signal * nps.values).sum()
    return float(signal.sum() / np.sqrt(noise)) if noise > 0 else float("inf")


def dprime_npwe(task, ttf2d, nps: Nps2D, eye, *, internal_noise: float = 0.0) -> float:
    """NPW d' with an eye filter (module docstring).

    Parameters
    ----------
    task, ttf2d, nps
        As for :func:`dprime_npw`.
    eye : numpy.ndarray
        ``(ny, nx)`` eye filter on the NPS grid (:func:`eye_filter` of the radial frequency).
    internal_noise : float
        ``N_i`` in HU^2 mm^2, >= 0, added to the NPS.

    Returns
    -------
    float
        d' (dimensionless, >= 0).
    """
    w, t = _checked_grids(task, np.broadcast_to(ttf2d, nps.values.shape), nps)
    e = np.broadcast_to(np.asarray(eye, dtype=np.float64), nps.values.shape)
    internal = float(internal_noise)
    if not (np.isfinite(internal) and internal >= 0):
        raise LowdoseInputError(f"internal_noise={internal_noise!r} must be finite and >= 0")
    dfy, dfx = nps.df_per_mm
    seen = (w * t * e) ** 2 * dfx * dfy  # (ny, nx)
    noise = (seen * e**2 * (nps.values + internal)).sum()
    return float(seen.sum() / np.sqrt(noise)) if noise > 0 else float("inf")
