"""Clean-free scores of a denoised image when no clean image (and maybe no second scan) exists.

What ``lowdose fit`` reports for every method (network, blind NLM, blind BM3D) on the user's data:

``flat_sigma``
    Noise standard deviation in the flattest blocks of the input, before (``noisy``) and after
    denoising, on the same blocks. Blocks are ``block_px`` squares on a grid; their flatness is
    the mean gradient magnitude of the input after a Gaussian blur (sigma 2 px, which averages the
    noise away); the flattest :data:`FLAT_FRACTION` of them (at least 4) are kept, leaving out
    blocks with no variance (padding, clip floors). In each block a least-squares plane is removed
    (slow shading is not noise) and the standard deviations are pooled as ``sqrt(mean variance)``.
``residual_lag1``
    Whiteness of the method noise ``r = y - f(y)``: the mean of its lag-1 autocorrelation
    coefficients along rows and columns, over all pixels. A denoiser that removes only white
    noise leaves a residual close to white (near 0, slightly negative because the estimate keeps
    some low-frequency noise); one that also removes edges and texture leaves structure in it and
    reads clearly positive. Meaningful for pixel-independent input noise only.
``upsnr_db``
    With a second realisation ``y2`` of the same image: ``10 log10(1 / uMSE)`` with
    ``uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2)/2`` (:func:`lowdose.core.metrics.unbiased_mse`),
    an unbiased estimate of the MSE against the unknown clean image; data_range 1 on the dataset
    scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels, unbiased_mse, upsnr_from_umse

FLAT_FRACTION = 0.1
_MIN_BLOCKS = 4


@dataclass(frozen=True)
class MethodScores:
    """Clean-free scores of one method over a stack of images (means over images).

    Attributes
    ----------
    method : str
    flat_sigma : float
        Pooled noise sd in the flat blocks, in the images' units.
    residual_lag1 : float
        Mean lag-1 autocorrelation of ``y - f(y)`` (-1..1); NaN for the noisy input itself.
    upsnr_db : float
        NaN without a second realisation.
    """

    method: str
    flat_sigma: float
    residual_lag1: float
    upsnr_db: float


def flat_blocks(image: np.ndarray, *, block_px: int = 16) -> list[tuple[slice, slice]]:
    """The flattest blocks of an (H, W) image (see the module docstring).

    Returns
    -------
    list of (row slice, column slice)
        At least 4 blocks, fewer only when the image has fewer non-constant blocks.
    """
    from scipy import ndimage  # heavy: keeps `lowdose --help` fast

    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2 or min(array.shape) < block_px:
        raise LowdoseInputError(
            f"image of shape {array.shape} is smaller than one {block_px} block"
        )
    smooth = ndimage.gaussian_filter(array, 2.0)
    gradient = np.hypot(*np.gradient(smooth))
    rows, cols = array.shape[0] // block_px, array.shape[1] // block_px
    blocks, flatness = [], []
    for r in range(rows):
        for c in range(cols):
            window = (
                slice(r * block_px, (r + 1) * block_px),
                slice(c * block_px, (c + 1) * block_px),
            )
            if np.ptp(array[window]) == 0:  # constant fill carries no noise
                continue
            blocks.append(window)
            flatness.append(float(np.mean(gradient[window])))
    keep = max(_MIN_BLOCKS, int(round(FLAT_FRACTION * len(blocks))))
    order = np.argsort(flatness, kind="stable")[:keep]
    return [blocks[k] for k in order]


def flat_sigma(image: np.ndarray, blocks: list[tuple[slice, slice]]) -> float:
    """Pooled sd of ``image`` in ``blocks`` after removing a least-squares plane from each."""
    array = np.asarray(image, dtype=np.float64)
    variances = []
    for window in blocks:
        values = array[window]
        yy, xx = np.mgrid[: values.shape[0], : values.shape[1]]
        design = np.stack([np.ones(values.size), yy.ravel(), xx.ravel()], axis=1)  # (P, 3)
        coef, *_ = np.linalg.lstsq(design, values.ravel(), rcond=None)
        residual = values.ravel() - design @ coef
        variances.append(residual.var(ddof=3))
    return float(np.sqrt(np.mean(variances))) if variances else float("nan")


def lag1_autocorrelation(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of the lag-1 autocorrelation coefficients along rows and columns of (H, W).

    With ``mask`` ((H, W) bool), only neighbour pairs with both pixels inside count (the field
    of view of a padded CT slice), and the mean is taken inside.
    """
    array = np.asarray(image, dtype=np.float64)
    inside = np.ones(array.shape, bool) if mask is None else np.asarray(mask, bool)
    array = np.where(inside, array - array[inside].mean(), 0.0)
    power = float(np.mean(array[inside] ** 2)) if inside.any() else 0.0
    if power == 0.0:
        return 0.0
    rows_in, cols_in = inside[1:] & inside[:-1], inside[:, 1:] & inside[:, :-1]
    rows = float(np.sum(array[1:] * array[:-1] * rows_in) / max(rows_in.sum(), 1))
    cols = float(np.sum(array[:, 1:] * array[:, :-1] * cols_in) / max(cols_in.sum(), 1))
    return (rows + cols) / 2 / power


def score_method(
    method: str,
    noisy: np.ndarray,
    estimate: np.ndarray,
    *,
    second: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    block_px: int = 16,
) -> MethodScores:
    """Clean-free scores of ``estimate = f(noisy)``.

    Parameters
    ----------
    method : str
    noisy, estimate : ndarray (I, H, W)
        The input images and the method's output, same units (the dataset scale).
    second : ndarray (I, H, W), optional
        A second independent realisation of every image (then ``upsnr_db`` is measured).
    mask : ndarray (I, H, W) bool, optional
        The field of view: residual and uPSNR are measured inside it only, so padding outside a
        CT reconstruction circle (constant, noiseless) neither dilutes nor flatters them.
    block_px : int
        Side of the flat blocks.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if noisy.shape != estimate.shape or noisy.ndim != 3:
        raise LowdoseInputError(
            f"{method}: noisy {noisy.shape} and estimate {estimate.shape} differ"
        )
    inside = np.ones(noisy.shape, bool) if mask is None else np.asarray(mask, bool)
    sigmas, lags = [], []
    for image, output, keep in zip(noisy, estimate, inside, strict=True):
        sigmas.append(flat_sigma(output, flat_blocks(image, block_px=block_px)) ** 2)
        same = np.array_equal(image, output)
        lags.append(np.nan if same else lag1_autocorrelation(image - output, keep))
    upsnr_db = float("nan")
    if second is not None:
        second = np.asarray(second, dtype=np.float64)
        variance = pair_noise_variance_all_pixels(noisy, second, inside=inside)
        umse = unbiased_mse(second, estimate, noise_variance=variance, inside=inside)
        upsnr_db = float(upsnr_from_umse(float(np.mean(umse)), data_range=1.0))
    lag = float(np.nanmean(lags)) if not np.all(np.isnan(lags)) else float("nan")
    return MethodScores(method, float(np.sqrt(np.mean(sigmas))), lag, upsnr_db)


def preferred_method(
    scores: list[MethodScores], *, max_residual_lag1: float = 0.1
) -> tuple[str, str]:
    """The method ``lowdose fit`` would use, and why (one sentence).

    With pairs, the highest uPSNR (an unbiased MSE estimate). Without, a heuristic stated as such:
    the lowest flat-region noise among the methods whose residual stays white
    (``residual_lag1 <= max_residual_lag1``), since removing more noise by also removing
    structure shows up as a structured residual.
    """
    methods = [s for s in scores if s.method != "noisy"]
    if not methods:
        raise LowdoseInputError("no denoising method was scored")
    if all(np.isfinite(s.upsnr_db) for s in methods):
        best = max(methods, key=lambda s: s.upsnr_db)
        return best.method, (
            f"{best.method} has the highest uPSNR ({best.upsnr_db:.2f} dB), an unbiased estimate "
            "from the second realisation"
        )
    white = [
        s for s in methods if np.isfinite(s.residual_lag1) and s.residual_lag1 <= max_residual_lag1
    ]
    pool = white or methods
    best = min(pool, key=lambda s: s.flat_sigma)
    why = (
        f"{best.method} leaves the least noise in flat regions (sd {best.flat_sigma:.4g}) "
        f"with a residual lag-1 correlation of {best.residual_lag1:.2f}"
    )
    if not white:
        why += f" (no method kept its residual white, <= {max_residual_lag1})"
    return best.method, why + "; no second scan, so this is a heuristic, not a measured error"
