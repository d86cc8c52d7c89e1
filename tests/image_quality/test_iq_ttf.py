"""Circular-edge TTF against the analytic MTF of a Gaussian blur, exp(-2 pi^2 s^2 f^2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lowdose.core.errors import LowdoseInputError
from lowdose.image_quality.ttf import circular_edge_ttf, first_crossing

PIXEL_MM = 0.5
SIZE = 128
CENTRE = (64.3, 63.6)  # off the pixel grid, as a real insert is
RADIUS_PX = 30.0


def blurred_disc(contrast_hu: float, blur_mm: float, *, supersample: int = 8) -> np.ndarray:
    """(128, 128) HU: a 40 HU background with a disc rendered by its area in each pixel
    (``supersample^2`` sub-pixels), blurred by a Gaussian of sd ``blur_mm``."""
    fine = (np.arange(SIZE * supersample) + 0.5) / supersample - 0.5  # sub-pixel centres, px
    inside = (fine[:, None] - CENTRE[0]) ** 2 + (fine[None, :] - CENTRE[1]) ** 2 <= RADIUS_PX**2
    area = inside.reshape(SIZE, supersample, SIZE, supersample).mean(axis=(1, 3))
    return ndimage.gaussian_filter(40.0 + contrast_hu * area, blur_mm / PIXEL_MM, mode="nearest")


def gaussian_f(level: float, blur_mm: float) -> float:
    """Where exp(-2 pi^2 s^2 f^2) = level, cycles/mm."""
    return float(np.sqrt(np.log(1 / level) / (2 * np.pi**2 * blur_mm**2)))


@pytest.mark.parametrize("contrast_hu", [100.0, -60.0])
def test_f50_and_f10_of_a_gaussian_blur_within_3_percent(contrast_hu):
    blur_mm = 1.0
    ttf = circular_edge_ttf(blurred_disc(contrast_hu, blur_mm), CENTRE, RADIUS_PX, PIXEL_MM)
    assert ttf.f50 == pytest.approx(gaussian_f(0.5, blur_mm), rel=0.03)
    assert ttf.f10 == pytest.approx(gaussian_f(0.1, blur_mm), rel=0.03)
    assert ttf.contrast == pytest.approx(contrast_hu, rel=0.01)
    assert ttf.ttf[0] == 1 and np.all(ttf.ttf >= 0)
    low = ttf.frequencies < gaussian_f(0.1, blur_mm)
    expected = np.exp(-2 * np.pi**2 * blur_mm**2 * ttf.frequencies[low] ** 2)
    assert np.abs(ttf.ttf[low] - expected).max() < 0.03
    # The LSF is positive for dark and bright inserts alike and integrates to about 1.
    assert ttf.lsf.sum() * (ttf.esf_r[1] - ttf.esf_r[0]) == pytest.approx(1.0, abs=0.02)
    assert ttf.esf_r[0] >= 0 and ttf.esf_r[-1] <= 2 * RADIUS_PX * PIXEL_MM


def test_mild_noise_barely_moves_f50():
    image = blurred_disc(100.0, 1.0)
    rng = np.random.default_rng(7)
    f50 = [
        circular_edge_ttf(image + rng.normal(0, 3.0, image.shape), CENTRE, RADIUS_PX, PIXEL_MM).f50
        for _ in range(3)
    ]
    assert np.allclose(f50, gaussian_f(0.5, 1.0), rtol=0.04)


def test_more_blur_gives_a_lower_ttf():
    sharp, soft = (blurred_disc(100.0, s) for s in (0.6, 1.2))
    f50_sharp = circular_edge_ttf(sharp, CENTRE, RADIUS_PX, PIXEL_MM).f50
    f50_soft = circular_edge_ttf(soft, CENTRE, RADIUS_PX, PIXEL_MM).f50
    assert f50_soft < 0.6 * f50_sharp


def test_f50_is_nan_when_the_ttf_never_falls_to_half():
    ttf = circular_edge_ttf(
        blurred_disc(100.0, 1.0), CENTRE, RADIUS_PX, PIXEL_MM, max_frequency=0.1
    )
    assert ttf.frequencies[-1] <= 0.1 + 1e-12 and np.isnan(ttf.f50) and np.isnan(ttf.f10)
    assert np.isnan(first_crossing(np.array([0.0, 1.0]), np.array([1.0, 0.8]), 0.5))


@pytest.mark.parametrize("window", ["tukey", "none"])
def test_other_windows_measure_the_same_blur(window):
    image = blurred_disc(100.0, 1.0)
    ttf = circular_edge_ttf(image, CENTRE, RADIUS_PX, PIXEL_MM, window=window)
    assert ttf.f50 == pytest.approx(gaussian_f(0.5, 1.0), rel=0.03)


def test_the_image_is_not_modified():
    image = blurred_disc(100.0, 1.0).astype(np.float32)
    before = image.copy()
    circular_edge_ttf(image, CENTRE, RADIUS_PX, PIXEL_MM)
    assert np.array_equal(image, before) and image.dtype == np.float32


@pytest.mark.parametrize(
    "call",
    [
        lambda im: circular_edge_ttf(im[None], CENTRE, RADIUS_PX, PIXEL_MM),  # not 2-D
        lambda im: circular_edge_ttf(im, (40.0, 64.0), RADIUS_PX, PIXEL_MM),  # ring outside
        lambda im: circular_edge_ttf(im, CENTRE, 20.0, PIXEL_MM, half_width_px=25.0),
        lambda im: circular_edge_ttf(np.zeros_like(im), CENTRE, RADIUS_PX, PIXEL_MM),  # no edge
        lambda im: circular_edge_ttf(im, CENTRE, RADIUS_PX, PIXEL_MM, window="kaiser"),
        lambda im: circular_edge_ttf(im, CENTRE, RADIUS_PX, 0.0),
    ],
)
def test_bad_input_raises_one_line_errors(call):
    with pytest.raises(LowdoseInputError) as error:
        call(blurred_disc(100.0, 1.0))
    assert "\n" not in str(error.value)
