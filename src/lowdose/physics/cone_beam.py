"""Cone-beam (flat panel, circular orbit about z) line integrals of attenuation volumes.

Geometry and conventions as :mod:`lowdose.physics.projection`. Each ray is sampled once per voxel of
depth along the central ray (X samples per ray). The work is split in two separable steps per view:
an in-plane fan resampling of all z slices at once by a sparse bilinear matrix (the fan's
sample points do not depend on z), then linear interpolation along z, whose position depends only
on the depth and the detector row (the cone's magnification). That is ~0.15 s per view at 256^3
on one core, where a trilinear ``grid_sample`` ray march took ~1.7 s per view.
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.projection import check_volume
from lowdose.physics.ray_matrix import bilinear_rows


def cone_projection(
    mu: np.ndarray,
    angles_deg,
    *,
    voxel_mm: float,
    source_iso_mm: float = 750.0,
    source_detector_mm: float = 1200.0,
    detector_shape: tuple[int, int] | None = None,
    detector_pixel_mm: float | None = None,
) -> np.ndarray:
    """Cone-beam line integrals on a flat panel (C-arm geometry).

    Parameters
    ----------
    mu
        (Z, Y, X) attenuation in 1/mm with Y == X; not modified. The object must lie inside the
        cylinder inscribed in the volume.
    angles_deg
        (A,) view angles in degrees.
    voxel_mm
        Voxel edge length in mm.
    source_iso_mm, source_detector_mm
        Source-to-isocentre and source-to-detector distances (defaults: a clinical C-arm,
        750 mm and 1200 mm, magnification 1.6).
    detector_shape
        (rows, cols) of the panel; default (Z, X).
    detector_pixel_mm
        Panel pixel pitch; default ``voxel_mm`` x magnification, so the isocentre plane is
        sampled at the voxel pitch as in :func:`lowdose.physics.projection.parallel_projection`.

    Returns
    -------
    numpy.ndarray
        (A, rows, cols) float32 line integrals (dimensionless).
    """

    volume = check_volume(mu, voxel_mm)
    if not 0 < source_iso_mm < source_detector_mm:
        raise LowdoseInputError(
            f"source_iso_mm={source_iso_mm}, source_detector_mm={source_detector_mm}: "
            "need 0 < source-to-isocentre < source-to-detector"
        )
    n_z, _, width = volume.shape
    rows, cols = detector_shape or (n_z, width)
    magnification = source_detector_mm / source_iso_mm
    pitch_vox = (detector_pixel_mm or voxel_mm * magnification) / magnification / voxel_mm
    source_iso = source_iso_mm / voxel_mm  # in voxels
    u_iso = (np.arange(cols) - cols // 2) * pitch_vox / source_iso  # fan slope per column
    v_iso = (np.arange(rows) - rows // 2) * pitch_vox / source_iso  # cone slope per row
    depth = source_iso + np.arange(width) - width // 2  # distance from the source, (S,)
    z_interp = _z_weights(depth[:, None] * v_iso[None, :] + n_z // 2, n_z)
    length_per_step = np.sqrt(1 + u_iso[None, :] ** 2 + v_iso[:, None] ** 2).astype(np.float32)
    slices = np.ascontiguousarray(volume.reshape(n_z, -1).T, dtype=np.float32)  # (Y*X, Z)
    theta_all = np.deg2rad(np.asarray(angles_deg, dtype=np.float64).ravel())
    out = np.empty((theta_all.size, rows, cols), dtype=np.float32)
    for index, theta in enumerate(theta_all):
        fan = _fan_matrix(theta, depth, u_iso, source_iso, volume.shape[1:])
        planes = np.ascontiguousarray((fan @ slices).T).reshape(n_z, len(depth), cols)
        out[index] = _interpolate_z(planes, *z_interp) * length_per_step * np.float32(voxel_mm)
    return out


def _fan_matrix(theta, depth, u_iso, source_iso, shape_hw):
    # In-plane sample points of every ray: source + depth * (axis + u * across), (S, cols).
    height, width = shape_hw
    sin, cos = np.sin(theta), np.cos(theta)
    x = width // 2 - source_iso * sin + depth[:, None] * (sin + u_iso[None, :] * cos)
    y = height // 2 - source_iso * cos + depth[:, None] * (cos - u_iso[None, :] * sin)
    return bilinear_rows(x.reshape(-1, 1), y.reshape(-1, 1), shape_hw)


def _z_weights(z: np.ndarray, n_z: int):
    # Linear interpolation along z at positions z (S, rows), zero outside the volume; returned
    # transposed to (rows, S) for the gather in _interpolate_z.
    z0 = np.floor(z)
    frac = (z - z0).astype(np.float32)
    lower, upper = z0.astype(np.int64), z0.astype(np.int64) + 1
    w_lower = np.where((lower >= 0) & (lower < n_z), 1 - frac, 0).astype(np.float32)
    w_upper = np.where((upper >= 0) & (upper < n_z), frac, 0).astype(np.float32)
    lower, upper = np.clip(lower, 0, n_z - 1), np.clip(upper, 0, n_z - 1)
    return lower.T, upper.T, w_lower.T[..., None], w_upper.T[..., None]


def _interpolate_z(planes, lower, upper, w_lower, w_upper) -> np.ndarray:
    # planes (Z, S, cols): each gathered element is a contiguous row of detector columns.
    depth = np.arange(planes.shape[1])[None, :]
    line = np.einsum("rsc,rsk->rc", planes[lower, depth], w_lower)  # (rows, cols)
    line += np.einsum("rsc,rsk->rc", planes[upper, depth], w_upper)
    return line
