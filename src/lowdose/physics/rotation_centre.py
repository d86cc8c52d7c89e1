"""The rotation axis of a parallel-beam scan: where it is, and moving it where FBP expects it.

Detector coordinates are 0-based pixels; the middle of a detector of ``n_det`` bins is
``(n_det - 1) / 2``. lowdose's FBP (:mod:`lowdose.physics.radon`, scikit-image's geometry) puts
the axis on bin ``n_det // 2`` (:func:`fbp_axis_px`): the middle for an odd ``n_det``, half a
bin right of it for an even one.

:func:`find_centre` uses two measures, and says which gave the answer:

* **A 0/180-degree pair.** At ``theta + 180`` a parallel beam sees the mirror image of the view at
  ``theta`` about the axis, so the flipped view is the first one shifted by ``2 c - (n_det - 1)``.
  The shift is the peak of the cross-correlation of the derivatives of every such pair (edges
  weigh, slow background does not), refined by a parabola through the peak (tomopy's
  ``find_center_pc`` registers the same pair).
* **The sharpest FBP** (:mod:`lowdose.physics.centre_sharpness`): the axis whose reconstruction
  has the lowest histogram entropy, searched coarse to fine. It needs no pair of views.

When the scan has 180-degree pairs both are computed, and the pair's value (full resolution,
sub-pixel) is kept if the sharpest FBP agrees with it within ``AGREE_PX`` (or one fine bin); a
disagreement means the sample moved or the end views differ, and the sharpest FBP wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.centre_sharpness import SEARCH_RANGE, parabola_vertex, sharpest_centre
from lowdose.physics.detector_shift import shift_along_detector

PAIR_TOLERANCE_DEG = 0.05
"""Two views are a 180-degree pair when their angles differ by 180 (mod 360) within this."""
AGREE_PX = 1.0
"""The pair's estimate is kept when the sharpest FBP lies within this many pixels of it."""
_MIN_DET = 8


@dataclass(frozen=True)
class CentreEstimate:
    """A rotation axis found in a sinogram.

    Attributes
    ----------
    centre_px : float
        The axis in detector pixels (0-based; the middle is ``(n_det - 1) / 2``).
    method : str
        ``"0/180 pair"`` or ``"sharpest FBP"``.
    pair_px : float or None
        What the 180-degree pairs said (None: the scan has none).
    sharpness_px : float
        What the sharpest FBP said.
    n_pairs : int
        180-degree view pairs used.
    n_det : int
        Detector bins.
    """

    centre_px: float
    method: str
    pair_px: float | None
    sharpness_px: float
    n_pairs: int
    n_det: int

    def line(self) -> str:
        """One line for people: the estimate, how it was found, and the detector's middle."""
        said = f"{self.n_pairs} 0/180 pair(s) {self.pair_px:.2f}, " if self.n_pairs else ""
        return (
            f"rotation axis {self.centre_px:.2f} px by {self.method} ({said}sharpest FBP "
            f"{self.sharpness_px:.2f}; detector middle {(self.n_det - 1) / 2:.1f})"
        )


def fbp_axis_px(n_det: int) -> int:
    """The detector bin lowdose's FBP puts on the rotation axis: ``n_det // 2``."""
    return int(n_det) // 2


def estimate_centre(sinogram, angles_deg) -> float:
    """The rotation axis of a sinogram, in detector pixels (see :func:`find_centre`).

    Parameters
    ----------
    sinogram : array_like (n_angles, n_det)
        Line integrals (after flat/dark correction), finite.
    angles_deg : array_like (n_angles,)
        View angles in degrees.

    Returns
    -------
    float
        Axis position, 0-based detector pixels; ``(n_det - 1) / 2`` is the detector's middle.
    """
    return find_centre(sinogram, angles_deg).centre_px


def find_centre(sinogram, angles_deg) -> CentreEstimate:
    """The rotation axis of a sinogram and how it was found (rules: module docstring).

    Parameters
    ----------
    sinogram : array_like (n_angles, n_det)
        Line integrals, finite, ``n_det >= 8``.
    angles_deg : array_like (n_angles,)
        View angles in degrees, any range and spacing; 180-degree pairs are used when present.

    Returns
    -------
    CentreEstimate
        The axis (searched within the middle +- a quarter of the detector width) and its story.
    """
    sinogram, angles_deg = _checked(sinogram, angles_deg)
    sharp_px, fine_bin = sharpest_centre(sinogram, angles_deg)
    pair_px, n_pairs = _pair_centre(sinogram, angles_deg)
    n_det = sinogram.shape[1]
    if pair_px is not None and abs(pair_px - sharp_px) <= max(AGREE_PX, fine_bin):
        return CentreEstimate(pair_px, "0/180 pair", pair_px, sharp_px, n_pairs, n_det)
    return CentreEstimate(sharp_px, "sharpest FBP", pair_px, sharp_px, n_pairs, n_det)


def centred_sinogram(sinogram, centre_px: float) -> np.ndarray:
    """Shift a sinogram along the detector so its axis lies where lowdose's FBP expects it.

    The shape is kept: the content moves by ``fbp_axis_px(n_det) - centre_px`` pixels with an
    all-pass Fourier shift (:func:`lowdose.physics.detector_shift.shift_along_detector`: no
    smoothing of the noise); the bins shifted in from outside hold the edge values of their
    side, and as many bins on the other side leave the detector. Those are rays that miss the
    disc seen at every angle around the axis, so the field of view FBP reconstructs loses
    nothing.

    Parameters
    ----------
    sinogram : array_like (..., n_det)
        One sinogram (n_angles, n_det) or a stack (S, n_angles, n_det) sharing one axis.
    centre_px : float
        The axis, 0-based detector pixels, within [0, n_det - 1].

    Returns
    -------
    ndarray, shape of ``sinogram``, float32
        The axis now on bin ``n_det // 2``.
    """
    array = np.asarray(sinogram)
    if array.ndim < 2 or array.shape[-1] < 2 or not np.all(np.isfinite(array)):
        raise LowdoseInputError(
            f"sinogram of shape {array.shape}: pass finite (n_angles, n_det) or (S, n_angles, "
            "n_det)"
        )
    n_det = array.shape[-1]
    if not (np.isfinite(centre_px) and 0 <= centre_px <= n_det - 1):
        raise LowdoseInputError(
            f"rotation centre {centre_px} px lies outside the detector (0..{n_det - 1}); pass "
            "--center in 0-based detector pixels"
        )
    shift = fbp_axis_px(n_det) - float(centre_px)
    return shift_along_detector(array, shift).astype(np.float32)


def _checked(sinogram, angles_deg) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(sinogram, dtype=np.float64)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if array.ndim != 2 or array.shape[1] < _MIN_DET or array.shape[0] < 2:
        raise LowdoseInputError(
            f"sinogram of shape {array.shape}: pass one (n_angles >= 2, n_det >= {_MIN_DET}) "
            "sinogram, e.g. the mean of a few detector rows"
        )
    if angles.size != array.shape[0] or not np.all(np.isfinite(angles)):
        raise LowdoseInputError(
            f"{angles.size} angles for a sinogram of {array.shape[0]} views: pass one finite "
            "angle (degrees) per view"
        )
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError("sinogram contains NaN or Inf: repair or mask those bins first")
    return array, angles


def _pair_centre(sinogram: np.ndarray, angles_deg: np.ndarray) -> tuple[float | None, int]:
    """The axis from every 180-degree pair of views, or (None, 0) when there is none."""
    wrapped = np.mod(angles_deg, 360.0)
    apart = np.abs(np.mod(wrapped[None, :] - wrapped[:, None], 360.0) - 180.0)
    first, second = np.nonzero(np.triu(apart < PAIR_TOLERANCE_DEG, 1))  # second: first + 180
    if first.size == 0:
        return None, 0
    n_det = sinogram.shape[1]
    # derivatives: the edges locate the shift, a slow background (beam, offset) does not
    views = np.diff(sinogram[first], axis=1)
    mirrored = np.diff(sinogram[second][:, ::-1], axis=1)
    views -= views.mean(axis=1, keepdims=True)
    mirrored -= mirrored.mean(axis=1, keepdims=True)
    length = 2 * n_det
    spectrum = np.conj(np.fft.rfft(views, length)) * np.fft.rfft(mirrored, length)
    correlation = np.fft.irfft(spectrum, length).sum(axis=0)  # [lag] = sum view(x) mirr(x+lag)
    # mirrored(x) = view(x + 2c - (n_det - 1)): the peak sits at lag = -(2c - (n_det - 1))
    max_lag = int(np.ceil(2 * SEARCH_RANGE * n_det)) + 1
    lags = np.arange(-max_lag, max_lag + 1)
    window = correlation[lags % length]
    best = int(np.argmax(window))
    lag = lags[best] + parabola_vertex(window, best)
    return (n_det - 1 - lag) / 2, int(first.size)
