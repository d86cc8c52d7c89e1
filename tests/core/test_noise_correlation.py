"""Lag-1 noise correlation: ~0 for pixel-independent noise, clearly above threshold otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from conftest import projection_like
from lowdose.core.errors import LowdoseInputError
from lowdose.core.noise_correlation import (
    CORRELATED_ABOVE,
    NoiseCorrelation,
    measure_noise_correlation,
)
from lowdose.physics.radon import fbp_2d, radon_2d

SIZE = 64


def piecewise_constant(n_images: int, rng: np.random.Generator) -> np.ndarray:
    """(I, 64, 64) images of overlapping discs on a background, values in about [0.5, 3]."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    images = np.full((n_images, SIZE, SIZE), 0.5)
    for image in images:
        for _ in range(6):
            y, x = rng.uniform(0, SIZE, 2)
            radius = rng.uniform(4, SIZE / 4)
            image[(rows - y) ** 2 + (cols - x) ** 2 < radius**2] += rng.uniform(0.2, 1.0)
    return images


def white(shape, rng):
    return rng.normal(0.0, 0.1, shape)


def blurred(shape, rng):
    return ndimage.gaussian_filter(rng.normal(0.0, 0.1, shape), sigma=(0, 1.0, 1.0))


def realisations_of(clean: np.ndarray, noise, n: int, rng) -> np.ndarray:
    """(I, n, H, W) noisy realisations ``clean + noise``."""
    return np.stack([clean + noise(clean.shape, rng) for _ in range(n)], axis=1)


@pytest.mark.parametrize("n_realisations", [1, 2])
def test_white_gaussian_noise_reads_zero(n_realisations):
    rng = np.random.default_rng(0)
    noisy = realisations_of(piecewise_constant(4, rng), white, n_realisations, rng)
    corr = measure_noise_correlation(noisy)
    assert corr.source == ("single-image" if n_realisations == 1 else "pair-difference")
    assert corr.max_abs < 0.05 and not corr.is_correlated
    assert corr.n_pixels > 1000


@pytest.mark.parametrize("n_realisations", [1, 2])
def test_poisson_noise_reads_zero_on_piecewise_and_smooth_images(n_realisations):
    rng = np.random.default_rng(1)
    for clean in (piecewise_constant(4, rng), projection_like(4, SIZE, SIZE, rng=rng)):
        noisy = np.stack([rng.poisson(clean * 200.0) / 200.0 for _ in range(n_realisations)], 1)
        assert measure_noise_correlation(noisy).max_abs < 0.05


@pytest.mark.parametrize("n_realisations", [1, 2])
def test_gaussian_filtered_noise_is_correlated(n_realisations):
    rng = np.random.default_rng(2)
    noisy = realisations_of(piecewise_constant(4, rng), blurred, n_realisations, rng)
    corr = measure_noise_correlation(noisy)
    # sigma = 1 px: lag-1 correlation ~ exp(-1/4) = 0.78 for the continuous kernel
    assert corr.is_correlated
    assert min(corr.lag1_row, corr.lag1_col) > 0.5


@pytest.mark.parametrize("n_realisations", [1, 2])
def test_fbp_reconstructed_noise_is_correlated(n_realisations):
    rng = np.random.default_rng(3)
    mu_per_px = piecewise_constant(2, rng) / SIZE  # line integrals up to ~3
    angles = np.linspace(0.0, 180.0, 96, endpoint=False)
    sinogram = radon_2d(mu_per_px, angles)  # (2, A, n_det)
    photons = 2000.0
    noisy = np.stack(
        [
            fbp_2d(
                -np.log(np.maximum(rng.poisson(photons * np.exp(-sinogram)), 1) / photons),
                angles,
                output_size=SIZE,
            )
            for _ in range(n_realisations)
        ],
        axis=1,
    )
    corr = measure_noise_correlation(noisy)
    assert corr.is_correlated and min(corr.lag1_row, corr.lag1_col) > 2 * CORRELATED_ABOVE


def test_input_is_not_modified_and_a_noise_free_stack_reads_nan():
    rng = np.random.default_rng(4)
    noisy = realisations_of(piecewise_constant(2, rng), white, 2, rng).astype(np.float32)
    before = noisy.copy()
    measure_noise_correlation(noisy, max_images=1)
    assert np.array_equal(noisy, before)
    flat = np.ones((2, 2, 16, 16))
    assert measure_noise_correlation(flat).n_pixels == 0
    assert np.isnan(measure_noise_correlation(flat[:, :1]).lag1_row)


def test_bad_shapes_raise_one_line():
    with pytest.raises(LowdoseInputError, match="shape"):
        measure_noise_correlation(np.zeros((4, 16, 16)))
    with pytest.raises(LowdoseInputError, match="10x10"):
        measure_noise_correlation(np.zeros((1, 1, 9, 16)))


def test_attrs_round_trip_and_absent_keys():
    corr = NoiseCorrelation(0.41, -0.02, "pair-difference", 8192)
    attrs = corr.to_attrs()
    assert set(attrs) == {
        "noise_corr_lag1_row",
        "noise_corr_lag1_col",
        "noise_corr_source",
        "noise_corr_n_pixels",
    }
    as_stored = {key: np.asarray(value)[()] for key, value in attrs.items()}  # numpy scalars
    assert NoiseCorrelation.from_attrs({**as_stored, "views": 90}) == corr
    assert NoiseCorrelation.from_attrs({"views": 90}) is None
    assert corr.max_abs == pytest.approx(0.41) and corr.is_correlated
