"""The noise power spectrum of one image: level and shape for white and correlated noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.physics.noise_spectrum import pair_noise_psd, psd_noise_variance
from lowdose.physics.radon import FBP_FILTERS, fbp_2d, radon_2d
from lowdose.physics.single_image_noise import (
    body_mask_hu,
    ct_noise_psd,
    ct_noise_sd_hu,
    single_image_noise_psd,
    single_image_noise_sd,
)

SIZE = 128


def piecewise_smooth(rng: np.random.Generator) -> np.ndarray:
    """(128, 128) HU-like object: a ramp, discs of +-50..400 HU steps and a 1000 HU 'bone' bar."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    image = 40.0 + 0.3 * rows - 0.2 * cols
    for _ in range(8):
        y, x = rng.uniform(0, SIZE, 2)
        radius = rng.uniform(5, SIZE / 5)
        image[(rows - y) ** 2 + (cols - x) ** 2 < radius**2] += rng.choice([-1, 1]) * rng.uniform(
            50, 400
        )
    image[60:66, 20:110] = 1000.0
    return image


def correlated_noise(rng: np.random.Generator, sigma_px: float = 0.7) -> np.ndarray:
    """White noise blurred by a Gaussian of ``sigma_px``: lag-1 correlation ~0.57 at 0.7 px, as
    FBP noise with a Hann kernel (~0.6); its spectrum falls from DC (FBP's rises from ~0)."""
    return ndimage.gaussian_filter(rng.normal(0.0, 20.0, (SIZE, SIZE)), sigma_px, mode="wrap")


def radial_profile(psd: np.ndarray, n_bins: int = 16) -> np.ndarray:
    """Mean of an (H, W) spectrum over rings of radial frequency 0..0.5, normalised to sum 1."""
    fy, fx = np.meshgrid(np.fft.fftfreq(psd.shape[0]), np.fft.fftfreq(psd.shape[1]), indexing="ij")
    ring = np.minimum((np.hypot(fy, fx) / 0.5 * n_bins).astype(int), n_bins - 1)
    profile = np.bincount(ring.ravel(), psd.ravel()) / np.bincount(ring.ravel())
    return profile / profile.sum()


def shape_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative L2 distance of the normalised radial profiles."""
    a, b = radial_profile(estimate), radial_profile(truth)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_white_noise_gives_a_flat_spectrum_at_its_level():
    rng = np.random.default_rng(0)
    sd = 3.0
    psd = single_image_noise_psd(rng.normal(0.0, sd, (SIZE, SIZE)))
    assert psd.shape == (SIZE, SIZE) and psd.dtype == np.float64
    # the level is corrected for what the detrend takes from a flat spectrum
    assert abs(psd_noise_variance(psd) / sd**2 - 1) < 0.05
    # from 1/4 cycle/pixel up the spectrum is untouched by the detrend: flat at sd^2 H W; below,
    # the constant and the lowest ring of the 8 px patches are missing (documented)
    profile = radial_profile(psd)[8:] * radial_profile(psd).size
    fy, fx = np.meshgrid(np.fft.fftfreq(SIZE), np.fft.fftfreq(SIZE), indexing="ij")
    high = psd[np.hypot(fy, fx) >= 0.25] / (sd**2 * SIZE * SIZE)
    assert abs(np.median(high) - 1) < 0.1 and profile.max() / profile.min() < 1.1


@pytest.fixture(scope="module")
def fbp_noise() -> dict[str, np.ndarray]:
    """Per kernel, two independent (128, 128) FBP noise images (white sinogram noise), sd 20."""
    rng = np.random.default_rng(11)
    angles = np.arange(181) * (180.0 / 181)  # an odd count: no mirror pairs
    n_det = radon_2d(np.zeros((SIZE, SIZE), np.float32), angles).shape[-1]
    noise = {}
    for kernel in FBP_FILTERS:
        images = fbp_2d(
            rng.normal(0.0, 1.0, (2, len(angles), n_det)),
            angles,
            output_size=SIZE,
            filter_name=kernel,
        ).astype(np.float64)
        noise[kernel] = images * (20.0 / images.std())
    return noise


@pytest.mark.parametrize("kernel", FBP_FILTERS)
def test_fbp_noise_on_an_object_level_and_shape(fbp_noise, kernel):
    rng = np.random.default_rng(12)
    noise = fbp_noise[kernel][0]
    image = piecewise_smooth(rng) + noise
    true_sd = float(noise.std())
    assert abs(single_image_noise_sd(image) / true_sd - 1) < 0.2
    truth = np.abs(np.fft.fft2(noise - noise.mean())) ** 2
    error = shape_error(single_image_noise_psd(image), truth)
    # a white spectrum at the same level is far from this shape: the test tells shapes apart
    assert error < 0.4 and error < 0.6 * shape_error(np.full_like(truth, truth.mean()), truth)


def test_hann_fbp_noise_reads_far_low_with_the_white_noise_estimator(fbp_noise):
    rng = np.random.default_rng(13)
    noise = fbp_noise["hann"][0]
    image = piecewise_smooth(rng) + noise
    assert single_image_noise_sigma(image) < 0.5 * noise.std()  # the reason this module exists
    assert single_image_noise_sd(image) > 0.8 * noise.std()


@pytest.mark.parametrize("seed", [1, 2])
def test_gaussian_filtered_noise_needs_patches_wider_than_its_correlation(seed):
    rng = np.random.default_rng(seed)
    noise = correlated_noise(rng)
    image = piecewise_smooth(rng) + noise
    true_sd = float(noise.std())
    # its power peaks at DC: 8 px patches lose what lies below 1/8 cycle/pixel (documented)
    assert 0.8 < single_image_noise_sd(image) / true_sd < 1.0
    assert abs(single_image_noise_sd(image, patch_px=16) / true_sd - 1) < 0.1


def test_sd_and_psd_agree():
    rng = np.random.default_rng(3)
    image = piecewise_smooth(rng) + correlated_noise(rng)
    psd = single_image_noise_psd(image)
    assert np.isclose(np.sqrt(psd_noise_variance(psd)), single_image_noise_sd(image))


@pytest.mark.parametrize("kernel", FBP_FILTERS)
def test_convention_matches_the_pair_spectrum(fbp_noise, kernel):
    first, second = fbp_noise[kernel]
    pair = pair_noise_psd(first, second)
    single = single_image_noise_psd(first)
    assert abs(np.sqrt(psd_noise_variance(single) / psd_noise_variance(pair)) - 1) < 0.2
    assert shape_error(single, pair) < 0.4


def test_only_pixels_inside_are_read():
    rng = np.random.default_rng(5)
    image = rng.normal(0.0, 2.0, (SIZE, SIZE))
    image[:, SIZE // 2 :] *= 10.0  # a noisier half
    quiet = np.zeros((SIZE, SIZE), bool)
    quiet[:, : SIZE // 2] = True
    assert abs(single_image_noise_sd(image, inside=quiet) / 2.0 - 1) < 0.1
    assert abs(single_image_noise_sd(image, inside=~quiet) / 20.0 - 1) < 0.1


def test_constant_padding_is_skipped():
    rng = np.random.default_rng(6)
    image = rng.normal(0.0, 5.0, (SIZE, SIZE))
    image[:, :40] = -2048.0  # padding outside the field of view
    image[:20, :] = -1024.0  # a clip floor
    assert abs(single_image_noise_sd(image) / 5.0 - 1) < 0.1


def test_the_input_is_not_modified():
    rng = np.random.default_rng(7)
    image = (piecewise_smooth(rng) + correlated_noise(rng)).astype(np.float32)
    inside = np.ones(image.shape, bool)
    before, mask_before = image.copy(), inside.copy()
    single_image_noise_psd(image, inside=inside)
    single_image_noise_sd(image, inside=inside)
    body_mask_hu(image, inside=inside)
    assert np.array_equal(image, before) and np.array_equal(inside, mask_before)


def test_body_mask_is_the_tissue_not_the_air():
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    hu = np.where((rows - 64) ** 2 + (cols - 64) ** 2 < 40**2, 40.0, -1000.0)
    body = body_mask_hu(hu)
    assert body[64, 64] and not body[5, 5]
    assert abs(body.sum() / (np.pi * 40**2) - 1) < 0.05
    assert not body_mask_hu(hu, inside=np.zeros_like(body)).any()


def test_ct_noise_is_read_in_the_body_else_the_field_of_view_else_nan():
    rng = np.random.default_rng(8)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    body = (rows - 64) ** 2 + (cols - 64) ** 2 < 50**2
    sd_hu = np.where(body, 20.0, 5.0)  # FBP noise is lower in the air around the body
    hu = np.where(body, 40.0, -1000.0) + sd_hu * rng.normal(0.0, 1.0, body.shape)
    assert abs(ct_noise_sd_hu(hu) / 20.0 - 1) < 0.1  # the body's noise, not the air's
    air = -1000.0 + rng.normal(0.0, 5.0, (SIZE, SIZE))  # no body: the whole field of view
    assert abs(ct_noise_sd_hu(air) / 5.0 - 1) < 0.1
    assert np.isnan(ct_noise_sd_hu(np.zeros((16, 16))))  # no patch carries noise


def test_ct_spectrum_is_the_body_noise_on_the_images_own_scale():
    rng = np.random.default_rng(9)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    body = (rows - 64) ** 2 + (cols - 64) ** 2 < 50**2
    hu = np.where(body, 40.0, -1000.0) + np.where(body, 20.0, 5.0) * rng.normal(size=body.shape)
    scaled = (hu + 1024.0) / 4000.0  # a dataset's scale: the spectrum comes back on it
    sd = np.sqrt(psd_noise_variance(ct_noise_psd(scaled, hu)))
    assert abs(sd * 4000.0 / 20.0 - 1) < 0.1, sd * 4000.0


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((2, 32, 32)), {}, "2-D"),
        (np.full((32, 32), np.nan), {}, "finite"),
        (np.zeros((32, 32)), {"inside": np.ones((16, 16), bool)}, "shape"),
        (np.zeros((32, 32)), {"patch_px": 2}, "patch_px"),
        (np.zeros((32, 32)), {}, "patches"),  # constant: no pixel carries noise
        (
            np.random.default_rng(0).normal(size=(32, 32)),
            {"inside": np.eye(32, dtype=bool)},
            "patches",
        ),
    ],
)
def test_bad_input_raises_one_line(image, kwargs, message):
    with pytest.raises(LowdoseInputError, match=message) as info:
        single_image_noise_psd(image, **kwargs)
    assert "\n" not in str(info.value)
