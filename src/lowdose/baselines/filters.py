"""Classical denoising filters as pure functions ``denoise_<name>(image, *, **params)``.

Every filter takes a 2-D float32 or float64 image (any value range; the paper's scale is [0, ~1])
and returns a new array of the same shape and dtype; the input is never modified.

Border rule, one for all filters: **reflect-101** (``dcb|abcd|cba``), which is OpenCV's
``BORDER_REFLECT_101``, SciPy's ``mode='mirror'`` and NumPy's ``mode='reflect'``. SciPy's
default ``'reflect'`` (``cba|abcd|dcb``) is *not* used: it moves oracle median PSNR by ~0.2 dB.
BM3D is the one exception: the ``bm3d`` package handles borders itself and offers no choice.

``FILTERS`` maps each name to ``(function, default grid)``; the grids are in data units of the
paper's scale (noise standard deviation ~0.03 at 30 dB, ~0.13 at 18 dB with data_range 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import scipy.ndimage as ndi

from lowdose.core.errors import LowdoseInputError

# OpenCV's float median supports only these apertures (larger ones need uint8, which rounds).
_CV2_FLOAT_MEDIAN_SIZES = (3, 5)
# SciPy's gaussian_filter default: the kernel reaches 4 standard deviations.
_GAUSSIAN_TRUNCATE = 4.0
_MEDIAN_STRIP_BYTES = 64 << 20


def _check_image(image, name: str) -> np.ndarray:
    """Return ``image`` as an ndarray after checking it is a finite 2-D float32/float64 array."""
    array = np.asarray(image)
    if array.ndim != 2 or min(array.shape) < 2:
        raise LowdoseInputError(
            f"{name}: expected a 2-D image of at least 2x2 pixels, got shape {array.shape}; "
            "pass one image (H, W) at a time"
        )
    if array.dtype not in (np.float32, np.float64):
        raise LowdoseInputError(
            f"{name}: image dtype is {array.dtype}; convert it to float32 or float64 first"
        )
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{name}: image contains NaN or Inf; pass a finite image")
    return array


def _check_positive(value, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise LowdoseInputError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def denoise_gaussian(image, *, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels, border reflect-101.

    The kernel is SciPy's (``exp(-x**2 / (2 sigma**2))``, normalised, radius
    ``int(4 sigma + 0.5)``), applied separably with OpenCV (5x faster than SciPy); the result
    equals ``scipy.ndimage.gaussian_filter(image, sigma, mode='mirror')`` to float rounding.

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    array = _check_image(image, "denoise_gaussian")
    sigma = _check_positive(sigma, "gaussian sigma")
    radius = int(_GAUSSIAN_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    if radius >= min(array.shape):
        # A kernel wider than the image needs repeated reflection: leave that to SciPy.
        return ndi.gaussian_filter(array, sigma, mode="mirror", truncate=_GAUSSIAN_TRUNCATE)
    return cv2.sepFilter2D(array, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)


def denoise_median(image, *, size: int) -> np.ndarray:
    """Median over a ``size`` x ``size`` square window, border reflect-101.

    Equals ``scipy.ndimage.median_filter(image, size, mode='mirror')`` exactly. Float32 images
    with size 3 or 5 use OpenCV (100x faster) on a reflect-101 padded copy, because
    ``cv2.medianBlur`` itself replicates the border; other sizes and float64 use an exact
    ``np.partition`` over sliding windows (OpenCV's float median stops at 5, and its uint8 path
    rounds to 1/255 and clips to [0, 1]).

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    size : int
        Odd window side in pixels, >= 1 (1 returns a copy).

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    array = _check_image(image, "denoise_median")
    if int(size) != size or size < 1 or size % 2 == 0:
        raise LowdoseInputError(f"median size must be an odd integer >= 1, got {size!r}")
    size = int(size)
    if size == 1:
        return array.copy()
    radius = size // 2
    if array.dtype == np.float32 and size in _CV2_FLOAT_MEDIAN_SIZES and radius < min(array.shape):
        padded = cv2.copyMakeBorder(array, *(radius,) * 4, cv2.BORDER_REFLECT_101)
        return cv2.medianBlur(padded, size)[radius:-radius, radius:-radius].copy()
    if radius >= min(array.shape):
        # A window wider than the image needs repeated reflection: leave that to SciPy.
        return ndi.median_filter(array, size=size, mode="mirror")
    return _median_by_partition(array, size)


def _median_by_partition(array: np.ndarray, size: int) -> np.ndarray:
    """Exact square-window median, reflect-101: ``np.partition`` over sliding windows.

    3-4x faster than ``scipy.ndimage.median_filter`` for sizes 7-11 and bit-identical to it
    (a median selects one of the window's own values). Rows are done in strips so the
    (rows, W, size**2) window copy stays below ~64 MB.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    radius = size // 2
    padded = np.pad(array, radius, mode="reflect")  # NumPy 'reflect' is reflect-101
    height, width = array.shape
    strip = max(1, _MEDIAN_STRIP_BYTES // (width * size * size * array.itemsize))
    middle = size * size // 2
    out = np.empty_like(array)
    for top in range(0, height, strip):
        rows = min(strip, height - top)
        windows = sliding_window_view(padded[top : top + rows + 2 * radius], (size, size))
        windows = windows.reshape(rows, width, size * size)  # copy: (rows, W, size**2)
        out[top : top + rows] = np.partition(windows, middle, axis=-1)[..., middle]
    return out


def bilateral_diameter(sigma_space: float) -> int:
    """Window diameter ``d = 2 ceil(3 sigma_space) + 1`` in pixels (:func:`denoise_bilateral`)."""
    return 2 * math.ceil(3.0 * sigma_space) + 1


def denoise_bilateral(image, *, sigma_space: float, sigma_color: float) -> np.ndarray:
    """Bilateral filter (OpenCV's definition, disc window of radius ``ceil(3 sigma_space)``).

    ``out(p) = sum_q w(p, q) x(q) / sum_q w(p, q)`` over the disc ``|q - p| <= ceil(3
    sigma_space)``, with ``w = exp(-|q-p|**2 / (2 sigma_space**2)) * exp(-(x(q)-x(p))**2 /
    (2 sigma_color**2))``, border reflect-101; :func:`bilateral_reference` spells it out in
    NumPy. Computed by ``cv2.bilateralFilter`` in float32 (float64 input is converted and the
    result cast back). scikit-image's ``denoise_bilateral`` is deliberately not used: its spatial
    kernel is wrong (0.24-0.26), 5-8 dB below this definition.

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    sigma_space : float
        Spatial standard deviation in pixels, > 0.
    sigma_color : float
        Range standard deviation in data units (the image's own units), > 0.

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    array = _check_image(image, "denoise_bilateral")
    sigma_space = _check_positive(sigma_space, "bilateral sigma_space")
    sigma_color = _check_positive(sigma_color, "bilateral sigma_color")
    source = array.astype(np.float32, copy=False)
    out = cv2.bilateralFilter(
        source,
        bilateral_diameter(sigma_space),
        sigma_color,
        sigma_space,
        borderType=cv2.BORDER_REFLECT_101,
    )
    return out.astype(array.dtype, copy=False)


def bilateral_reference(image, *, sigma_space: float, sigma_color: float) -> np.ndarray:
    """The bilateral definition of :func:`denoise_bilateral` in plain NumPy float64 (slow).

    Kept so that tests and the benchmark can pin :func:`denoise_bilateral` to the equation
    rather than to a library. Same parameters; returns float64 (H, W).
    """
    array = _check_image(image, "bilateral_reference").astype(np.float64)
    radius = math.ceil(3.0 * float(sigma_space))
    padded = np.pad(array, radius, mode="reflect")  # NumPy 'reflect' is reflect-101
    height, width = array.shape
    total = np.zeros_like(array)
    weight_sum = np.zeros_like(array)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue  # disc window, as OpenCV
            shifted = padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
            weight = np.exp(
                -(dy * dy + dx * dx) / (2.0 * sigma_space**2)
                - (shifted - array) ** 2 / (2.0 * sigma_color**2)
            )
            total += weight * shifted
            weight_sum += weight
    return total / weight_sum


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

    array = _check_image(image, "denoise_nlm")
    h = _check_positive(h, "nlm h")
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


def denoise_bm3d(image, *, sigma: float) -> np.ndarray:
    """BM3D (the ``bm3d`` package, optional extra ``lowdose[bm3d]``; non-commercial licence).

    Parameters
    ----------
    image : ndarray (H, W) float32 or float64
    sigma : float
        Assumed white-noise standard deviation in data units, > 0.

    Returns
    -------
    ndarray (H, W), same dtype as ``image``.
    """
    array = _check_image(image, "denoise_bm3d")
    sigma = _check_positive(sigma, "bm3d sigma")
    try:
        import bm3d
    except ImportError:
        raise LowdoseInputError(
            "filter 'bm3d' needs the bm3d package: pip install lowdose[bm3d] "
            "(or leave bm3d out of --filters)"
        ) from None
    out = bm3d.bm3d(array.astype(np.float64), sigma_psd=sigma)
    return np.asarray(out).reshape(array.shape).astype(array.dtype, copy=False)


def _log_grid(first: float, last: float, n: int) -> tuple[float, ...]:
    # Rounded to 4 significant digits so settings read cleanly in tables and JSON.
    return tuple(float(f"{v:.4g}") for v in np.geomspace(first, last, n))


_SIGMA_COLOR_GRID = _log_grid(0.01, 0.32, 6)

#: name -> (filter function, default grid {parameter: values}); values in pixels or data units.
FILTERS: dict[str, tuple[Callable[..., np.ndarray], dict[str, tuple]]] = {
    "gaussian": (denoise_gaussian, {"sigma": _log_grid(0.5, 4.0, 7)}),
    "median": (denoise_median, {"size": (3, 5, 7, 9)}),
    "bilateral": (
        denoise_bilateral,
        {"sigma_space": (1.0, 2.0, 3.0), "sigma_color": _SIGMA_COLOR_GRID},
    ),
    "nlm": (denoise_nlm, {"h": _SIGMA_COLOR_GRID, "patch_size": (5,), "patch_distance": (6,)}),
    "bm3d": (denoise_bm3d, {"sigma": _SIGMA_COLOR_GRID}),
}


def get_filter(name: str) -> tuple[Callable[..., np.ndarray], dict[str, tuple]]:
    """Return ``(function, default grid)`` for a filter name, or raise naming the valid ones."""
    if name not in FILTERS:
        raise LowdoseInputError(
            f"unknown filter {name!r}; choose from {', '.join(FILTERS)} (comma-separated)"
        )
    return FILTERS[name]
