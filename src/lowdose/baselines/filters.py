"""Classical denoising filters as pure functions ``denoise_<name>(image, *, **params)``, by name.

Every filter takes a 2-D float32 or float64 image (any value range; the paper's scale is [0, ~1])
and returns a new array of the same shape and dtype; the input is never modified. The Gaussian,
NLM and BM3D live here; the median (:mod:`lowdose.baselines.median`) and the bilateral
(:mod:`lowdose.baselines.bilateral`) have modules of their own.

Border rule, one for all filters: **reflect-101** (``dcb|abcd|cba``), which is OpenCV's
``BORDER_REFLECT_101``, SciPy's ``mode='mirror'`` and NumPy's ``mode='reflect'``. SciPy's
default ``'reflect'`` (``cba|abcd|dcb``) is *not* used: it moves oracle median PSNR by ~0.2 dB.
BM3D is the one exception: the ``bm3d`` package handles borders itself and offers no choice.

``FILTERS`` maps each name to ``(function, default grid)``; the grids and how they are searched
are in :mod:`lowdose.baselines.plans`. :func:`apply_filter` filters a stack by name.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import scipy.ndimage as ndi

from lowdose.baselines.bilateral import denoise_bilateral
from lowdose.baselines.median import denoise_median
from lowdose.baselines.plans import GRIDS
from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_image, checked_positive

# SciPy's gaussian_filter default: the kernel reaches 4 standard deviations.
_GAUSSIAN_TRUNCATE = 4.0


def denoise_gaussian(image, *, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels, border reflect-101.

    The kernel is SciPy's (``exp(-x**2 / (2 sigma**2))``, normalised, radius
    ``int(4 sigma + 0.5)``), applied separably with OpenCV (5x faster than SciPy); the result
    equals ``scipy.ndimage.gaussian_filter(image, sigma, mode='mirror')`` to float rounding.

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    sigma : float
        Standard deviation in pixels, > 0. Below 0.125 px the kernel has one tap: the result
        is an exact copy (the identity the searches can reach).

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    array = checked_image(image, "denoise_gaussian")
    sigma = checked_positive(sigma, "gaussian sigma")
    radius = int(_GAUSSIAN_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    if radius >= min(array.shape):
        # A kernel wider than the image needs repeated reflection: leave that to SciPy.
        return ndi.gaussian_filter(array, sigma, mode="mirror", truncate=_GAUSSIAN_TRUNCATE)
    return cv2.sepFilter2D(array, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)


def denoise_nlm(
    image, *, h: float, patch_size: int, patch_distance: int, sigma: float | None = None
) -> np.ndarray:
    """Non-local means, scikit-image ``denoise_nl_means`` in fast mode, border reflect-101.

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    h : float
        Cut-off distance in data units (larger = smoother), > 0.
    patch_size : int
        Side of the compared patches in pixels.
    patch_distance : int
        Largest search distance in pixels.
    sigma : float or None
        Known noise standard deviation in data units; scikit-image subtracts ``2 sigma**2`` from
        the patch distances. None means 0.

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    from skimage.restoration import denoise_nl_means

    array = checked_image(image, "denoise_nlm")
    h = checked_positive(h, "nlm h")
    out = denoise_nl_means(
        array,
        patch_size=int(patch_size),
        patch_distance=int(patch_distance),
        h=h,
        fast_mode=True,
        sigma=0.0 if sigma is None else float(sigma),
        preserve_range=True,
    )
    return out.astype(array.dtype, copy=False)


def denoise_bm3d(
    image, *, sigma: float | None = None, psd=None, psd_scale: float = 1.0
) -> np.ndarray:
    """BM3D (the ``bm3d`` package, optional extra ``lowdose[bm3d]``; non-commercial licence).

    White noise (``sigma``) or correlated noise (``psd``, the noise power spectrum: Makinen,
    Azzari and Foi 2020, the ``bm3d`` package's own model for coloured noise). Exactly one of
    ``sigma`` and ``psd`` is given.

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    sigma : float, optional
        Assumed white-noise standard deviation in data units, > 0.
    psd : ndarray (H, W) float, optional
        Noise power spectrum in data units squared, in the convention of
        :mod:`lowdose.physics.noise_spectrum` (``E |FFT2(noise)|^2``, unnormalised FFT, DC at
        ``[0, 0]``; white noise of sd s is ``s**2 H W`` everywhere), same shape as ``image``.
    psd_scale : float
        Multiplier of ``psd`` (the strength a clean-free tuning searches), > 0.

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    array = checked_image(image, "denoise_bm3d")
    if (sigma is None) == (psd is None):
        raise LowdoseInputError("denoise_bm3d: give exactly one of sigma (white) and psd")
    if psd is None:
        noise = checked_positive(sigma, "bm3d sigma")
    else:
        noise = np.asarray(psd, dtype=np.float64) * checked_positive(psd_scale, "bm3d psd_scale")
        if noise.shape != array.shape or not np.all(np.isfinite(noise)) or noise.max() <= 0:
            raise LowdoseInputError(
                f"denoise_bm3d: psd {noise.shape} must be finite, positive somewhere and shaped "
                f"like the image {array.shape}"
            )
        noise = np.maximum(noise, 1e-12 * noise.max())  # the package divides by it
    out = _bm3d_module().bm3d(array.astype(np.float64), sigma_psd=noise)
    return np.asarray(out).reshape(array.shape).astype(array.dtype, copy=False)


def bm3d_installed() -> bool:
    """Whether the optional ``bm3d`` package (``lowdose[bm3d]``) can be imported."""
    try:
        _bm3d_module()
    except LowdoseInputError:
        return False
    return True


def _bm3d_module():
    """The ``bm3d`` package, imported lazily, its engine mended for NumPy 2.

    ``bm4d`` (the engine ``bm3d`` calls for a coloured-noise PSD) still calls ``np.trapz``,
    which NumPy 2 removed (``np.trapezoid`` is the same function): without this the PSD path
    raises AttributeError. Guarded here, the one place the package is imported.
    """
    try:
        import bm3d
    except ImportError:
        raise LowdoseInputError(
            "filter 'bm3d' needs the bm3d package: pip install lowdose[bm3d] "
            "(or leave bm3d out of --filters)"
        ) from None
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # noqa: NPY201 (bm4d <= 4.2.5 calls the old name)
    return bm3d


_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian": denoise_gaussian,
    "median": denoise_median,
    "bilateral": denoise_bilateral,
    "nlm": denoise_nlm,
    "bm3d": denoise_bm3d,
}
#: name -> (filter function, default grid {parameter: values}); values in pixels or data units.
FILTERS: dict[str, tuple[Callable[..., np.ndarray], dict[str, tuple]]] = {
    name: (function, GRIDS[name]) for name, function in _FUNCTIONS.items()
}


def get_filter(name: str) -> tuple[Callable[..., np.ndarray], dict[str, tuple]]:
    """Return ``(function, default grid)`` for a filter name, or raise naming the valid ones."""
    if name not in FILTERS:
        raise LowdoseInputError(
            f"unknown filter {name!r}; choose from {', '.join(FILTERS)} (comma-separated)"
        )
    return FILTERS[name]


def apply_filter(images: np.ndarray, filter_name: str, params, *, threads: int = 1) -> np.ndarray:
    """Filter a stack with one setting for all images or one setting per image.

    Parameters
    ----------
    images : ndarray (B, H, W) float32 or float64
    filter_name : str
        A key of :data:`FILTERS`.
    params : dict or sequence of dict
        One setting (keyword arguments of the filter), or B of them.
    threads : int
        ``> 1`` filters images in a thread pool: OpenCV, SciPy and scikit-image's NLM release
        the GIL, so this uses several cores without copying the stack to other processes (BM3D,
        whose library is not known to be thread-safe, always runs in one thread).

    Returns
    -------
    ndarray (B, H, W), the filters' output dtype.
    """
    function, _ = get_filter(filter_name)
    images = np.asarray(images)
    per_image = [params] * len(images) if isinstance(params, dict) else list(params)
    if len(per_image) != len(images):
        raise LowdoseInputError(
            f"{len(per_image)} parameter sets for {len(images)} images; give one per image"
        )
    pairs = list(zip(images, per_image, strict=True))
    if threads > 1 and len(pairs) > 1 and filter_name != "bm3d":
        with ThreadPoolExecutor(threads) as pool:
            return np.stack(list(pool.map(lambda pair: function(pair[0], **pair[1]), pairs)))
    return np.stack([function(image, **p) for image, p in pairs])
