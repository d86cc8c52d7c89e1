"""Filters: correct definitions (SciPy mirror, the bilateral equation), pure, and they denoise."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import scipy.ndimage as ndi

from lowdose.baselines import median
from lowdose.baselines.bilateral import bilateral_reference, denoise_bilateral
from lowdose.baselines.filters import FILTERS, denoise_bm3d, denoise_gaussian, denoise_nlm
from lowdose.baselines.median import denoise_median
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr

SETTINGS = {
    "gaussian": {"sigma": 1.0},
    "median": {"size": 3},
    "bilateral": {"sigma_space": 1.5, "sigma_color": 0.1},
    "nlm": {"h": 0.05, "patch_size": 5, "patch_distance": 6},
}


def phantom(size: int = 48, *, rng: np.random.Generator) -> np.ndarray:
    """Projection-like test image in [~0.2, 1]: smooth background with sharp-edged ellipses."""
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    integral = 0.4 * np.exp(-(xx**2 + yy**2))
    for _ in range(4):
        cy, cx = rng.uniform(-0.5, 0.5, 2)
        a, b = rng.uniform(0.15, 0.4, 2)
        integral += rng.uniform(0.2, 0.6) * (((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1)
    image = np.exp(-integral)
    return image / image.max()


@pytest.fixture
def noisy_clean():
    rng = np.random.default_rng(3)
    clean = phantom(rng=rng)
    noisy = clean + rng.normal(0, 0.05, clean.shape)  # ~26 dB
    return noisy.astype(np.float32), clean.astype(np.float32)


def _grid_points(grid: dict) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, v, strict=True)) for v in itertools.product(*grid.values())]


@pytest.mark.parametrize("name", ["gaussian", "median", "bilateral", "nlm"])
def test_best_setting_raises_psnr(name, noisy_clean):
    noisy, clean = noisy_clean
    function, grid = FILTERS[name]
    before = psnr(clean, noisy, data_range=1.0)
    best = max(psnr(clean, function(noisy, **p), data_range=1.0) for p in _grid_points(grid))
    assert best > before + 2.0


def test_bm3d_raises_psnr_and_is_pure(noisy_clean):
    noisy, clean = (a[:32, :32] for a in noisy_clean)  # BM3D costs ~1 s even on small images
    before = noisy.copy()
    out = denoise_bm3d(noisy, sigma=0.05)
    np.testing.assert_array_equal(noisy, before)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert psnr(clean, out, data_range=1.0) > psnr(clean, noisy, data_range=1.0) + 2.0


@pytest.mark.parametrize("name", ["gaussian", "median", "bilateral", "nlm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pure_and_dtype_preserved(name, dtype, noisy_clean):
    image = noisy_clean[0][:32, :32].astype(dtype)
    before = image.copy()
    out = FILTERS[name][0](image, **SETTINGS[name])
    np.testing.assert_array_equal(image, before)
    assert out.dtype == dtype and out.shape == image.shape
    assert not np.shares_memory(out, image)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma", [0.5, 1.3, 3.0, 30.0])
def test_gaussian_equals_scipy_mirror(sigma, dtype, noisy_clean):
    image = noisy_clean[0][:40, :37].astype(dtype)
    expected = ndi.gaussian_filter(image.astype(np.float64), sigma, mode="mirror")
    np.testing.assert_allclose(denoise_gaussian(image, sigma=sigma), expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 3, 5, 7, 9, 11])
def test_median_equals_scipy_mirror(size, dtype, noisy_clean):
    image = noisy_clean[0][:40, :37].astype(dtype)
    expected = ndi.median_filter(image, size=size, mode="mirror")
    np.testing.assert_array_equal(denoise_median(image, size=size), expected)


def test_median_in_row_strips_is_unchanged(monkeypatch, noisy_clean):
    image = noisy_clean[0][:40, :37]
    expected = ndi.median_filter(image, size=7, mode="mirror")
    monkeypatch.setattr(median, "_MEDIAN_STRIP_BYTES", 3 * 37 * 49 * 4)  # 3 rows per strip
    np.testing.assert_array_equal(denoise_median(image, size=7), expected)


def _reflect101(index: int, length: int) -> int:
    while not 0 <= index < length:
        index = -index if index < 0 else 2 * (length - 1) - index
    return index


def _bilateral_by_pixel(image: np.ndarray, sigma_space: float, sigma_color: float) -> np.ndarray:
    """The definition, pixel by pixel: disc |q-p| <= ceil(3 sigma_space), reflect-101 border."""
    radius = math.ceil(3 * sigma_space)
    height, width = image.shape
    out = np.zeros((height, width))
    for y, x in itertools.product(range(height), range(width)):
        num = den = 0.0
        for dy, dx in itertools.product(range(-radius, radius + 1), repeat=2):
            if dy * dy + dx * dx > radius * radius:
                continue
            value = float(image[_reflect101(y + dy, height), _reflect101(x + dx, width)])
            weight = math.exp(
                -(dy * dy + dx * dx) / (2 * sigma_space**2)
                - (value - float(image[y, x])) ** 2 / (2 * sigma_color**2)
            )
            num += weight * value
            den += weight
        out[y, x] = num / den
    return out


@pytest.mark.parametrize(("sigma_space", "sigma_color"), [(1.0, 0.1), (1.5, 0.03), (2.0, 0.5)])
def test_bilateral_matches_reference_definition(sigma_space, sigma_color, noisy_clean):
    image = noisy_clean[0][10:19, 5:16]  # 9 x 11: the window reaches past every border
    expected = _bilateral_by_pixel(image, sigma_space, sigma_color)
    fast = denoise_bilateral(image, sigma_space=sigma_space, sigma_color=sigma_color)
    np.testing.assert_allclose(fast, expected, atol=1e-4)
    numpy_reference = bilateral_reference(image, sigma_space=sigma_space, sigma_color=sigma_color)
    np.testing.assert_allclose(numpy_reference, expected, atol=1e-10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: denoise_gaussian(x.astype(np.int32), sigma=1.0), "float32 or float64"),
        (lambda x: denoise_gaussian(x[None], sigma=1.0), "2-D image"),
        (lambda x: denoise_gaussian(x, sigma=0.0), "> 0"),
        (lambda x: denoise_median(x, size=4), "odd integer"),
        (lambda x: denoise_bilateral(x, sigma_space=1.0, sigma_color=-1.0), "sigma_color"),
        (
            lambda x: denoise_nlm(
                np.where(x > 0.5, np.nan, x), h=0.1, patch_size=5, patch_distance=6
            ),
            "NaN",
        ),
    ],
)
def test_bad_input_raises_one_line(call, message, noisy_clean):
    with pytest.raises(LowdoseInputError, match=message) as info:
        call(noisy_clean[0])
    assert "\n" not in str(info.value)


def test_bm3d_missing_names_the_extra(monkeypatch, noisy_clean):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    with pytest.raises(LowdoseInputError, match=r"pip install lowdose\[bm3d\]"):
        denoise_bm3d(noisy_clean[0], sigma=0.05)
