"""Projectors: analytic chords, agreement with scikit-image, cone -> parallel, FBP round trip."""

import numpy as np
import pytest
from skimage.transform import radon

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.cone_beam import cone_projection
from lowdose.physics.projection import parallel_projection, projection_angles
from lowdose.physics.radon import fbp_2d, radon_2d

MU = 0.02  # 1/mm, about water at 65 keV


def _disc(size: int, radius: float, supersample: int = 4) -> np.ndarray:
    """Partial-volume disc centred on pixel (size // 2, size // 2): fraction of each pixel."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(size) - size // 2
    y = grid[:, None, None, None] + offsets[None, None, :, None]
    x = grid[None, :, None, None] + offsets[None, None, None, :]
    return ((x**2 + y**2) <= radius**2).mean(axis=(2, 3))


def _smooth_image(size: int = 48) -> np.ndarray:
    y, x = np.mgrid[:size, :size] / size
    image = np.exp(-((x - 0.45) ** 2 + (y - 0.5) ** 2) / 0.05) + 0.5 * (x > 0.6) * (y < 0.4)
    return image * _disc(size, size * 0.45)


def test_parallel_cylinder_gives_analytic_chords():
    radius, voxel_mm = 20.3, 1.5
    volume = np.repeat(_disc(64, radius)[None] * MU, 3, axis=0).astype(np.float32)
    before = volume.copy()
    proj = parallel_projection(volume, projection_angles(7), voxel_mm=voxel_mm)
    assert proj.shape == (7, 3, 64) and proj.dtype == np.float32
    offsets = np.arange(64) - 32
    inner = np.abs(offsets) <= 0.7 * radius
    chords = 2 * np.sqrt(radius**2 - offsets[inner] ** 2) * voxel_mm * MU
    np.testing.assert_allclose(
        proj[:, :, inner], np.broadcast_to(chords, proj[:, :, inner].shape), rtol=0.01
    )
    np.testing.assert_array_equal(volume, before)


def test_parallel_matches_skimage_radon_slice_by_slice():
    rng = np.random.default_rng(0)
    volume = np.stack([_smooth_image() * rng.uniform(0.5, 1.5) for _ in range(3)]).astype(
        np.float32
    )
    angles = projection_angles(9)
    proj = parallel_projection(volume, angles, voxel_mm=1.0)
    for z in range(3):
        reference = radon(volume[z].astype(np.float64), angles, circle=True).T
        error = np.abs(proj[:, z] - reference).max() / reference.max()
        assert error < 0.01


def test_cone_with_distant_source_converges_to_parallel():
    volume = (np.repeat(_smooth_image(32)[None], 8, axis=0) * MU).astype(np.float32)
    angles = [0.0, 50.0, 130.0]
    parallel = parallel_projection(volume, angles, voxel_mm=2.0)
    far = cone_projection(volume, angles, voxel_mm=2.0, source_iso_mm=1e7, source_detector_mm=2e7)
    near = cone_projection(volume, angles, voxel_mm=2.0, source_iso_mm=100, source_detector_mm=200)
    scale = parallel.max()
    assert np.abs(far - parallel).max() / scale < 1e-3
    assert np.abs(near - parallel).max() / scale > 0.01  # a real cone differs


def test_cone_central_ray_of_sphere_is_the_diameter():
    n, radius, voxel_mm = 48, 15.0, 2.0
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    volume = (((x**2 + y**2 + z**2) <= radius**2) * MU).astype(np.float32)
    proj = cone_projection(volume, [0.0, 90.0], voxel_mm=voxel_mm)
    # the central ray crosses 2R + 1 voxel centres of the voxelised sphere
    np.testing.assert_allclose(proj[:, n // 2, n // 2], (2 * radius + 1) * voxel_mm * MU, rtol=0.01)


def test_radon_2d_matches_skimage_full_diagonal():
    image = np.random.default_rng(1).random((40, 52))  # non-square, content in the corners
    angles = np.linspace(0, 180, 20, endpoint=False)
    sino = radon_2d(image, angles)
    reference = radon(image, angles, circle=False).T
    assert sino.shape == reference.shape and sino.dtype == np.float32
    assert np.abs(sino - reference).max() / reference.max() < 1e-4
    stack = radon_2d(np.stack([image, 2 * image]), angles)
    np.testing.assert_allclose(stack[1], 2 * sino, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("filter_name", ["ramp", "hann"])
def test_fbp_2d_round_trip(filter_name):
    image = _smooth_image(64)
    angles = np.linspace(0, 360, 240, endpoint=False)
    recon = fbp_2d(
        radon_2d(image, angles), angles, output_size=image.shape, filter_name=filter_name
    )
    assert recon.shape == image.shape and recon.dtype == np.float32
    rmse = np.sqrt(np.mean((recon - image) ** 2))
    assert rmse < 0.04 * image.max()
    assert abs(recon.mean() - image.mean()) < 0.01 * image.max()  # units preserved


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(LowdoseInputError, match="Y == X"):
        parallel_projection(np.zeros((4, 5, 6)), [0.0], voxel_mm=1.0)
    with pytest.raises(LowdoseInputError, match="angles"):
        fbp_2d(np.zeros((3, 10)), [0.0, 1.0], output_size=7)
    with pytest.raises(LowdoseInputError, match="filter_name"):
        fbp_2d(np.zeros((2, 10)), [0.0, 1.0], output_size=7, filter_name="cosine")
    with pytest.raises(LowdoseInputError, match="source"):
        cone_projection(np.zeros((4, 4, 4)), [0.0], voxel_mm=1.0, source_iso_mm=1300)
