"""Soft-tissue anatomy of the torso phantom: body wall, arms, lungs, heart, vessels, abdomen.

Positions are mm from the volume centre (x to the patient's left, y posterior, z inferior) and
derive from the draws of :func:`lowdose.phantoms.torso.draw_anatomy`; see that module for the table.
"""

from __future__ import annotations

import numpy as np

from lowdose.phantoms.canvas import Canvas, ellipsoid, paint_tube, rotation_zyx
from lowdose.phantoms.materials import MU_PER_MM, Organ

MU = MU_PER_MM
_EXPONENT = 2.4  # superellipse: a torso cross-section is between an ellipse and a rectangle


def body_profile(params: dict, z_mm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Half-width ``a``, half-depth ``b`` and centre ``yc`` (mm) of the body at heights ``z_mm``."""
    sh, neck = params["shoulder_z"], params["neck_radius"]
    a_ch, b_ch = params["chest_half_width"], params["chest_half_depth"]
    a_ab, b_ab = params["abdomen_half_width"], params["abdomen_half_depth"]
    waist = params["right_dome_z"] + 110
    keys = [-1e4, sh - 30, sh + 5, sh + 50, waist - 60, waist, 1e4]
    a = np.interp(z_mm, keys, [neck, neck, 0.8 * a_ch, a_ch, 0.97 * a_ch, a_ab, 1.03 * a_ab])
    b = np.interp(z_mm, keys, [neck, neck, 0.8 * b_ch, b_ch, b_ch, b_ab, 0.95 * b_ab])
    yc = np.interp(z_mm, keys, [15.0, 15.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    return a, b, yc


def spine_y(params: dict, z_mm: np.ndarray) -> np.ndarray:
    """y (mm) of the vertebral-body centres: behind the viscera, ~75 mm in front of the back."""
    a, b, yc = body_profile(params, z_mm)
    return np.maximum(yc + b - params["fat_thickness"] - 75.0, yc + 0.15 * b)


def paint_body(canvas: Canvas, params: dict) -> None:
    """Skin outline with subcutaneous fat, a muscle layer and soft-tissue filling; arms."""
    z, y, x = canvas.axes_mm
    a, b, yc = (v.astype(np.float32)[:, None, None] for v in body_profile(params, z))
    # Work only in the body's bounding box: the full volume is mostly air.
    rows = np.nonzero(np.abs(y) <= float((b + np.abs(yc)).max()) + canvas.voxel_mm)[0]
    cols = np.nonzero(np.abs(x) <= float(a.max()) + canvas.voxel_mm)[0]
    index = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    y, x = y[index[1]], x[index[2]]
    dy = np.abs(y[None, :, None] - yc)  # (Z, Y, 1)
    rho_p = (np.abs(x)[None, None, :] / a) ** _EXPONENT + (dy / b) ** _EXPONENT
    rho = np.maximum(rho_p ** np.float32(1 / _EXPONENT), np.float32(1e-6))
    # depth below the skin along the ray from the centre: (1 - rho) * |p| / rho
    depth = (1 - rho) / rho
    depth *= np.sqrt(dy**2 + x[None, None, :] ** 2)
    canvas.body_depth_mm[index] = depth
    # mu and label as functions of depth: air | fat | muscle | soft tissue, one-voxel ramps
    fat, muscle, half = params["fat_thickness"], params["muscle_thickness"], canvas.voxel_mm / 2
    steps = [0.0, fat, fat + muscle]
    values = [MU["air"], MU["fat"], MU["muscle"], MU["soft"]]
    knots = [k for step in steps for k in (step - half, step + half)]
    levels = [v for pair in zip(values[:-1], values[1:], strict=True) for v in pair]
    canvas.mu[index] = np.interp(depth, knots, levels).astype(np.float32)
    table = np.array([Organ.AIR, Organ.FAT, Organ.MUSCLE, Organ.SOFT_TISSUE], dtype=np.uint8)
    canvas.labels[index] = table[np.digitize(depth, steps)]
    if params["arms"]:
        _paint_arms(canvas, params)


def arm_polyline(canvas: Canvas, params: dict, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre line (K, 3) in (z, y, x) mm and radii (K,) of one arm hanging beside the body."""
    half_fov = min(canvas.shape[1:]) * canvas.voxel_mm / 2
    r_arm, a_ch, sh = params["arm_radius"], params["chest_half_width"], params["shoulder_z"]
    x_arm = min(a_ch + r_arm - 8, half_fov - r_arm - 6)
    points = [
        (sh + 15, 0.0, side * (a_ch - 25)),
        (sh + 45, 5.0, side * x_arm),
        (sh + 300, 15.0, side * (x_arm + 4)),
        (sh + 560, 0.0, side * (x_arm + 2)),
    ]
    return np.array(points), np.array([0.8, 1.0, 0.8, 0.65]) * r_arm


def _paint_arms(canvas: Canvas, params: dict) -> None:
    for side in (-1, 1):
        points, radii = arm_polyline(canvas, params, side)
        paint_tube(canvas, points, radii, MU["fat"], Organ.FAT)
        paint_tube(
            canvas, points, radii - 0.6 * params["fat_thickness"], MU["muscle"], Organ.MUSCLE
        )


def diaphragm_z(params: dict, y, x) -> np.ndarray:
    """z (mm) of the diaphragm under each lung: a dome, highest at its peak, lower at the edges."""
    a_ch, b_ch = params["chest_half_width"], params["chest_half_depth"]
    right = params["right_dome_z"]
    peak = np.where(x < 0, right, right + params["left_dome_drop"])
    return peak + params["dome_height"] * (
        ((np.abs(x) - 0.45 * a_ch) / (0.5 * a_ch)) ** 2 + ((y - 10) / (0.8 * b_ch)) ** 2
    )


def paint_organs(canvas: Canvas, params: dict, *, rng: np.random.Generator) -> None:
    """Lungs with vessel trees, liver, stomach with gas, kidneys, bowel gas, heart, aorta."""
    wall = params["fat_thickness"] + params["muscle_thickness"] + 4
    _paint_lungs(canvas, params, wall, rng)
    _paint_abdomen(canvas, params, wall, rng)
    _paint_heart_and_aorta(canvas, params, rng)


def _paint_lungs(canvas: Canvas, params: dict, wall: float, rng: np.random.Generator) -> None:
    a_ch, b_ch = params["chest_half_width"], params["chest_half_depth"]
    apex = params["shoulder_z"] + rng.uniform(5, 25)
    bottom = params["right_dome_z"] + params["left_dome_drop"] + params["dome_height"] + 10
    for side in (-1, 1):
        # widest at the base, tapering to the apex; the dome cuts the bottom
        centre = (bottom - 20, 8.0, side * 0.45 * a_ch)
        radii = (bottom - 20 - apex, 0.85 * b_ch, 0.5 * a_ch)
        shape = ellipsoid(centre, radii)

        def distance(z, y, x, shape=shape):
            return np.minimum(shape(z, y, x), diaphragm_z(params, y, x) - z)

        low = np.subtract(centre, radii)
        canvas.paint(
            low, np.add(centre, radii), distance, MU["lung"], Organ.LUNG, inside_body_mm=wall
        )
        hilum = np.array([params["right_dome_z"] - 95, 15.0, side * 30.0])
        for (p0, p1, radii_mm), _ in _vessel_tree(hilum, side, rng):
            paint_tube(
                canvas,
                np.stack([p0, p1]),
                radii_mm,
                MU["blood"],
                Organ.LUNG_VESSEL,
                where_label=(Organ.LUNG, Organ.LUNG_VESSEL),
            )


def _vessel_tree(hilum: np.ndarray, side: int, rng: np.random.Generator, generations: int = 7):
    """Segments ((p0, p1, radii), direction) of a random branching tree from the hilum."""
    stems = [
        np.array(d, dtype=float)
        for d in ((-1.0, 0.0, side * 0.6), (0.2, 0.1, side), (1.0, 0.2, side * 0.4))
    ]
    front = [(hilum, d / np.linalg.norm(d), 9.0, 50.0) for d in stems]
    for _ in range(generations):
        children = []
        for start, direction, radius, length in front:
            jitter = rng.normal(0, 0.25, 3)
            heading = direction + jitter
            heading /= np.linalg.norm(heading)
            end = start + heading * length * rng.uniform(0.8, 1.2)
            yield (start, end, np.array([radius, radius * 0.85])), heading
            for turn in (-1, 1):
                branch = heading + turn * rng.uniform(0.3, 0.6) * _perpendicular(heading, rng)
                children.append(
                    (end, branch / np.linalg.norm(branch), radius * 0.72, length * 0.78)
                )
        front = children


def _perpendicular(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    other = rng.normal(size=3)
    other -= other @ direction * direction
    return other / max(np.linalg.norm(other), 1e-9)


def _paint_abdomen(canvas: Canvas, params: dict, wall: float, rng: np.random.Generator) -> None:
    a_ab, b_ab = params["abdomen_half_width"], params["abdomen_half_depth"]
    right_peak = params["right_dome_z"]
    left_peak = right_peak + params["left_dome_drop"]
    below_dome = lambda y, x, z: z - diaphragm_z(params, y, x) - 4  # noqa: E731
    # liver: under the right dome, reaching across the midline
    h = params["liver_height"]
    centre, radii = (
        (right_peak + h / 2 - 5, 0.0, -0.3 * a_ab),
        (h / 2 + 15, 0.8 * b_ab, 0.62 * a_ab),
    )
    liver = ellipsoid(centre, radii)
    canvas.paint(
        np.subtract(centre, radii),
        np.add(centre, radii),
        lambda z, y, x: np.minimum(liver(z, y, x), below_dome(y, x, z)),
        MU["liver"],
        Organ.LIVER,
        inside_body_mm=wall,
    )
    # stomach: left upper quadrant, fluid with a gas cap anteriorly (patient supine)
    r = params["stomach_radius"]
    centre, radii = (left_peak + 20 + r, -0.2 * b_ab, 0.42 * a_ab), (1.4 * r, r, 1.1 * r)
    stomach = ellipsoid(centre, radii, rotation_zyx(0.0, rng.uniform(-0.5, -0.2)))
    box = (np.subtract(centre, 1.4 * r), np.add(centre, 1.4 * r))
    canvas.paint(
        *box,
        lambda z, y, x: np.minimum(stomach(z, y, x), below_dome(y, x, z)),
        MU["water"],
        Organ.STOMACH,
        inside_body_mm=wall,
    )
    level = centre[1] - rng.uniform(0.2, 0.6) * r
    canvas.paint(
        *box,
        lambda z, y, x: np.minimum(stomach(z, y, x) - 2, level - y),
        MU["air"],
        Organ.STOMACH_AIR,
        where_label=(Organ.STOMACH,),
    )
    _paint_kidneys(canvas, params, rng)
    for _ in range(int(rng.integers(6, 14))):  # bowel gas pockets in the lower abdomen
        c = (
            rng.uniform(right_peak + 150, 250),
            rng.uniform(-0.6, 0.2) * b_ab,
            rng.uniform(-0.6, 0.6) * a_ab,
        )
        rr = rng.uniform(8, 22, size=3)
        canvas.paint(
            np.subtract(c, rr),
            np.add(c, rr),
            ellipsoid(c, rr),
            MU["air"],
            Organ.BOWEL_GAS,
            where_label=(Organ.SOFT_TISSUE,),
        )


def _paint_kidneys(canvas: Canvas, params: dict, rng: np.random.Generator) -> None:
    for side in (-1, 1):
        z_c = params["right_dome_z"] + 125 + (12 if side < 0 else 0) + rng.uniform(-10, 10)
        y_c = float(spine_y(params, np.array([z_c]))[0]) - 5
        centre = (z_c, y_c, side * params["kidney_x"])
        radii = (params["kidney_length_half"], 27.0, 24.0)
        shape = ellipsoid(centre, radii, rotation_zyx(side * 0.35, side * 0.15))
        reach = max(radii)
        canvas.paint(
            np.subtract(centre, reach), np.add(centre, reach), shape, MU["kidney"], Organ.KIDNEY
        )


def _paint_heart_and_aorta(canvas: Canvas, params: dict, rng: np.random.Generator) -> None:
    r, b_ch = params["heart_radius"], params["chest_half_depth"]
    left_peak = params["right_dome_z"] + params["left_dome_drop"]
    centre = (left_peak - 0.75 * r, -0.3 * b_ch, params["heart_x"])
    radii = (0.85 * r, 0.8 * r, 1.1 * r)
    rotation = rotation_zyx(rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5))
    reach = max(radii)
    canvas.paint(
        np.subtract(centre, reach),
        np.add(centre, reach),
        ellipsoid(centre, radii, rotation),
        MU["blood"],
        Organ.HEART,
    )
    ra = params["aorta_radius"]
    top = params["shoulder_z"] + rng.uniform(70, 95)
    spine_at = lambda z: float(spine_y(params, np.array([z]))[0])  # noqa: E731
    points = [
        (centre[0] - 0.4 * r, centre[1] + 10, centre[2] - 25),
        (top + 25, -15.0, -5.0),
        (top, spine_at(top) - 45, 12.0),
        (top + 40, spine_at(top + 40) - 32, 25.0),
        (left_peak + 20, spine_at(left_peak + 20) - 30, 22.0),
        (left_peak + 200, spine_at(left_peak + 200) - 32, 10.0),
    ]
    radii = np.array([1.0, 1.0, 0.95, 0.9, 0.85, 0.75]) * ra
    paint_tube(canvas, np.array(points), radii, MU["blood"], Organ.AORTA)
