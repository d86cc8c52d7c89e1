"""The noise power spectrum (NPS): noise magnitude *and* texture, from an ensemble of realisations.

Definitions follow ICRU Report 87 (2012) and AAPM TG-233 (Samei et al. 2019). For M noise-only ROIs
``d_m`` of ``ny x nx`` pixels of size ``dy x dx`` mm, each detrended (its mean or a least-squares
plane removed),

    NPS(fx, fy) = dx dy / (nx ny) * mean_m |DFT2(d_m)(fx, fy)|^2        [HU^2 mm^2]

on the DFT grid ``fx = k / (nx dx)`` cycles/mm. By Parseval, ``sum NPS * dfx * dfy`` equals the
mean over ROIs of ``mean(d_m ** 2)``, the ROIs' variance after detrending (:func:`nps_variance`):
the integral = variance check of ICRU 87. (Detrending removes 1 or 3 of ``nx ny`` degrees of
freedom, so this reads ``3 / (nx ny)`` low for a plane; 0.3 % at 32 x 32.) A finite ROI also
smooths the spectrum (leakage through its edges): a peaked NPS reads a few per cent low near its
peak and high in its tail, less so in larger ROIs (tests/image_quality/test_iq_nps.py).

Noise-only ROIs come from realisations of one object (:func:`noise_rois`): each minus the
ensemble mean, so the object (edges, cupping) cancels exactly and only noise is analysed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.image_quality.roi import checked_realisations

DETRENDS = ("mean", "plane")


def noise_rois(realisations, centres_rc, size_px: int) -> np.ndarray:
    """Noise-only square ROIs: each realisation minus the ensemble mean, rescaled, then cut.

    Subtracting the sample mean of N realisations leaves ``(N - 1) / N`` of each realisation's
    noise variance (the mean contains ``1 / N`` of it), so the differences are multiplied by
    ``sqrt(N / (N - 1))``: their variance is then the noise variance of one realisation.

    Parameters
    ----------
    realisations : numpy.ndarray
        ``(N, H, W)``, ``N >= 2`` independent realisations of one object, in HU.
    centres_rc : array_like
        ``(K, 2)`` ROI centres ``(row, col)`` in pixels. The ROI spans rows
        ``round(row) - size_px // 2`` to ``round(row) - size_px // 2 + size_px - 1`` (and so for
        columns); it must lie wholly inside the image.
    size_px : int
        ROI side in pixels, >= 4.

    Returns
    -------
    numpy.ndarray
        ``(N * K, size_px, size_px)`` float64, realisation-major (ROI ``n * K + k`` is
        realisation ``n`` at centre ``k``), in HU.
    """
    stack = checked_realisations(realisations)
    n_real, height, width = stack.shape
    size = int(size_px)
    if size != size_px or size < 4:
        raise LowdoseInputError(f"size_px={size_px!r}: the ROI side must be an integer >= 4")
    centres = np.asarray(centres_rc, dtype=np.float64).reshape(-1, 2)
    if centres.shape[0] == 0 or not np.all(np.isfinite(centres)):
        raise LowdoseInputError("centres_rc: pass at least one finite (row, col) ROI centre")
    tops_lefts = np.round(centres).astype(int) - size // 2  # (K, 2)
    for (top, left), centre in zip(tops_lefts, centres, strict=True):
        if top < 0 or left < 0 or top + size > height or left + size > width:
            raise LowdoseInputError(
                f"noise_rois: a {size}x{size} ROI at (row, col) = ({centre[0]:g}, {centre[1]:g})"
                f" reaches outside the {height}x{width} image; move it inwards or make it smaller"
            )
    noise = (stack - stack.mean(axis=0)) * np.sqrt(n_real / (n_real - 1))  # (N, H, W)
    cuts = [noise[:, t : t + size, c : c + size] for t, c in tops_lefts]  # K x (N, s, s)
    return np.stack(cuts, axis=1).reshape(n_real * len(cuts), size, size)


@dataclass(frozen=True, eq=False)
class Nps2D:
    """A 2-D noise power spectrum on its DFT grid, zero frequency at the centre (fftshifted).

    Attributes
    ----------
    values : numpy.ndarray
        ``(ny, nx)`` float64, HU^2 mm^2.
    fx : numpy.ndarray
        ``(nx,)`` column frequencies in cycles/mm, increasing, ``fx[nx // 2] == 0``.
    fy : numpy.ndarray
        ``(ny,)`` row frequencies in cycles/mm, likewise.
    n_rois : int
        How many ROIs were averaged.
    """

    values: np.ndarray
    fx: np.ndarray
    fy: np.ndarray
    n_rois: int

    @property
    def df_per_mm(self) -> tuple[float, float]:
        """``(dfy, dfx)``: the grid's frequency spacing in cycles/mm."""
        return float(self.fy[1] - self.fy[0]), float(self.fx[1] - self.fx[0])


def _pixel_pair_mm(pixel_mm) -> tuple[float, float]:
    """``(dy, dx)`` in mm from one number or a (row, column) pair, each finite and > 0."""
    pair = np.broadcast_to(np.asarray(pixel_mm, dtype=np.float64), (2,))
    if not np.all(np.isfinite(pair)) or np.any(pair <= 0):
        raise LowdoseInputError(
            f"pixel_mm={pixel_mm!r}: pass the pixel size in mm, one number or (row_mm, col_mm) > 0"
        )
    return float(pair[0]), float(pair[1])


def _detrended(rois: np.ndarray, detrend: str) -> np.ndarray:
    """ROIs minus their mean, or minus their least-squares plane ``a + b row + c col``."""
    if detrend == "mean":
        return rois - rois.mean(axis=(1, 2), keepdims=True)
    n_rois, height, width = rois.shape
    rows, cols = np.mgrid[0:height, 0:width]
    design = np.stack([np.ones(height * width), rows.ravel(), cols.ravel()], axis=1)  # (P, 3)
    flat = rois.reshape(n_rois, -1).T  # (P, M)
    coefficients = np.linalg.lstsq(design, flat, rcond=None)[0]  # (3, M)
    return (flat - design @ coefficients).T.reshape(rois.shape)


def nps_2d(rois, pixel_mm, *, detrend: str = "plane") -> Nps2D:
    """The 2-D NPS of noise-only ROIs, ICRU 87 normalisation (module docstring).

    Parameters
    ----------
    rois : numpy.ndarray
        ``(M, ny, nx)`` noise-only ROIs in HU (:func:`noise_rois`), ``ny, nx >= 4``. One ROI
        ``(ny, nx)`` is taken as ``M = 1``.
    pixel_mm : float or (float, float)
        Pixel size in mm, one number or ``(row_mm, col_mm)``.
    detrend : {"plane", "mean"}
        Removed from each ROI before the DFT: its least-squares plane (removes slow drifts that
        would otherwise pile up at the lowest frequencies) or its mean.

    Returns
    -------
    Nps2D
        ``values (ny, nx)`` HU^2 mm^2 with ``fx (nx,)``, ``fy (ny,)`` in cycles/mm, fftshifted.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> nps = nps_2d(rng.normal(0, 10, (50, 32, 32)), 0.5, detrend="mean")
    >>> round(float(nps.values.mean()) / (100 * 0.25), 1)  # white: flat at sigma^2 dx dy
    1.0
    """
    stack = np.asarray(rois)
    stack = stack[None] if stack.ndim == 2 else stack
    if stack.ndim != 3 or stack.shape[0] < 1 or min(stack.shape[1:]) < 4:
        raise LowdoseInputError(
            f"rois has shape {np.shape(rois)}; pass noise-only ROIs (M, ny, nx) with ny, nx >= 4"
        )
    if not np.all(np.isfinite(stack)):
        raise LowdoseInputError("rois contains NaN or Inf; pass finite noise-only ROIs")
    if detrend not in DETRENDS:
        raise LowdoseInputError(f"detrend={detrend!r}: use one of {', '.join(DETRENDS)}")
    dy_mm, dx_mm = _pixel_pair_mm(pixel_mm)
    n_rois, height, width = stack.shape
    noise = _detrended(stack.astype(np.float64, copy=False), detrend)
    power = np.abs(np.fft.fft2(noise)) ** 2  # (M, ny, nx)
    values = (dx_mm * dy_mm / (width * height)) * power.mean(axis=0)
    return Nps2D(
        values=np.fft.fftshift(values),
        fx=np.fft.fftshift(np.fft.fftfreq(width, d=dx_mm)),
        fy=np.fft.fftshift(np.fft.fftfreq(height, d=dy_mm)),
        n_rois=n_rois,
    )


def nps_variance(nps: Nps2D) -> float:
    """``sum(values) * dfx * dfy`` in HU^2: the ROIs' mean variance after detrending (ICRU 87)."""
    dfy, dfx = nps.df_per_mm
    return float(nps.values.sum() * dfx * dfy)


def radial_nps(
    nps: Nps2D, *, bin_width: float | None = None, max_frequency: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Annular average of a 2-D NPS: the 1-D NPS curve of isotropic (CT axial) noise.

    Samples at radial frequency ``rho = sqrt(fx^2 + fy^2)`` fall in bin ``k = round(rho / w)``
    (bins centred on ``k w``); bin 0 (the DC region, emptied by detrending) is left out, and so
    are bins past ``max_frequency`` (default: the lower Nyquist frequency ``min(max|fx|,
    max|fy|)``, beyond which rings are cut by the square grid's edges).

    Parameters
    ----------
    nps : Nps2D
        From :func:`nps_2d`.
    bin_width : float, optional
        ``w`` in cycles/mm, default the grid's coarser frequency spacing ``max(dfx, dfy)``.
    max_frequency : float, optional
        Highest bin centre in cycles/mm.

    Returns
    -------
    f : numpy.ndarray
        ``(B,)`` cycles/mm: the mean radial frequency of each bin's samples.
    nps_r : numpy.ndarray
        ``(B,)`` HU^2 mm^2: the mean NPS of each bin's samples.
    """
    dfy, dfx = nps.df_per_mm
    width = max(dfx, dfy) if bin_width is None else float(bin_width)
    nyquist = min(np.abs(nps.fx).max(), np.abs(nps.fy).max())
    top = float(nyquist if max_frequency is None else max_frequency)
    if not (np.isfinite(width) and width > 0 and np.isfinite(top) and top > 0):
        raise LowdoseInputError(
            f"radial_nps: bin_width={bin_width!r} and max_frequency={max_frequency!r} must be "
            "finite and > 0 (cycles/mm)"
        )
    rho = np.hypot(nps.fx[None, :], nps.fy[:, None]).ravel()  # (ny * nx,)
    bins = np.rint(rho / width).astype(int)
    keep = (bins >= 1) & (bins * width <= top * (1 + 1e-9))
    counts = np.bincount(bins[keep])
    filled = counts > 0
    f = np.bincount(bins[keep], weights=rho[keep])[filled] / counts[filled]
    nps_r = np.bincount(bins[keep], weights=nps.values.ravel()[keep])[filled] / counts[filled]
    return f, nps_r


@dataclass(frozen=True)
class NpsSummary:
    """Scalar summaries of a radial NPS curve.

    Attributes
    ----------
    peak_frequency : float
        ``f`` at the curve's maximum, cycles/mm (noise texture: low for blotchy, "plastic" noise).
    mean_frequency : float
        ``sum_k f_k NPS_k / sum_k NPS_k`` over the radial bins, cycles/mm: the NPS-weighted mean
        of the 1-D curve (the ``f_av`` of Solomon and Samei, used by TG-233), not of the plane.
    variance : float
        ``sum_k 2 pi f_k NPS_k w`` in HU^2, with ``w`` the median bin spacing: the noise variance
        inside the disc the bins cover, assuming isotropy. It misses the square plane's corners
        (``1 - pi / 4 = 21 %`` of white noise, little of smooth CT noise); the exact total
        variance is :func:`nps_variance` of the 2-D NPS.
    """

    peak_frequency: float
    mean_frequency: float
    variance: float


def nps_summary(f, nps_r) -> NpsSummary:
    """:class:`NpsSummary` of a radial NPS ``(f (B,) cycles/mm, nps_r (B,) HU^2 mm^2)``.

    Examples
    --------
    >>> s = nps_summary(np.array([0.1, 0.2, 0.3]), np.array([1.0, 3.0, 1.0]))
    >>> round(s.peak_frequency, 3), round(s.mean_frequency, 3)
    (0.2, 0.2)
    """
    freq = np.asarray(f, dtype=np.float64)
    power = np.asarray(nps_r, dtype=np.float64)
    if freq.ndim != 1 or freq.shape != power.shape or freq.size < 2:
        raise LowdoseInputError(
            f"nps_summary: f {freq.shape} and nps_r {power.shape} must be 1-D of one length >= 2"
        )
    if not (np.all(np.isfinite(freq)) and np.all(np.isfinite(power))) or power.sum() <= 0:
        raise LowdoseInputError("nps_summary: pass a finite radial NPS with positive total power")
    spacing = float(np.median(np.diff(freq)))
    return NpsSummary(
        peak_frequency=float(freq[np.argmax(power)]),
        mean_frequency=float((freq * power).sum() / power.sum()),
        variance=float((2 * np.pi * freq * power).sum() * spacing),
    )
