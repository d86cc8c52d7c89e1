"""The bilateral filter (OpenCV's definition) and that definition spelt out in NumPy.

scikit-image's ``denoise_bilateral`` is deliberately not used: its spatial kernel is wrong
(0.24-0.26), 5-8 dB below this definition (DESIGN.md traps). :func:`bilateral_reference` keeps
the equation itself so that tests and ``benchmarks/filter_search.py`` pin
:func:`denoise_bilateral` to it rather than to a library.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from lowdose.core.validation import checked_image, checked_positive


def bilateral_diameter(sigma_space: float) -> int:
    """Window diameter ``d = 2 ceil(3 sigma_space) + 1`` in pixels (:func:`denoise_bilateral`)."""
    return 2 * math.ceil(3.0 * sigma_space) + 1


def denoise_bilateral(image, *, sigma_space: float, sigma_color: float) -> np.ndarray:
    """Bilateral filter (OpenCV's definition, disc window of radius ``ceil(3 sigma_space)``).

    ``out(p) = sum_q w(p, q) x(q) / sum_q w(p, q)`` over the disc ``|q - p| <= ceil(3
    sigma_space)``, with ``w = exp(-|q-p|**2 / (2 sigma_space**2)) * exp(-(x(q)-x(p))**2 /
    (2 sigma_color**2))``, border reflect-101; :func:`bilateral_reference` spells it out in
    NumPy. Computed by ``cv2.bilateralFilter`` in float32 (float64 input is converted and the
    result cast back).

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
    array = checked_image(image, "denoise_bilateral")
    sigma_space = checked_positive(sigma_space, "bilateral sigma_space")
    sigma_color = checked_positive(sigma_color, "bilateral sigma_color")
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

    Same parameters; returns float64 (H, W).
    """
    array = checked_image(image, "bilateral_reference").astype(np.float64)
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
