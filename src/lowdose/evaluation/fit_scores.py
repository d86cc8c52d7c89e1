"""Clean-free scores of a denoised image when no clean image (and maybe no second scan) exists.

What ``lowdose fit`` reports for every method (network, blind NLM, blind BM3D) on the user's data:

``flat_sigma``
    Noise standard deviation in the flattest blocks of the input, before (``noisy``) and after
    denoising, on the same blocks. Blocks are ``block_px`` squares on a grid; their flatness is
    the mean gradient magnitude of the input after a Gaussian blur (sigma 2 px, which averages the
    noise away); the flattest :data:`FLAT_FRACTION` of them (at least 4) are kept. Left out:
    blocks with no variance (padding), blocks holding a pixel at a clip floor or ceiling (the
    image's minimum or maximum when it repeats in at least :data:`CLIP_FRACTION` of the pixels:
    clipped air reads far quieter than tissue), and, given a ``region`` (for CT the body,
    :func:`flat_region`), blocks not wholly inside it. In each block a least-squares plane is
    removed (slow shading is not noise) and the standard deviations are pooled as
    ``sqrt(mean variance)``.
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
``pair_psnr_db``
    With a second realisation: ``10 log10(1 / mean((f(y1) - y2)^2))``, the same comparison before
    the noise is subtracted (data_range 1). It ranks methods exactly as ``upsnr_db`` does (the
    subtracted variance is the same for all) and stays defined where uMSE goes negative: for
    halves of one scan from disjoint views, whose difference holds their complementary streaks
    as well as the noise, it is the score that ranks (Noise2Inverse's validation loss).
``edge_width_px``
    Resolution at the image's strongest edges: the 10-90 % rise distance, in pixels, of the
    mean profile across them (:func:`lowdose.image_quality.edge_width.edge_width_px`), the same
    edges for every method; mean over images. With a second realisation the edges are found in
    it, not in the input: edges found in the input's own noise would follow that noise, so the
    noisy input would read sharp and any denoiser, which removes that noise, blurred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import (
    pair_noise_variance_all_pixels,
    psnr_from_mse,
    unbiased_mse,
    upsnr_from_umse,
)
from lowdose.data.scaling import scaled_to_hu
from lowdose.image_quality.edge_width import edge_width_px, strong_edges
from lowdose.physics.single_image_noise import body_mask_hu

FLAT_FRACTION = 0.1
CLIP_FRACTION = 0.001
"""A minimum or maximum value held by this fraction of the pixels (and >= 8) is a clip level."""
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
    pair_psnr_db : float
        Raw PSNR against the second realisation (data_range 1); NaN without one.
    edge_width_px : float
        10-90 % rise across the input's strongest edges, pixels; NaN where none.
    """

    method: str
    flat_sigma: float
    residual_lag1: float
    upsnr_db: float
    pair_psnr_db: float = float("nan")
    edge_width_px: float = float("nan")


def flat_blocks(
    image: np.ndarray, *, block_px: int = 16, region: np.ndarray | None = None
) -> list[tuple[slice, slice]]:
    """The flattest blocks of an (H, W) image (see the module docstring).

    Parameters
    ----------
    image : ndarray (H, W)
    block_px : int
        Side of the blocks on a grid.
    region : ndarray (H, W) bool, optional
        Where blocks may lie (for CT the body: :func:`flat_region`). Blocks wholly inside; when
        fewer than 4 are, those at least half inside; when none is, the whole image.

    Returns
    -------
    list of (row slice, column slice)
        At least 4 blocks, fewer only when the image has fewer eligible blocks.
    """
    from scipy import ndimage  # heavy: keeps `lowdose --help` fast

    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2 or min(array.shape) < block_px:
        raise LowdoseInputError(
            f"image of shape {array.shape} is smaller than one {block_px} block"
        )
    gradient = np.hypot(*np.gradient(ndimage.gaussian_filter(array, 2.0)))
    clipped = _at_clip_level(array)
    blocks, flatness, inside = [], [], []
    for r in range(array.shape[0] // block_px):
        for c in range(array.shape[1] // block_px):
            window = (
                slice(r * block_px, (r + 1) * block_px),
                slice(c * block_px, (c + 1) * block_px),
            )
            if np.ptp(array[window]) == 0 or clipped[window].any():  # no noise to measure
                continue
            blocks.append(window)
            flatness.append(float(np.mean(gradient[window])))
            inside.append(1.0 if region is None else float(np.mean(region[window])))
    inside = np.asarray(inside)
    for least in (1.0, 0.5, 0.0):  # wholly inside, else mostly, else anywhere
        eligible = np.flatnonzero(inside >= least)
        if len(eligible) >= _MIN_BLOCKS or (least == 0.5 and len(eligible)):
            break
    keep = max(_MIN_BLOCKS, int(round(FLAT_FRACTION * len(eligible))))
    order = eligible[np.argsort(np.asarray(flatness)[eligible], kind="stable")[:keep]]
    return [blocks[k] for k in order]


def _at_clip_level(array: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels at the minimum or maximum when that value repeats like a clip."""
    at = np.zeros(array.shape, bool)
    for level in (array.min(), array.max()):
        hits = array == level
        if hits.sum() >= max(8, CLIP_FRACTION * array.size):
            at |= hits
    return at


def flat_region(
    noisy: np.ndarray, *, hu_divisor: np.ndarray | None = None, fov: np.ndarray | None = None
) -> np.ndarray | None:
    """Where :func:`score_method` may measure flat-region noise: (I, H, W) bool, or None.

    For CT in HU (``hu_divisor`` given, ``HU = scaled * hu_divisor - 1024`` per image) the body
    (:func:`lowdose.physics.single_image_noise.body_mask_hu`, > -500 HU after a 2 px blur)
    within the field of view ``fov``: noise in the air around a patient (and clipped air
    above all) is no measure of the noise in tissue. Otherwise ``fov`` as given (None: all).

    Parameters
    ----------
    noisy : ndarray (I, H, W)
        The input images on the dataset scale.
    hu_divisor : ndarray (I,), optional
    fov : ndarray (I, H, W) bool, optional
    """
    if hu_divisor is None:
        return None if fov is None else np.asarray(fov, bool)
    fovs = [None] * len(noisy) if fov is None else list(np.asarray(fov, bool))
    return np.stack(
        [
            body_mask_hu(scaled_to_hu(image, divisor), inside=inside)
            for image, divisor, inside in zip(noisy, np.asarray(hu_divisor), fovs, strict=True)
        ]
    )


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
    region: np.ndarray | None = None,
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
    region : ndarray (I, H, W) bool, optional
        Where flat blocks may lie (:func:`flat_region`: for CT the body in the field of view);
        None: anywhere (still never at a clip floor or ceiling).
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if noisy.shape != estimate.shape or noisy.ndim != 3:
        raise LowdoseInputError(
            f"{method}: noisy {noisy.shape} and estimate {estimate.shape} differ"
        )
    inside = np.ones(noisy.shape, bool) if mask is None else np.asarray(mask, bool)
    regions = [None] * len(noisy) if region is None else list(np.asarray(region, bool))
    sigmas, lags, widths = [], [], []
    # edges are placed in an independent realisation where there is one (see the docstring)
    placing = noisy if second is None else np.asarray(second, dtype=np.float64)
    for image, output, keep, where, edges_in in zip(
        noisy, estimate, inside, regions, placing, strict=True
    ):
        blocks = flat_blocks(image, block_px=block_px, region=where)
        sigmas.append(flat_sigma(output, blocks) ** 2)
        same = np.array_equal(image, output)
        lags.append(np.nan if same else lag1_autocorrelation(image - output, keep))
        widths.append(edge_width_px(output, strong_edges(edges_in, mask=keep)))
    upsnr_db = pair_psnr_db = float("nan")
    if second is not None:
        second = np.asarray(second, dtype=np.float64)
        variance = pair_noise_variance_all_pixels(noisy, second, inside=inside)
        umse = unbiased_mse(second, estimate, noise_variance=variance, inside=inside)
        upsnr_db = float(upsnr_from_umse(float(np.mean(umse)), data_range=1.0))
        pair_mse = float(np.mean(umse + variance))  # both are per image: (I,)
        pair_psnr_db = float(psnr_from_mse(max(pair_mse, 1e-20), data_range=1.0))
    lag = float(np.nanmean(lags)) if not np.all(np.isnan(lags)) else float("nan")
    width = float(np.nanmean(widths)) if not np.all(np.isnan(widths)) else float("nan")
    return MethodScores(method, float(np.sqrt(np.mean(sigmas))), lag, upsnr_db, pair_psnr_db, width)


def preferred_method(
    scores: list[MethodScores], *, max_residual_lag1: float = 0.1, view_split: bool = False
) -> tuple[str, str]:
    """The method ``lowdose fit`` would use, and why (one sentence).

    With pairs, the highest uPSNR (an unbiased MSE estimate). Not with ``view_split`` pairs (the
    interleaved view halves of one scan): their undersampling streaks are anti-correlated (the
    halves average to the full-view FBP), so ``Var(y1 - y2) / 2`` overstates the noise and
    uPSNR favours smoothers. Without valid pairs, a heuristic stated as such:
    the lowest flat-region noise among the methods whose residual stays white
    (``residual_lag1 <= max_residual_lag1``), since removing more noise by also removing
    structure shows up as a structured residual.
    """
    methods = [s for s in scores if s.method != "noisy"]
    if not methods:
        raise LowdoseInputError("no denoising method was scored")
    if not view_split and all(np.isfinite(s.upsnr_db) for s in methods):
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
    if view_split:
        return best.method, why + (
            "; uPSNR of view-split halves is biased by their anti-correlated streaks, so this "
            "is a heuristic, not a measured error"
        )
    return best.method, why + "; no second scan, so this is a heuristic, not a measured error"
