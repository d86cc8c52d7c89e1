"""The field of view of CT slices: padding outside the reconstruction circle, given or detected."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.field_of_view import AIR_HU, PADDING_BELOW_HU, field_of_view_mask


def _padded_disc(size: int = 64, padding_hu: float = -3024.0, seed: int = 0) -> np.ndarray:
    """(size, size) float64 HU: noisy tissue and air inside a circle, ``padding_hu`` outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    inside = np.hypot(yy, xx) < size * 0.45
    hu = np.where(np.hypot(yy, xx) < size * 0.3, 40.0, AIR_HU) + rng.normal(0, 30, (size, size))
    return np.where(inside, hu, padding_hu)


def _circle(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(yy, xx) < size * 0.45


def test_a_disc_in_a_padding_surround_is_the_field_of_view():
    hu = _padded_disc()
    mask = field_of_view_mask(hu)
    assert mask.dtype == bool and mask.shape == hu.shape
    np.testing.assert_array_equal(mask, _circle())


@pytest.mark.parametrize("padding_hu", [-3024.0, -2048.0])
def test_a_given_padding_value_and_detection_agree(padding_hu):
    hu = _padded_disc(padding_hu=padding_hu)
    np.testing.assert_array_equal(
        field_of_view_mask(hu, padding_hu=padding_hu), field_of_view_mask(hu)
    )


def test_a_given_padding_value_above_the_detection_rule_is_used():
    hu = _padded_disc(padding_hu=-1024.0)  # some scanners pad with stored 0 at intercept -1024
    np.testing.assert_array_equal(field_of_view_mask(hu, padding_hu=-1024.0), _circle())
    assert field_of_view_mask(hu).all()  # -1024 is above PADDING_BELOW_HU: not detected


def test_an_image_without_padding_is_all_inside():
    hu = np.random.default_rng(1).normal(-500, 400, (3, 32, 40)).clip(PADDING_BELOW_HU + 1)
    mask = field_of_view_mask(hu)
    assert mask.shape == hu.shape and mask.all()
    assert field_of_view_mask(hu, padding_hu=-3024.0).all()


def test_an_isolated_low_pixel_inside_stays_inside():
    hu = _padded_disc()
    hu[32, 32] = -3024.0
    hu[30:33, 20:23] = -2500.0
    mask = field_of_view_mask(hu)
    assert mask[32, 32] and mask[30:33, 20:23].all()
    np.testing.assert_array_equal(mask, _circle())
    assert field_of_view_mask(hu, padding_hu=-3024.0)[32, 32]


def test_a_stack_is_masked_slice_by_slice():
    stack = np.stack([_padded_disc(seed=0), np.full((64, 64), 30.0), _padded_disc(seed=2)])
    mask = field_of_view_mask(stack)
    assert mask.shape == stack.shape
    np.testing.assert_array_equal(mask[0], _circle())
    assert mask[1].all()
    np.testing.assert_array_equal(mask[2], _circle())


def test_the_input_is_not_modified():
    hu = _padded_disc()
    hu.flags.writeable = False  # any write raises
    before = hu.copy()
    field_of_view_mask(hu)
    field_of_view_mask(hu, padding_hu=-3024.0)
    np.testing.assert_array_equal(hu, before)


def test_a_wrong_shape_is_a_one_line_error():
    with pytest.raises(LowdoseInputError, match="shape"):
        field_of_view_mask(np.zeros(5))


def test_padding_the_tag_does_not_name_is_found_from_the_pixels():
    # GE: PixelPaddingValue -2000 stored (-3024 HU at intercept -1024), pixels -2048 HU outside
    hu = _padded_disc(padding_hu=-2048.0)
    np.testing.assert_array_equal(field_of_view_mask(hu, padding_hu=-3024.0), _circle())


def test_the_tag_and_the_pixels_are_joined():
    hu = _padded_disc(padding_hu=-1024.0)  # the tag's value, above the pixel rule
    hu[:, :4] = -2048.0  # and a band the tag does not name
    mask = field_of_view_mask(hu, padding_hu=-1024.0)
    np.testing.assert_array_equal(mask, _circle() & (np.arange(64) >= 4))


def test_low_values_reaching_outside_the_circle_are_padding_even_cut_off_from_the_border():
    hu = _padded_disc(padding_hu=-2048.0)
    hu[0, :] = hu[-1, :] = hu[:, 0] = hu[:, -1] = -1000.0  # an air frame round the padding
    mask = field_of_view_mask(hu, padding_hu=-3024.0)
    frame = np.zeros((64, 64), dtype=bool)
    frame[1:-1, 1:-1] = True
    np.testing.assert_array_equal(mask, _circle() | ~frame)  # only the frame is "inside"
