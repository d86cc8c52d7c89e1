"""Torso phantoms: organs present, attenuation ordering, seeds, anatomy ranges."""

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.phantoms.materials import MU_PER_MM, Organ
from lowdose.phantoms.torso import ANATOMY_RANGES_MM, draw_anatomy, torso_phantom

SHAPE = (96, 96, 96)
VOXEL_MM = 512 / 96


@pytest.fixture(scope="module")
def phantom():
    return torso_phantom(SHAPE, rng=np.random.default_rng(7), voxel_mm=VOXEL_MM)


def test_shapes_dtypes_and_range(phantom):
    mu, labels = phantom
    assert mu.shape == labels.shape == SHAPE
    assert mu.dtype == np.float32 and labels.dtype == np.uint8
    assert mu.min() >= 0 and mu.max() < 1.1 * MU_PER_MM["cortical"]
    assert set(np.unique(labels)) <= {int(o) for o in Organ}


def test_every_major_organ_is_present(phantom):
    _, labels = phantom
    counts = np.bincount(labels.ravel(), minlength=len(Organ))
    required = [
        Organ.FAT,
        Organ.MUSCLE,
        Organ.SOFT_TISSUE,
        Organ.LUNG,
        Organ.LUNG_VESSEL,
        Organ.HEART,
        Organ.AORTA,
        Organ.LIVER,
        Organ.STOMACH,
        Organ.STOMACH_AIR,
        Organ.KIDNEY,
        Organ.BONE_CORTICAL,
        Organ.BONE_MARROW,
        Organ.SPINAL_CANAL,
    ]
    missing = [organ.name for organ in required if counts[organ] == 0]
    assert not missing
    assert counts[Organ.LUNG] > counts[Organ.HEART] > counts[Organ.AORTA]


def test_lung_below_soft_tissue_below_bone(phantom):
    mu, labels = phantom
    mean = {organ: float(mu[labels == organ].mean()) for organ in Organ if (labels == organ).any()}
    assert mean[Organ.LUNG] < mean[Organ.FAT] < mean[Organ.LIVER] < mean[Organ.BONE_MARROW]
    assert mean[Organ.BONE_MARROW] < mean[Organ.BONE_CORTICAL]
    assert mean[Organ.STOMACH_AIR] < mean[Organ.LUNG]
    assert 0.018 < mean[Organ.LIVER] < 0.024  # soft tissue ~ water at 65 keV


def test_body_fits_the_inscribed_cylinder(phantom):
    # the projectors ignore anything outside the cylinder inscribed in the volume
    mu, _ = phantom
    y, x = np.mgrid[: SHAPE[1], : SHAPE[2]] - SHAPE[1] // 2
    outside = (x**2 + y**2) > (SHAPE[1] // 2 - 1) ** 2
    assert mu[:, outside].max() == 0


def test_same_seed_same_phantom_and_seeds_differ():
    small = (40, 40, 40)
    a = torso_phantom(small, rng=np.random.default_rng(3), voxel_mm=12.8)
    b = torso_phantom(small, rng=np.random.default_rng(3), voxel_mm=12.8)
    c = torso_phantom(small, rng=np.random.default_rng(4), voxel_mm=12.8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.abs(a[0] - c[0]).mean() > 1e-4


def test_anatomy_draws_stay_in_documented_ranges():
    rng = np.random.default_rng(0)
    draws = [draw_anatomy(rng) for _ in range(50)]
    for name, (low, high) in ANATOMY_RANGES_MM.items():
        values = [d[name] for d in draws]
        assert low <= min(values) and max(values) <= high
    assert {d["rib_pairs"] for d in draws} <= set(range(9, 13))
    assert len({d["arms"] for d in draws}) == 2


def test_bad_shape_or_voxel_raises():
    with pytest.raises(LowdoseInputError, match="shape"):
        torso_phantom((8, 8), rng=np.random.default_rng(0), voxel_mm=1.0)
    with pytest.raises(LowdoseInputError, match="voxel_mm"):
        torso_phantom((8, 8, 8), rng=np.random.default_rng(0), voxel_mm=0.0)
