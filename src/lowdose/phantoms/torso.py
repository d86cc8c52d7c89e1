"""Random anthropomorphic torso phantoms: attenuation volumes in 1/mm and organ labels.

The paper projected 100 XCAT phantoms; XCAT is licensed, so lowdose draws its own adult torso
(neck to pelvis) from a seed. Coordinates are millimetres from the volume centre: ``x`` to the
patient's left, ``y`` from anterior (negative) to posterior, ``z`` from head (negative) to feet.
The volume is ``(Z, Y, X)``; the whole torso spans about 512 mm in z and fits a 512 mm field of
view in-plane, so ``voxel_mm = 512 / size`` shows all of it (at other sizes it is cropped).

Tissues and their attenuation at 65 keV: :mod:`lowdose.phantoms.materials`.

Anatomical ranges drawn per phantom (uniform, mm) are listed in :data:`ANATOMY_RANGES_MM`.
Shapes have soft (partial-volume) edges one voxel wide, so projections do not alias, and a
gentle texture (smooth 3-D noise, +/- ~2.5 %) modulates every tissue.
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.phantoms.anatomy import paint_body, paint_organs
from lowdose.phantoms.canvas import Canvas
from lowdose.phantoms.skeleton import paint_skeleton

# (low, high) in mm unless named otherwise; one uniform draw per phantom and parameter.
ANATOMY_RANGES_MM: dict[str, tuple[float, float]] = {
    "chest_half_width": (145.0, 180.0),
    "chest_half_depth": (95.0, 125.0),
    "abdomen_half_width": (140.0, 180.0),
    "abdomen_half_depth": (95.0, 135.0),
    "neck_radius": (48.0, 60.0),
    "shoulder_z": (-215.0, -190.0),
    "fat_thickness": (6.0, 24.0),
    "muscle_thickness": (8.0, 16.0),
    "right_dome_z": (-10.0, 30.0),
    "left_dome_drop": (8.0, 25.0),
    "dome_height": (45.0, 70.0),
    "heart_radius": (55.0, 72.0),
    "heart_x": (20.0, 45.0),
    "aorta_radius": (10.0, 15.0),
    "liver_height": (130.0, 175.0),
    "stomach_radius": (35.0, 50.0),
    "kidney_length_half": (45.0, 60.0),
    "kidney_x": (60.0, 80.0),
    "vertebral_body_radius": (15.0, 22.0),
    "rib_spacing": (22.0, 28.0),
    "rib_half_height": (4.0, 6.5),
    "arm_radius": (38.0, 48.0),
    "sternum_length": (130.0, 170.0),
}
# Discrete draws: rib pairs 9-12; arms present with probability 0.6.
RIB_PAIRS = (9, 12)
ARMS_PROBABILITY = 0.6


def draw_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """One uniform draw per entry of :data:`ANATOMY_RANGES_MM`, plus ``rib_pairs`` and ``arms``."""
    params = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ANATOMY_RANGES_MM.items()}
    params["rib_pairs"] = int(rng.integers(RIB_PAIRS[0], RIB_PAIRS[1] + 1))
    params["arms"] = bool(rng.random() < ARMS_PROBABILITY)
    return params


def torso_phantom(
    shape: tuple[int, int, int], *, rng: np.random.Generator, voxel_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a random adult torso: attenuation volume and organ labels.

    Parameters
    ----------
    shape
        (Z, Y, X) voxels; use Y == X for the projectors of :mod:`lowdose.physics.projection`.
    rng
        Source of every random choice (anatomy sizes, positions, vessel trees, texture).
    voxel_mm
        Cubic voxel edge in mm; ``512 / size`` fits the whole torso.

    Returns
    -------
    mu : numpy.ndarray
        (Z, Y, X) float32 linear attenuation in 1/mm at 65 keV
        (:data:`lowdose.phantoms.materials.EFFECTIVE_ENERGY_KEV`),
        0 (air) to ~0.056 (cortical bone).
    labels : numpy.ndarray
        (Z, Y, X) uint8 organ ids
        (:class:`lowdose.phantoms.materials.Organ`) (the tissue covering most of each voxel).

    Examples
    --------
    >>> mu, labels = torso_phantom((32, 32, 32), rng=np.random.default_rng(0), voxel_mm=16.0)
    >>> mu.dtype, labels.dtype, bool(mu.max() < 0.06)
    (dtype('float32'), dtype('uint8'), True)
    """
    if len(shape) != 3 or min(int(n) for n in shape) < 4:
        raise LowdoseInputError(f"shape={shape!r}: pass (Z, Y, X) with every size >= 4")
    if not voxel_mm > 0:
        raise LowdoseInputError(f"voxel_mm={voxel_mm}: pass the voxel edge in mm (> 0)")
    params = draw_anatomy(rng)
    canvas = Canvas(tuple(int(n) for n in shape), float(voxel_mm))
    paint_body(canvas, params)
    paint_organs(canvas, params, rng=rng)
    paint_skeleton(canvas, params, rng=rng)
    canvas.apply_texture(rng=rng, amplitude=0.025, cell_mm=40.0)
    return canvas.mu, canvas.labels
