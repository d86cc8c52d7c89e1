"""``--backend astra`` (`make test` installs lowdose[astra]): ASTRA's FBP in the built-in
geometry, and the one line without it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.radon import check_backend, fbp_2d, radon_2d

ANGLES = np.arange(0.0, 180.0, 1.0)


def _phantom(shape):
    """Two off-centre rectangles: any flip, shift or angle-sign error moves them."""
    image = np.zeros(shape, np.float32)
    height, width = shape
    image[height // 6 : height // 2 - 4, width // 4 : (3 * width) // 4] = 1.0
    image[(3 * height) // 5 : height - 8, width // 2 + 4 : width - 10] = 2.0
    return image


def _relative_rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))


@pytest.mark.parametrize("shape", [(96, 96), (95, 95), (96, 80)])
@pytest.mark.parametrize("filter_name", ["ramp", "hann", "shepp-logan"])
def test_astra_reconstructs_in_the_builtin_geometry(shape, filter_name):
    image = _phantom(shape)
    sinogram = radon_2d(image, ANGLES)
    builtin = fbp_2d(sinogram, ANGLES, output_size=shape, filter_name=filter_name)
    astra_image = fbp_2d(
        sinogram, ANGLES, output_size=shape, filter_name=filter_name, backend="astra"
    )
    assert astra_image.shape == shape and astra_image.dtype == np.float32
    # the same image up to the two filters' discretisations (measured 0.9-1.3 %)
    assert _relative_rms(astra_image, builtin) < 0.03
    # ... and as close to the object as the built-in FBP (the kernel's blur dominates both)
    assert _relative_rms(astra_image, image) < 1.1 * _relative_rms(builtin, image) + 0.01
    # a mirrored or half-pixel-shifted geometry would move the rectangles' centre of mass
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    for grid in (rows, cols):
        centre = float((grid * astra_image).sum() / astra_image.sum())
        assert centre == pytest.approx(float((grid * image).sum() / image.sum()), abs=0.15)


def test_a_stack_of_sinograms_reconstructs_slice_by_slice():
    images = np.stack([_phantom((64, 64)), 0.5 * _phantom((64, 64))[::-1]])
    sinograms = radon_2d(images, ANGLES)
    stack = fbp_2d(sinograms, ANGLES, output_size=64, backend="astra")
    assert stack.shape == (2, 64, 64)
    one = fbp_2d(sinograms[1], ANGLES, output_size=64, backend="astra")
    np.testing.assert_allclose(stack[1], one, rtol=0, atol=1e-6)


def test_unknown_or_missing_backends_are_one_line_errors(monkeypatch):
    with pytest.raises(LowdoseInputError, match="use one of builtin, astra"):
        check_backend("tomopy")
    monkeypatch.setitem(sys.modules, "astra", None)  # as if not installed
    with pytest.raises(LowdoseInputError, match=r"pip install 'lowdose\[astra\]'"):
        check_backend("astra")
    check_backend("builtin")  # always there
