"""Is the noise of a dataset pixel-independent? The lag-1 correlation of its noise.

Single-acquisition training (Neighbor2Neighbor, Noise2Void) predicts a pixel from its neighbours
and assumes their noise is independent of the pixel's own; spatially correlated noise (FBP
reconstructions, detector blur, demosaicing, resampling) is then learnt as signal and kept.
:func:`measure_noise_correlation` estimates the correlation coefficient of the noise at vertical
(``dy = 1``) and horizontal (``dx = 1``) neighbours:

* **pair difference** (N >= 2 realisations): ``d = y_0 - y_1`` is pure noise (the object cancels),
  and the difference of two independent noise fields with one covariance has that covariance
  (twice over), hence the same correlation coefficient. Signal-dependent noise (Poisson) only
  weights the average.
* **single image** (N = 1): the horizontal second difference
  ``z = y[:, x-1] - 2 y[:, x] + y[:, x+1]`` removes smooth signal (gradients cancel; curvature
  of an object smoothed over a few pixels is small next to the noise), and the vertical lag-1
  correlation of ``z`` is read (the horizontal one from the vertical second difference). For
  white noise the rows of ``z`` are independent, so it reads 0; for a separable noise covariance
  ``C(dy, dx) = C_y(dy) C_x(dx)`` (e.g. a Gaussian blur) it equals the noise's own lag-1
  correlation exactly, whatever the second difference does along x. Edges would read as
  correlation: only flat 8x8 blocks of ``z`` count, those whose mean ``z^2`` is at most
  1.2 x the 30th percentile of the blocks' (blocks without any variation, e.g. padding, are
  dropped). Flipping the sign of one row of ``z`` keeps a block's energy and negates its
  products, so for white noise the selection biases nothing.

Threshold (:data:`CORRELATED_ABOVE` = 0.1), from measurements (tests/core/
test_noise_correlation.py, four 64x64 images): white Gaussian and Poisson noise read |rho| < 0.04
from pairs and from single images (piecewise-constant discs, smooth projections, Gaussian-filtered
texture; standard error ~0.015); white noise blurred by a Gaussian of sigma 1 px reads 0.75-0.8,
of sigma 0.5 px 0.22-0.27; FBP noise (sinogram Poisson noise) 0.55-0.65 with the Hann filter,
0.25-0.35 with the ramp. 0.1 is several standard errors above what white noise gives and below
every correlated case above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowdose.core.errors import LowdoseInputError

CORRELATED_ABOVE: float = 0.1
"""|lag-1 correlation| above which noise counts as spatially correlated (see the module doc)."""

BLOCK_PX = 8
_FLAT_QUANTILE = 30.0  # percentile of block variances that are surely noise only
_FLAT_FACTOR = 1.2  # a little above it, so most flat blocks count and few edges do
_ATTR_KEYS = (
    "noise_corr_lag1_row",
    "noise_corr_lag1_col",
    "noise_corr_source",
    "noise_corr_n_pixels",
)


@dataclass(frozen=True)
class NoiseCorrelation:
    """Lag-1 correlation coefficients of a dataset's noise.

    Attributes
    ----------
    lag1_row : float
        Correlation of the noise at vertical neighbours (``dy = 1``), in [-1, 1].
    lag1_col : float
        Correlation at horizontal neighbours (``dx = 1``), in [-1, 1].
    source : str
        ``"pair-difference"`` (from two realisations) or ``"single-image"``.
    n_pixels : int
        Pixels the estimate used.

    Examples
    --------
    >>> c = NoiseCorrelation(0.02, -0.3, "single-image", 4096)
    >>> c.max_abs, c.is_correlated, NoiseCorrelation.from_attrs(c.to_attrs()) == c
    (0.3, True, True)
    """

    lag1_row: float
    lag1_col: float
    source: str
    n_pixels: int

    @property
    def max_abs(self) -> float:
        """The larger |correlation| of the two directions."""
        return max(abs(self.lag1_row), abs(self.lag1_col))

    @property
    def is_correlated(self) -> bool:
        """True when :attr:`max_abs` exceeds :data:`CORRELATED_ABOVE`."""
        return self.max_abs > CORRELATED_ABOVE

    def to_attrs(self) -> dict[str, float | str | int]:
        """The four dataset attributes (``noise_corr_*``) that record this estimate."""
        values = (float(self.lag1_row), float(self.lag1_col), str(self.source), int(self.n_pixels))
        return dict(zip(_ATTR_KEYS, values, strict=True))

    @classmethod
    def from_attrs(cls, extra: Mapping[str, Any]) -> NoiseCorrelation | None:
        """Read the estimate back from dataset attributes; None when any key is absent."""
        if not all(key in extra for key in _ATTR_KEYS):
            return None
        row, col, source, n_pixels = (extra[key] for key in _ATTR_KEYS)
        if isinstance(source, bytes):
            source = source.decode()
        return cls(float(row), float(col), str(source), int(n_pixels))


def measure_noise_correlation(noisy: np.ndarray, *, max_images: int = 16) -> NoiseCorrelation:
    """Estimate the lag-1 correlation of the noise of a dataset's noisy images.

    Parameters
    ----------
    noisy : numpy.ndarray
        (I, N, H, W) real array, any scale (an h5py dataset works too; only the images used are
        read). N >= 2: from the difference of realisations 0 and 1; N == 1: from flat regions of
        single images (see the module docstring). Not modified.
    max_images : int
        At most this many images, spread evenly over the I, are used.

    Returns
    -------
    NoiseCorrelation
        ~0 for pixel-independent noise; NaN coefficients (and ``n_pixels`` 0) when no pixel varies.

    Raises
    ------
    LowdoseInputError
        If ``noisy`` is not 4-D, is empty, or its images are smaller than 10x10 (single image).
    """
    shape = tuple(noisy.shape)
    if len(shape) != 4 or min(shape) < 1 or min(shape[2:]) < 2:
        raise LowdoseInputError(
            f"noisy has shape {shape}: pass (images, realisations, H >= 2, W >= 2) noisy images"
        )
    if max_images < 1:
        raise LowdoseInputError(f"max_images={max_images}: pass at least 1")
    indices = np.unique(np.linspace(0, shape[0] - 1, min(max_images, shape[0])).round().astype(int))
    if shape[1] >= 2:
        diffs = [
            np.asarray(noisy[i, 0], np.float64) - np.asarray(noisy[i, 1], np.float64)
            for i in indices
        ]
        return _pair_difference(diffs)
    if min(shape[2:]) < BLOCK_PX + 2:  # one block of second differences each way
        raise LowdoseInputError(
            f"noisy images are {shape[2]}x{shape[3]}: single-image noise correlation needs at "
            f"least {BLOCK_PX + 2}x{BLOCK_PX + 2} pixels (or two realisations per image)"
        )
    return _single_image([np.asarray(noisy[i, 0], np.float64) for i in indices])


def _pair_difference(diffs: list[np.ndarray]) -> NoiseCorrelation:
    sums = np.zeros(3)  # sum d_y d_{y+1}, sum d_x d_{x+1}, sum d^2 (per pair of neighbours)
    n_pixels = 0
    for diff in diffs:
        d = diff - diff.mean()
        power = float(np.mean(d * d))
        if power == 0.0:
            continue  # identical realisations (noise-free image): no noise to measure
        sums += (np.mean(d[1:] * d[:-1]), np.mean(d[:, 1:] * d[:, :-1]), power)
        n_pixels += d.size
    if n_pixels == 0:
        return NoiseCorrelation(math.nan, math.nan, "pair-difference", 0)
    return NoiseCorrelation(
        float(sums[0] / sums[2]), float(sums[1] / sums[2]), "pair-difference", n_pixels
    )


def _single_image(images: list[np.ndarray]) -> NoiseCorrelation:
    row, n_row = _lag1_across_second_difference(images)
    col, n_col = _lag1_across_second_difference([image.T for image in images])
    if n_row == 0 or n_col == 0:
        return NoiseCorrelation(math.nan, math.nan, "single-image", 0)
    return NoiseCorrelation(row, col, "single-image", min(n_row, n_col))


def _lag1_across_second_difference(images: list[np.ndarray]) -> tuple[float, int]:
    """Vertical lag-1 correlation of the images' horizontal second differences, flat blocks only.

    Returns the correlation and the number of second-difference values it used (0: none varied).
    """
    b = BLOCK_PX
    chosen = []
    for image in images:
        z = image[:, :-2] - 2.0 * image[:, 1:-1] + image[:, 2:]  # (H, W - 2)
        height, width = (z.shape[0] // b) * b, (z.shape[1] // b) * b
        blocks = z[:height, :width].reshape(height // b, b, width // b, b).swapaxes(1, 2)
        blocks = blocks.reshape(-1, b, b)  # (K, b, b)
        energy = np.mean(blocks**2, axis=(1, 2))
        # exactly linear blocks (padding, clipped floors) leave nothing or rounding behind
        floor = (1e-6 * float(np.mean(np.abs(image)))) ** 2
        chosen.append((blocks[energy > floor], energy[energy > floor]))
    blocks = np.concatenate([c[0] for c in chosen])
    energy = np.concatenate([c[1] for c in chosen])
    if energy.size == 0:
        return math.nan, 0
    flat = blocks[energy <= _FLAT_FACTOR * np.percentile(energy, _FLAT_QUANTILE)]
    upper, lower = flat[:, :-1], flat[:, 1:]
    denominator = math.sqrt(float(np.sum(upper * upper)) * float(np.sum(lower * lower)))
    return float(np.sum(upper * lower)) / denominator, int(flat.size)
