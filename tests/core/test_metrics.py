"""PSNR and SSIM: agreement with scikit-image, batching, required data_range, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import (
    pair_noise_variance_all_pixels,
    psnr,
    ssim,
    ssim_wang,
    unbiased_mse,
)


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 1, (5, 40, 48)).astype(np.float32)
    estimate = (reference + rng.normal(0, 0.1, reference.shape)).astype(np.float32)
    return reference, estimate


def test_psnr_agrees_with_skimage_to_1e_6_db_and_batches(stack):
    reference, estimate = stack
    batched = psnr(reference, estimate, data_range=1.0)
    assert batched.shape == (5,) and batched.dtype == np.float64
    for b in range(5):
        expected = peak_signal_noise_ratio(reference[b], estimate[b], data_range=1.0)
        single = psnr(reference[b], estimate[b], data_range=1.0)
        assert isinstance(single, float)
        assert abs(single - expected) < 1e-6
        assert single == batched[b]


def test_ssim_agrees_with_skimage_default_window_and_batches(stack):
    reference, estimate = stack
    batched = ssim(reference, estimate, data_range=1.0)
    assert batched.shape == (5,)
    for b in range(5):
        expected = structural_similarity(
            reference[b].astype(np.float64), estimate[b].astype(np.float64), data_range=1.0
        )
        assert abs(ssim(reference[b], estimate[b], data_range=1.0) - expected) < 1e-12
        assert batched[b] == pytest.approx(expected, abs=1e-12)
    # the Gaussian-weighted variant is a different number: we are not silently using it
    gaussian = structural_similarity(
        reference[0], estimate[0], data_range=1.0, gaussian_weights=True
    )
    assert abs(batched[0] - gaussian) > 1e-4


def test_ssim_wang_is_the_gaussian_population_variant_per_image(stack):
    reference, estimate = stack
    values = ssim_wang(reference, estimate, data_range=2.0)
    assert values.shape == (5,) and values.dtype == np.float64
    for b in range(5):
        expected = structural_similarity(
            reference[b].astype(np.float64),
            estimate[b].astype(np.float64),
            data_range=2.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ssim_wang(reference[b], estimate[b], data_range=2.0) == pytest.approx(expected)
    assert abs(values[0] - ssim(reference[0], estimate[0], data_range=2.0)) > 1e-4
    with pytest.raises(LowdoseInputError, match="11x11"):
        ssim_wang(np.zeros((10, 16)), np.zeros((10, 16)), data_range=1.0)
    with pytest.raises(TypeError):
        ssim_wang(reference, estimate, 1.0)  # data_range keyword only
    with pytest.raises(LowdoseInputError, match="data_range is required"):
        ssim_wang(reference, estimate, data_range=None)


def test_per_image_data_range_and_identical_images():
    reference = np.random.default_rng(1).uniform(0, 1, (2, 8, 8))
    estimate = reference + 0.01
    values = psnr(reference, estimate, data_range=np.array([1.0, 10.0]))
    assert values[1] - values[0] == pytest.approx(20.0)
    assert psnr(reference[0], reference[0], data_range=1.0) == np.inf
    assert ssim(reference[0], reference[0], data_range=1.0) == pytest.approx(1.0)


def test_non_finite_estimate_gives_nan_not_an_error():
    reference = np.zeros((8, 8))
    estimate = reference.copy()
    estimate[0, 0] = np.nan
    assert np.isnan(psnr(reference, estimate, data_range=1.0))


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize(
    ("reference", "estimate", "data_range", "message"),
    [
        (np.zeros((8, 8)), np.zeros((8, 9)), 1.0, "shape"),
        (np.zeros(8), np.zeros(8), 1.0, "expected"),
        (np.zeros((8, 8)), np.zeros((8, 8)), None, "data_range is required"),
        (np.zeros((8, 8)), np.zeros((8, 8)), 0.0, "> 0"),
        (np.zeros((8, 8)), np.zeros((8, 8)), -1.0, "> 0"),
        (np.zeros((8, 8)), np.zeros((8, 8)), np.inf, "finite"),
        (np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), [1.0, 1.0, 1.0], "one value per image"),
        (np.full((8, 8), np.nan), np.zeros((8, 8)), 1.0, "reference contains NaN"),
    ],
)
def test_bad_input_raises_a_clear_error(metric, reference, estimate, data_range, message):
    with pytest.raises(LowdoseInputError, match=message):
        metric(reference, estimate, data_range=data_range)


def test_data_range_is_keyword_only_and_required():
    with pytest.raises(TypeError):
        psnr(np.zeros((8, 8)), np.zeros((8, 8)))  # never guessed from the dtype
    with pytest.raises(TypeError):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)), 1.0)
    with pytest.raises(LowdoseInputError, match="7x7"):
        ssim(np.zeros((6, 8)), np.zeros((6, 8)), data_range=1.0)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 4),
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    data_range=st.floats(0.01, 1e4),
    seed=st.integers(0, 2**32 - 1),
)
def test_psnr_matches_skimage_on_random_stacks(batch, height, width, data_range, seed):
    rng = np.random.default_rng(seed)
    reference = rng.uniform(0, data_range, (batch, height, width))
    estimate = reference + rng.normal(0, data_range / 20, reference.shape)
    values = psnr(reference, estimate, data_range=data_range)
    for b in range(batch):
        expected = peak_signal_noise_ratio(reference[b], estimate[b], data_range=data_range)
        assert abs(values[b] - expected) < 1e-6


def test_docstring_examples_hold():
    import doctest

    import lowdose.core.metrics

    assert doctest.testmod(lowdose.core.metrics).failed == 0


def test_pair_variance_and_umse_inside_a_mask_equal_those_of_the_pixels_inside():
    rng = np.random.default_rng(11)
    y1, y2, estimate = (rng.normal(size=(2, 16, 16)) for _ in range(3))
    inside = np.zeros((2, 16, 16), bool)
    inside[:, 4:12, 2:14] = True
    crop = (slice(None), slice(4, 12), slice(2, 14))
    variance = pair_noise_variance_all_pixels(y1, y2, inside=inside)
    assert np.allclose(variance, pair_noise_variance_all_pixels(y1[crop], y2[crop]))
    masked = unbiased_mse(y2, estimate, noise_variance=variance, inside=inside)
    assert np.allclose(masked, unbiased_mse(y2[crop], estimate[crop], noise_variance=variance))
    assert not np.allclose(pair_noise_variance_all_pixels(y1, y2), variance)
