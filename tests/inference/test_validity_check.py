"""The validity guard of ``lowdose denoise``: every image checked, per series, in HU for CT."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lowdose.data.scaling import NetworkScaling
from lowdose.inference.validity_check import input_noise_levels, validity_warnings
from lowdose.io.dicom_read import SliceInfo
from lowdose.models.validity_range import ValidityRange, in_input_units
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.physics.radon import fbp_2d, radon_2d

SIZE = 128
CT = NetworkScaling("dataset_max", 1024.0, "hu", 4000.0)
# a sinogram model's range: measured at the acquired dose only (its noise cannot be re-noised)
SINOGRAM = ValidityRange(
    8.0,
    26.0,
    10.0,
    "single_image_noise_sd",
    ((1.0, 10.0, 3.8),),
    scale="hu",
    method="acquired dose only",
)


def body_slice(noise: np.ndarray) -> np.ndarray:
    """(128, 128) HU: a 40 HU disc (the body) in -1000 HU air, plus ``noise``."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    body = (rows - 64) ** 2 + (cols - 64) ** 2 < 56**2
    return np.where(body, 40.0, -1000.0) + noise


@pytest.fixture(scope="module")
def fbp_noise() -> np.ndarray:
    """(12, 128, 128) FBP noise (Hann kernel, white sinogram noise), each image sd 1."""
    rng = np.random.default_rng(0)
    angles = np.arange(181) * (180.0 / 181)
    n_det = radon_2d(np.zeros((SIZE, SIZE), np.float32), angles).shape[-1]
    noise = fbp_2d(rng.normal(0.0, 1.0, (12, len(angles), n_det)), angles, output_size=SIZE)
    return noise / noise.std(axis=(1, 2), keepdims=True)


def test_fbp_noise_is_read_in_hu_by_the_spectrum_estimator(fbp_noise):
    slices = np.stack([body_slice(15.0 * n) for n in fbp_noise[:3]])  # 15 HU sd
    levels = input_noise_levels(slices, CT, SINOGRAM)
    np.testing.assert_allclose(levels, 15.0, rtol=0.2)
    assert validity_warnings(Path("in.npy"), slices, CT, SINOGRAM) == []
    # the white-noise estimator would have read it far below the range: a false "cleaner"
    assert max(single_image_noise_sigma(s) for s in slices) < SINOGRAM.sigma_low


def test_a_stack_reports_how_many_images_are_out_and_which_way(fbp_noise):
    # 10 slices of one series: 6 at 15 HU (inside), 4 at 70 HU (a LUNG kernel): the median of the
    # stack is inside the range, yet 4 images are not
    scale = np.array([15.0] * 6 + [70.0] * 4)[:, None, None]
    slices = np.stack([body_slice(n) for n in scale * fbp_noise[:10]])
    meta = {
        "slices": [SliceInfo(Path(f"{k}.dcm"), "p", "1.2.3") for k in range(10)],
        "headers": [SimpleNamespace(ConvolutionKernel="LUNG")] * 10,
    }
    (line,) = validity_warnings(Path("series"), slices, CT, SINOGRAM, file_meta=meta)
    assert line.startswith("series: 4 of 10 image(s) outside the model's validity range")
    assert "noise sd 8..26 HU" in line and "4 noisier, 0 cleaner" in line
    # a sinogram model cannot be re-noised: the advice names the kernel, not --dose-range
    assert "reconstruction kernel (LUNG)" in line and "--dose-range" not in line
    assert "lowdose dataset from-repeats or from-sinogram" in line


def test_each_series_of_a_folder_gets_its_own_line(fbp_noise):
    levels = np.array([15.0] * 4 + [3.0] * 4)[:, None, None]  # series B: cleaner than the range
    slices = np.stack([body_slice(n) for n in levels * fbp_noise[:8]])
    uids = ["A"] * 4 + ["B"] * 4
    meta = {"slices": [SliceInfo(Path(f"{k}.dcm"), "p", uid) for k, uid in enumerate(uids)]}
    (line,) = validity_warnings(Path("folder"), slices, CT, SINOGRAM, file_meta=meta)
    assert line.startswith("folder series B: 4 of 4 image(s)") and "0 noisier, 4 cleaner" in line
    assert "over-smooth" in line


def test_values_that_are_not_hu_name_the_units():
    rng = np.random.default_rng(1)
    scaled = 0.3 + rng.normal(0.0, 0.01, (2, SIZE, SIZE))  # e.g. a [0, 1] export, not HU
    (line,) = validity_warnings(Path("x.tif"), scaled, CT, SINOGRAM)
    assert "likely cause: units" in line and "2 cleaner" in line


def test_an_old_network_scale_range_is_shown_in_hu_and_compared_by_its_own_estimator(fbp_noise):
    old = ValidityRange(0.001, 0.002, 0.0015, "single_image_noise_sigma", ((1.0, 0.0015, 3.0),))
    hu = in_input_units(old, CT)  # x 4000: a standard deviation scales with the divisor
    assert (hu.scale, hu.sigma_low, hu.sigma_high, hu.levels[0][1]) == ("hu", 4.0, 8.0, 6.0)
    slices = np.stack([body_slice(15.0 * n) for n in fbp_noise[:2]])
    np.testing.assert_allclose(
        input_noise_levels(slices, CT, old), [single_image_noise_sigma(s) for s in slices]
    )
    xray = NetworkScaling("per_image_max", 0.0, "transmission")
    assert in_input_units(old, xray).scale == "per_image_max"  # values kept: no single divisor
    assert in_input_units(old, xray).sigma_low == old.sigma_low
