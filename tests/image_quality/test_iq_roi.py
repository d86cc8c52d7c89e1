"""ROI statistics over an ensemble: exact on constructed data, blind to object structure."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.image_quality.roi import (
    RoiStats,
    annulus_mask,
    contrast_to_noise,
    disc_mask,
    ensemble_sigma,
    hu_bias,
    roi_statistics,
)

SHAPE = (48, 64)
CENTRE = (24.0, 30.0)
# Zero-mean over realisations at every pixel, unbiased variance 4/3 (times the amplitude^2).
PATTERN = np.array([1.0, -1.0, 1.0, -1.0])


def phantom() -> np.ndarray:
    """(H, W) HU: a ramp background (cupping-like structure) with a +10 HU disc insert."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    image = 100.0 + 0.5 * cols - 0.25 * rows
    image[disc_mask(SHAPE, CENTRE, 8.0)] += 10.0
    return image


def realisations_with(amplitude_hu, offset_hu: float = 0.0) -> np.ndarray:
    """(4, H, W): phantom + offset + amplitude * (+1, -1, +1, -1): known mean and variance."""
    amplitude = np.broadcast_to(amplitude_hu, SHAPE)
    return phantom()[None] + offset_hu + PATTERN[:, None, None] * amplitude[None]


def test_disc_and_annulus_masks_have_the_area_and_symmetry_of_their_shapes():
    disc = disc_mask((101, 101), (50, 50), 20.0)
    assert abs(disc.sum() / (np.pi * 20.0**2) - 1) < 0.01
    assert np.array_equal(disc, disc[::-1]) and np.array_equal(disc, disc.T)
    ring = annulus_mask((101, 101), (50, 50), 10.0, 20.0)
    assert np.array_equal(ring, disc & ~disc_mask((101, 101), (50, 50), 10.0))
    assert disc_mask((9, 9), (4, 4), 1.0).sum() == 5  # the centre and its four neighbours


def test_ensemble_sigma_is_exact_and_ignores_the_object_structure():
    uniform = realisations_with(3.0)
    inside = disc_mask(SHAPE, CENTRE, 12.0)  # straddles the insert's edge and the ramp
    assert ensemble_sigma(uniform, inside) == pytest.approx(3.0 * np.sqrt(4 / 3), rel=1e-12)
    # A pixel-varying noise amplitude: the root of the mean variance, not the mean sigma.
    amplitude = np.where(np.arange(SHAPE[1])[None, :] < 30, 1.0, 2.0) * np.ones(SHAPE)
    expected = np.sqrt((4 / 3) * (amplitude[inside] ** 2).mean())
    assert ensemble_sigma(realisations_with(amplitude), inside) == pytest.approx(expected)


def test_hu_bias_reads_a_known_offset_against_the_reference():
    stack = realisations_with(5.0, offset_hu=2.5)
    inside = disc_mask(SHAPE, CENTRE, 8.0)
    assert hu_bias(stack, phantom(), inside) == pytest.approx(2.5, abs=1e-12)
    assert hu_bias(realisations_with(5.0, offset_hu=-7.0), phantom(), inside) == pytest.approx(-7)


def test_contrast_to_noise_is_the_insert_contrast_over_the_background_sigma():
    flat = np.full(SHAPE, 100.0)
    insert = disc_mask(SHAPE, CENTRE, 6.0)
    background = annulus_mask(SHAPE, CENTRE, 10.0, 16.0)
    flat[insert] = 90.0  # a dark insert: CNR is a magnitude
    stack = flat[None] + PATTERN[:, None, None] * 2.0
    assert contrast_to_noise(stack, insert, background) == pytest.approx(10 / (2 * np.sqrt(4 / 3)))


def test_roi_statistics_gathers_the_single_metrics():
    stack = realisations_with(2.0, offset_hu=1.0)
    insert = disc_mask(SHAPE, CENTRE, 6.0)
    background = annulus_mask(SHAPE, CENTRE, 10.0, 16.0)
    stats = roi_statistics(stack, phantom(), insert, background)
    assert isinstance(stats, RoiStats)
    assert stats.mean_hu == pytest.approx(stack.mean(axis=0)[insert].mean())
    assert stats.sigma_hu == pytest.approx(ensemble_sigma(stack, insert))
    assert stats.background_sigma_hu == pytest.approx(ensemble_sigma(stack, background))
    assert stats.bias_hu == pytest.approx(1.0)
    assert stats.cnr == pytest.approx(contrast_to_noise(stack, insert, background))
    assert np.isnan(roi_statistics(stack, None, insert, background).bias_hu)


def test_inputs_are_not_modified():
    stack = realisations_with(2.0).astype(np.float32)
    reference = phantom()
    insert = disc_mask(SHAPE, CENTRE, 6.0)
    background = annulus_mask(SHAPE, CENTRE, 10.0, 16.0)
    copies = [a.copy() for a in (stack, reference, insert, background)]
    roi_statistics(stack, reference, insert, background)
    for after, before in zip((stack, reference, insert, background), copies, strict=True):
        assert np.array_equal(after, before) and after.dtype == before.dtype


@pytest.mark.parametrize(
    "call",
    [
        lambda s, m: ensemble_sigma(s[0], m),  # one image, not a stack
        lambda s, m: ensemble_sigma(s[:1], m),  # N = 1
        lambda s, m: ensemble_sigma(s, m.astype(np.uint8)),  # not a boolean mask
        lambda s, m: ensemble_sigma(s, m[:-1]),  # mask of another shape
        lambda s, m: ensemble_sigma(s, np.zeros_like(m)),  # empty mask
        lambda s, m: hu_bias(s, np.zeros((3, 3)), m),  # reference of another shape
        lambda s, m: disc_mask(SHAPE, (2.0, 30.0), 5.0),  # disc outside the image
        lambda s, m: annulus_mask(SHAPE, CENTRE, 8.0, 4.0),  # inner > outer
    ],
)
def test_bad_input_raises_one_line_errors(call):
    stack = realisations_with(1.0)
    mask = disc_mask(SHAPE, CENTRE, 4.0)
    with pytest.raises(LowdoseInputError) as error:
        call(stack, mask)
    assert "\n" not in str(error.value)
