"""The median filter, exact and border reflect-101, with OpenCV and NumPy fast paths.

``denoise_median`` equals ``scipy.ndimage.median_filter(image, size, mode='mirror')`` exactly
(the border rule of :mod:`lowdose.baselines.filters`) and is 3-100x faster: OpenCV for float32
sizes 3 and 5, an ``np.partition`` over sliding windows in row strips otherwise.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.ndimage as ndi
from numpy.lib.stride_tricks import sliding_window_view

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_image

# OpenCV's float median supports only these apertures (larger ones need uint8, which rounds).
_CV2_FLOAT_MEDIAN_SIZES = (3, 5)
# Bytes of the (rows, W, size**2) window copy per row strip of the partition median.
_MEDIAN_STRIP_BYTES = 64 << 20


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
    array = checked_image(image, "denoise_median")
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
