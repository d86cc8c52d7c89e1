"""Edge width of a real image with no phantom: the mean edge spread across its strongest edges.

A denoiser that blurs shows it at sharp boundaries (bone and soft tissue, sample and air, grains
in a rock). Real scans have no test object, so the edges are found in the input itself and the
same edges are measured in every method's output:

1. :func:`strong_edges` smooths the input (Gaussian, ``smooth_px``; only to place edges, not to
   measure them), takes the pixels whose gradient magnitude is in its top ``fraction`` and
   keeps at most ``max_edges`` of them, spread over the image, each with its unit normal (the
   gradient's direction: dark to bright);
2. :func:`edge_width_px` samples each image along those normals (``+-half_length_px``, linear
   interpolation at ``step_px``) and averages the profiles: averaging hundreds of profiles
   removes the noise, which a single profile's rise would be lost in, and keeps the blur;
3. the width is the 10-90 % rise distance of that mean edge spread function, between its two
   plateaus (the means of its outer quarters), in pixels, interpolated between samples.

The rise of an ideal step sampled by pixels is about 0.8 px; a Gaussian blur of standard deviation
``s`` px adds about ``2.56 s`` (the 10-90 % span of an error function). The measure compares
methods on the same edges; it is not a system MTF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class EdgeSamples:
    """Where an image's edges are measured: points and their unit normals.

    Attributes
    ----------
    rows, cols : ndarray (N,) float64
        Edge points, pixel coordinates.
    normal_rows, normal_cols : ndarray (N,) float64
        Unit normals (dark to bright in the image the edges were found in).
    """

    rows: np.ndarray
    cols: np.ndarray
    normal_rows: np.ndarray
    normal_cols: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def strong_edges(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    fraction: float = 0.01,
    smooth_px: float = 3.0,
    max_edges: int = 2000,
    margin_px: int = 10,
) -> EdgeSamples:
    """The strongest edges of a 2-D image, for :func:`edge_width_px`.

    Parameters
    ----------
    image : ndarray (H, W)
        The image to find edges in (the noisy input: the edges are then the same for every
        method's output).
    mask : ndarray (H, W) bool, optional
        Where edges may lie (a field of view); edges within ``margin_px`` of its border or of
        the image's border are left out, so no profile leaves it.
    fraction : float
        Share of the candidate pixels, by gradient magnitude, that count as edges (0..1).
    smooth_px : float
        Gaussian sd used only to place the edges and their normals.
    max_edges : int
        At most this many edge points, evenly strided through the candidates.
    margin_px : int
        Distance kept from borders; at least the profiles' half length.
    """
    array = np.asarray(image, dtype=np.float64)
    smooth = ndimage.gaussian_filter(array, smooth_px)
    grad_rows, grad_cols = np.gradient(smooth)
    magnitude = np.hypot(grad_rows, grad_cols)
    keep = np.ones(array.shape, bool) if mask is None else np.asarray(mask, bool)
    keep = ndimage.binary_erosion(keep, iterations=margin_px, border_value=0)
    candidates = magnitude[keep]
    if candidates.size == 0 or not np.any(candidates > 0):
        empty = np.empty(0)
        return EdgeSamples(empty, empty, empty, empty)
    threshold = np.quantile(candidates, 1.0 - fraction)
    rows, cols = np.nonzero(keep & (magnitude >= threshold) & (magnitude > 0))
    stride = max(1, len(rows) // max_edges)
    rows, cols = rows[::stride][:max_edges], cols[::stride][:max_edges]
    norm = magnitude[rows, cols]
    return EdgeSamples(
        rows.astype(np.float64),
        cols.astype(np.float64),
        grad_rows[rows, cols] / norm,
        grad_cols[rows, cols] / norm,
    )


def mean_edge_profile(
    image: np.ndarray, edges: EdgeSamples, *, half_length_px: float = 8.0, step_px: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets_px, profile)``: ``image`` averaged along the edges' normals, both ``(K,)``."""
    offsets = np.arange(-half_length_px, half_length_px + step_px / 2, step_px)
    rows = edges.rows[:, None] + offsets[None, :] * edges.normal_rows[:, None]  # (N, K)
    cols = edges.cols[:, None] + offsets[None, :] * edges.normal_cols[:, None]
    values = ndimage.map_coordinates(
        np.asarray(image, dtype=np.float64), [rows.ravel(), cols.ravel()], order=1, mode="nearest"
    )
    return offsets, values.reshape(rows.shape).mean(axis=0)


def rise_distance_px(offsets: np.ndarray, profile: np.ndarray) -> float:
    """10-90 % rise distance of a rising edge spread function; NaN without a rise.

    The plateaus are the means of the outer quarters of ``profile``; the crossings are the
    10 % crossing before and the 90 % crossing after the steepest sample nearest to it,
    linearly interpolated.
    """
    quarter = max(1, len(profile) // 4)
    low, high = float(np.mean(profile[:quarter])), float(np.mean(profile[-quarter:]))
    if not high > low:
        return float("nan")
    level = (np.asarray(profile, np.float64) - low) / (high - low)
    steepest = int(np.argmax(np.gradient(level)))

    def crossing(target: float, indices: range) -> float:
        for i in indices:  # walk outwards from the steepest sample
            a, b = level[i], level[i + 1]
            if (a - target) * (b - target) <= 0 and a != b:
                return float(offsets[i] + (target - a) / (b - a) * (offsets[i + 1] - offsets[i]))
        return float("nan")

    start = crossing(0.1, range(steepest - 1, -1, -1))
    end = crossing(0.9, range(steepest, len(level) - 1))
    return end - start


def edge_width_px(
    image: np.ndarray, edges: EdgeSamples, *, half_length_px: float = 8.0, step_px: float = 0.25
) -> float:
    """10-90 % rise distance, in pixels, of ``image``'s mean profile across ``edges``.

    Parameters
    ----------
    image : ndarray (H, W)
        Any method's output (or the input), any units: the width is scale-free.
    edges : EdgeSamples
        From :func:`strong_edges` on the input, so every method is measured on the same edges.

    Returns
    -------
    float
        Pixels; NaN when there are no edges or the mean profile does not rise.
    """
    if len(edges) == 0:
        return float("nan")
    offsets, profile = mean_edge_profile(
        image, edges, half_length_px=half_length_px, step_px=step_px
    )
    return rise_distance_px(offsets, profile)
