"""The rotation axis: found on simulated off-centre scans, and centring sharpens the FBP."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.detector_shift import shift_along_detector
from lowdose.physics.radon import fbp_2d, radon_2d
from lowdose.physics.rotation_centre import (
    centred_sinogram,
    estimate_centre,
    fbp_axis_px,
    find_centre,
)

SIZE = 96
OFFSET_PX = 3.3


def _discs() -> np.ndarray:
    """A body with inserts of several sizes and contrasts, attenuation in 1/px, (96, 96)."""
    rows, cols = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    image = np.zeros((SIZE, SIZE))
    for y, x, radius, mu in [
        (0, 0, 38, 0.02),
        (-15, 8, 9, 0.03),
        (12, -14, 6, -0.01),
        (20, 18, 5, 0.04),
        (-22, -18, 4, 0.03),
    ]:
        image += mu * ((rows - y) ** 2 + (cols - x) ** 2 < radius**2)
    return image


def _off_centre_scan(angles_deg, offset_px=OFFSET_PX, noise=0.01, seed=0):
    """The discs' sinogram with the axis moved ``offset_px`` right of where FBP expects it."""
    sinogram = radon_2d(_discs(), angles_deg).astype(np.float64)
    shifted = shift_along_detector(sinogram, offset_px)
    rng = np.random.default_rng(seed)
    return shifted + rng.normal(0.0, noise * sinogram.max(), sinogram.shape), sinogram.shape[1]


def test_an_off_centre_scan_over_180_degrees_without_pairs_is_found_by_sharpness():
    angles = np.arange(0.0, 180.0, 1.5)  # 120 views, no 180-degree pair
    sinogram, n_det = _off_centre_scan(angles)
    truth = fbp_axis_px(n_det) + OFFSET_PX
    estimate = find_centre(sinogram, angles)
    assert estimate.method == "sharpest FBP" and estimate.pair_px is None
    assert abs(estimate.centre_px - truth) < 0.5, estimate.line()
    assert estimate_centre(sinogram, angles) == pytest.approx(estimate.centre_px)


@pytest.mark.parametrize("offset_px", [-6.6, 2.5])
def test_a_scan_with_180_degree_pairs_is_found_by_the_pair_and_confirmed(offset_px):
    angles = np.linspace(0.0, 360.0, 120, endpoint=False)  # 60 pairs
    sinogram, n_det = _off_centre_scan(angles, offset_px)
    truth = fbp_axis_px(n_det) + offset_px
    estimate = find_centre(sinogram, angles)
    assert estimate.method == "0/180 pair" and estimate.n_pairs == 60
    assert abs(estimate.centre_px - truth) < 0.5, estimate.line()
    assert abs(estimate.sharpness_px - truth) < 0.5, estimate.line()
    assert "0/180 pair" in estimate.line() and "detector middle" in estimate.line()


def test_centring_then_reconstructing_gives_a_sharper_and_truer_image():
    angles = np.arange(0.0, 180.0, 1.5)
    sinogram, n_det = _off_centre_scan(angles)
    centre = estimate_centre(sinogram, angles)
    centred = centred_sinogram(sinogram, centre)
    assert centred.shape == sinogram.shape and centred.dtype == np.float32
    before, after = fbp_2d(
        np.stack([sinogram, centred]).astype(np.float32),
        angles,
        output_size=SIZE,
        filter_name="ramp",
    )
    truth = _discs()
    inner = (np.mgrid[:SIZE, :SIZE] - SIZE / 2) ** 2
    inner = inner.sum(axis=0) < 40**2

    def error(image):
        return float(np.sqrt(np.mean((image - truth)[inner] ** 2)))

    def sharpness(image):  # the mean gradient at the inserts' edges, where the arcs smear
        gy, gx = np.gradient(image)
        edges = np.hypot(*np.gradient(truth)) > 0.005
        return float(np.hypot(gy, gx)[edges].mean())

    assert error(after) < 0.6 * error(before), (error(after), error(before))
    assert sharpness(after) > 1.2 * sharpness(before), (sharpness(after), sharpness(before))


def test_centred_sinogram_puts_the_axis_on_the_fbp_bin():
    n_det = 40
    sinogram = np.zeros((3, n_det))
    sinogram[:, 27] = 1.0  # a point on the axis stays on the same bin in every view
    centred = centred_sinogram(sinogram, 27.0)
    assert np.argmax(centred, axis=1).tolist() == [fbp_axis_px(n_det)] * 3 == [20] * 3
    stack = np.stack([sinogram, 2 * sinogram])  # (S, n_angles, n_det) shares one axis
    np.testing.assert_allclose(centred_sinogram(stack, 27.0)[1], 2 * centred, atol=1e-6)


def test_the_fourier_shift_keeps_the_noise_level():
    # an all-pass shift: white noise keeps its variance at a half-pixel shift, where linear
    # interpolation would halve it
    noise = np.random.default_rng(3).normal(size=(200, 256))
    shifted = shift_along_detector(noise, 0.5)[:, 20:-20]
    assert 0.9 < shifted.var() / noise.var() < 1.1
    np.testing.assert_allclose(shift_along_detector(noise, 3)[:, 3:], noise[:, :-3], atol=1e-9)


def test_bad_input_is_refused_in_one_line():
    sinogram = np.ones((10, 32))
    with pytest.raises(LowdoseInputError, match="--center"):
        centred_sinogram(sinogram, 40.0)
    with pytest.raises(LowdoseInputError, match="one finite angle"):
        estimate_centre(sinogram, np.arange(9.0))
    with pytest.raises(LowdoseInputError, match="n_det >= 8"):
        estimate_centre(np.ones((10, 4)), np.arange(10.0))
