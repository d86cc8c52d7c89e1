"""CT reconstruction pieces of the dose-based simulation: FBP kernels, view subsets of one scan,
and the exact bias of the mean noisy FBP."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.ct_noise import (
    angles_for,
    line_integrals,
    mean_bias_hu,
    noisy_sinograms,
    reconstruct_hu,
    sinogram_noisy_hu,
    view_subset_hu,
)
from lowdose.physics.radon import FBP_FILTERS, fbp_2d, radon_2d

SIZE = 64


def _disc(size: int = SIZE, radius: float = 20.0) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size] - (size - 1) / 2
    return (rows**2 + cols**2 <= radius**2).astype(np.float64)


def _water_cylinder_hu(size: int = SIZE) -> np.ndarray:
    return np.where(_disc(size, 24.0) > 0, 0.0, -1000.0)[None].astype(np.float32)  # (1, H, W)


def test_shepp_logan_noise_lies_between_ramp_and_hann_on_a_flat_field():
    white = np.random.default_rng(0).standard_normal((8, 90, 91))  # (B, A, D) flat-field noise
    angles = np.arange(90) * 2.0
    variance = {
        name: float(
            fbp_2d(white, angles, output_size=SIZE, filter_name=name)[:, 16:48, 16:48].var()
        )
        for name in FBP_FILTERS
    }
    assert variance["ramp"] > 1.3 * variance["shepp-logan"] > 1.3 * 1.3 * variance["hann"]


@pytest.mark.parametrize("name", FBP_FILTERS)
def test_every_kernel_reconstructs_a_noise_free_disc(name):
    from skimage.transform import iradon

    disc, angles = _disc(), np.arange(180) * 1.0
    sinogram = radon_2d(disc, angles)
    image = fbp_2d(sinogram, angles, output_size=SIZE, filter_name=name)
    inside = _disc(radius=14.0) > 0
    assert image[inside].mean() == pytest.approx(1.0, abs=0.02)
    assert np.abs(image[_disc(radius=31.0) == 0]).max() < 0.1  # outside the disc: ~0
    reference = iradon(sinogram.T, angles, output_size=SIZE, filter_name=name, circle=False)
    difference = (image - reference)[1:-1, 1:-1]  # the corner pixels interpolate differently
    assert np.abs(difference).max() < 5e-3  # scikit-image's definition of each kernel
    with pytest.raises(LowdoseInputError, match="--kernel"):
        fbp_2d(sinogram, angles, output_size=SIZE, filter_name="cosine")


def test_view_subsets_average_to_the_full_fbp_with_k_times_the_noise_variance():
    hu, pixel_mm, angles = _water_cylinder_hu(), [2.0], angles_for(SIZE, 96)
    clean_sino = line_integrals(hu, pixel_mm, angles)
    scans = noisy_sinograms(
        np.repeat(clean_sino, 6, axis=0), 2e3, rngs=[np.random.default_rng(k) for k in range(6)]
    )
    pixels = np.full(6, 2.0)
    full = reconstruct_hu(scans, pixels, angles, size=SIZE)
    for k in (2, 3):
        subsets = view_subset_hu(scans, pixels, angles, k, size=SIZE)
        assert subsets.shape == (6, k, SIZE, SIZE)
        assert np.allclose(subsets.mean(axis=1), full, atol=1e-2)  # FBP is linear
        clean_subsets = view_subset_hu(clean_sino, [2.0], angles, k, size=SIZE)[0]  # (k, H, W)
        inside = _disc(radius=18.0) > 0
        ratio = (subsets - clean_subsets)[..., inside].var() / (
            full - reconstruct_hu(clean_sino, [2.0], angles, size=SIZE)
        )[..., inside].var()
        assert ratio == pytest.approx(k, rel=0.12)
    with pytest.raises(LowdoseInputError, match="view-subsets"):
        view_subset_hu(scans, pixels, angles, 1, size=SIZE)


def test_mean_of_many_noisy_fbps_is_the_noise_free_fbp_plus_the_exact_bias():
    hu, pixel_mm, angles = _water_cylinder_hu(), [4.0], angles_for(SIZE, 60)
    sinogram = line_integrals(hu, pixel_mm, angles)
    i0, n = 20.0, 400  # ~1 photon behind the cylinder's centre: starved
    rngs = [np.random.default_rng(k) for k in range(n)]
    noisy = sinogram_noisy_hu(
        np.repeat(sinogram, n, axis=0), np.full(n, 4.0), angles, i0, rngs=rngs, size=SIZE
    )
    reference = reconstruct_hu(sinogram, pixel_mm, angles, size=SIZE)[0]
    bias = mean_bias_hu(sinogram, pixel_mm, angles, i0, size=SIZE)[0]
    inside = _disc(radius=20.0) > 0
    measured = noisy.mean(axis=0) - reference
    standard_error = noisy.std(axis=0) / np.sqrt(n)
    assert np.sqrt(np.mean(bias[inside] ** 2)) > 10 * standard_error[inside].mean()  # a real bias
    z = (measured - bias)[inside] / standard_error[inside]
    assert abs(z.mean()) < 0.2 and z.std() < 1.2  # the rest is sampling error
