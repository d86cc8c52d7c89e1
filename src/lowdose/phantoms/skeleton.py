"""Bones of the torso phantom: spine vertebra by vertebra, ribs, sternum, shoulders, pelvis, arms.

Every bone is a cortical shell (~2 mm) around spongy marrow; vertebrae add an arch around the
spinal canal, spinous and transverse processes. Ribs are curved tubes that leave the spine, follow
the chest wall and slope down towards the front, painted in one pass over the chest-wall shell.
"""

from __future__ import annotations

import numpy as np

from lowdose.phantoms.anatomy import arm_polyline, body_profile, spine_y
from lowdose.phantoms.canvas import Canvas, ellipsoid, paint_tube, rotation_zyx
from lowdose.phantoms.materials import MU_PER_MM, Organ

MU = MU_PER_MM
CORTEX_MM = 2.0


def paint_skeleton(canvas: Canvas, params: dict, *, rng: np.random.Generator) -> None:
    """Spine, ribs, sternum, clavicles, scapulae, iliac wings and (if present) arm bones."""
    _paint_spine(canvas, params, rng)
    _paint_ribs(canvas, params, rng)
    _paint_shoulders_and_sternum(canvas, params)
    _paint_pelvis(canvas, params)
    if params["arms"]:
        for side in (-1, 1):
            points, _ = arm_polyline(canvas, params, side)
            _bone_tube(canvas, points[1:3], np.array([11.0, 9.0]))
            for offset in (-10.0, 10.0):  # radius and ulna
                forearm = points[2:4] + np.array([0.0, offset, 0.0])
                _bone_tube(canvas, forearm, np.array([7.0, 6.0]))


def _paint_bone(canvas: Canvas, low, high, distance) -> None:
    canvas.paint(low, high, distance, MU["cortical"], Organ.BONE_CORTICAL)
    canvas.paint(
        low, high, lambda z, y, x: distance(z, y, x) - CORTEX_MM, MU["marrow"], Organ.BONE_MARROW
    )


def _bone_tube(canvas: Canvas, points, radii) -> None:
    paint_tube(canvas, points, radii, MU["cortical"], Organ.BONE_CORTICAL)
    paint_tube(canvas, points, radii - CORTEX_MM, MU["marrow"], Organ.BONE_MARROW)


def _box_distance(centre, half):
    return lambda z, y, x: np.minimum(
        np.minimum(half[0] - np.abs(z - centre[0]), half[1] - np.abs(y - centre[1])),
        half[2] - np.abs(x - centre[2]),
    )


def _paint_spine(canvas: Canvas, params: dict, rng: np.random.Generator) -> None:
    z_top = canvas.axes_mm[0][0] - 10
    z_end = canvas.axes_mm[0][-1] + 10
    lumbar_from = params["right_dome_z"] + 70
    z = z_top
    while z < z_end:
        cervical, lumbar = z < params["shoulder_z"] + 15, z > lumbar_from
        height = 14.0 if cervical else (27.0 if lumbar else 20.0) * rng.uniform(0.93, 1.07)
        disc = 5.0 if cervical else (9.0 if lumbar else 6.0)
        z_c = z + height / 2
        scale = 0.7 if cervical else (1.15 if lumbar else 1.0)
        _paint_vertebra(
            canvas,
            z_c,
            float(spine_y(params, np.array([z_c]))[0]),
            height,
            params["vertebral_body_radius"] * scale,
        )
        z += height + disc


def _paint_vertebra(canvas: Canvas, z_c: float, y_c: float, height: float, radius: float) -> None:
    def body(z, y, x):
        ring = radius - np.sqrt(((x / 1.2) ** 2) + (y - y_c) ** 2)
        return np.minimum(ring, height / 2 - np.abs(z - z_c))

    reach = 1.2 * radius
    _paint_bone(
        canvas,
        (z_c - height / 2, y_c - radius, -reach),
        (z_c + height / 2, y_c + radius, reach),
        body,
    )
    canal_r = 0.45 * radius + 3
    canal_y = y_c + radius + canal_r + 1
    arch_half = 0.35 * height

    def arch(z, y, x):
        ring = canal_r + 6 - np.sqrt(x**2 + (y - canal_y) ** 2)
        return np.minimum(ring, arch_half - np.abs(z - z_c))

    low = (z_c - arch_half, canal_y - canal_r - 6, -canal_r - 6)
    high = (z_c + arch_half, canal_y + canal_r + 6, canal_r + 6)
    _paint_bone(canvas, low, high, arch)
    spinous = ((z_c + 3, canal_y + canal_r + 20, 0.0), (0.3 * height, 16.0, 4.0))
    transverse = ((z_c, canal_y - 2, 0.0), (0.22 * height, 5.0, radius + 14.0))
    for centre, half in (spinous, transverse):
        _paint_bone(
            canvas, np.subtract(centre, half), np.add(centre, half), _box_distance(centre, half)
        )
    canvas.paint(
        low,
        high,
        lambda z, y, x: canal_r - np.sqrt(x**2 + (y - canal_y) ** 2),
        MU["soft"],
        Organ.SPINAL_CANAL,
    )


def _paint_ribs(canvas: Canvas, params: dict, rng: np.random.Generator) -> None:
    """All ribs at once on the voxels of the chest-wall shell where rib centre lines run."""
    n_ribs, spacing = params["rib_pairs"], params["rib_spacing"]
    half_h, half_t = params["rib_half_height"], 4.0
    depth_c = params["fat_thickness"] + 0.5 * params["muscle_thickness"] + half_t
    z_first = params["shoulder_z"] + 25
    droop = rng.uniform(60, 90)  # anterior ends sit this much lower than the heads
    jitter = rng.uniform(-3, 3, n_ribs)
    # anterior end of each rib, as an angle from the posterior midline (pi = front)
    ends = np.linspace(0.8, 0.62, n_ribs) * np.pi
    ends[-2:] = np.where(n_ribs >= 11, [0.5 * np.pi, 0.4 * np.pi], ends[-2:])
    z_axis = canvas.axes_mm[0]
    rows = np.nonzero((z_axis > z_first - 20) & (z_axis < z_first + n_ribs * spacing + droop + 20))[
        0
    ]
    if rows.size == 0:
        return
    sub = canvas.body_depth_mm[rows[0] : rows[-1] + 1]
    iz, iy, ix = np.nonzero(np.abs(sub - depth_c) < half_t + canvas.voxel_mm)
    iz = iz + rows[0]
    z, y, x = z_axis[iz], canvas.axes_mm[1][iy], canvas.axes_mm[2][ix]
    _, _, yc = body_profile(params, z)
    phi = np.arctan2(np.abs(x), y - yc)  # 0 behind (spine), pi in front
    z_curve = z_first + droop * (phi / np.pi) ** 1.5
    k = np.clip(np.rint((z - z_curve) / spacing), 0, n_ribs - 1).astype(int)
    dz = z - (z_curve + k * spacing + jitter[k])
    dr = canvas.body_depth_mm[iz, iy, ix] - depth_c
    q = np.sqrt((dz / half_h) ** 2 + (dr / half_t) ** 2)
    distance = (1 - q) * half_t
    distance = np.minimum(distance, (ends[k] - phi) * 150.0)  # rounded-off anterior ends
    distance = np.minimum(distance, (phi - 0.1) * 150.0)  # heads meet the transverse processes
    for value, label, inset in (
        (MU["cortical"], Organ.BONE_CORTICAL, 0.0),
        (MU["marrow"], Organ.BONE_MARROW, 1.5),
    ):
        fraction = canvas.soft(distance - inset)
        mu = canvas.mu[iz, iy, ix]
        canvas.mu[iz, iy, ix] = mu + fraction * (value - mu)
        chosen = fraction > 0.5
        canvas.labels[iz[chosen], iy[chosen], ix[chosen]] = label


def _paint_shoulders_and_sternum(canvas: Canvas, params: dict) -> None:
    sh, a_ch, b_ch = params["shoulder_z"], params["chest_half_width"], params["chest_half_depth"]
    wall = params["fat_thickness"] + 0.5 * params["muscle_thickness"]
    front = -b_ch + wall + 6
    length = params["sternum_length"]
    centre, half = (sh + 35 + length / 2, front, 0.0), (length / 2, 6.0, 14.0)
    _paint_bone(
        canvas, np.subtract(centre, half), np.add(centre, half), _box_distance(centre, half)
    )
    back = b_ch - params["fat_thickness"] - 22
    for side in (-1, 1):
        clavicle = np.array(
            [(sh + 30, front + 5, side * 18.0), (sh + 12, -25.0, side * (a_ch - 25))]
        )
        _bone_tube(canvas, clavicle, np.array([7.0, 7.0]))
        c, radii = (sh + 85, back, side * 0.5 * a_ch), (75.0, 6.0, 50.0)
        rotation = rotation_zyx(side * 0.35, 0.0)
        _paint_bone(canvas, np.subtract(c, 75), np.add(c, 75), ellipsoid(c, radii, rotation))


def _paint_pelvis(canvas: Canvas, params: dict) -> None:
    a_ab = params["abdomen_half_width"]
    z_c = params["right_dome_z"] + 250
    y_c = float(spine_y(params, np.array([z_c]))[0]) - 10
    for side in (-1, 1):
        c, radii = (z_c, y_c, side * 0.5 * a_ab), (60.0, 8.0, 50.0)
        rotation = rotation_zyx(side * 0.7, 0.0)
        _paint_bone(canvas, np.subtract(c, 60), np.add(c, 60), ellipsoid(c, radii, rotation))
