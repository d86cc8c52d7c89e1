"""X-ray projections of attenuation volumes: parallel beam (cone beam in its own module).

Volumes are ``(Z, Y, X)`` arrays of ``mu`` in 1/mm with cubic voxels of ``voxel_mm``; the gantry
rotates about the z axis through voxel ``(Z // 2, Y // 2, X // 2)``. At angle ``theta`` the rays
run along ``(sin theta, cos theta)`` in the ``(x, y)`` plane (at 0 degrees: along +y, front to
back for a phantom whose anterior side is low y) and detector columns run along
``(cos theta, -sin theta)``; detector rows are z. A projection is ``(A, rows, cols)`` of
dimensionless line integrals ``sum(mu * length)``; ``exp(-p)`` is the transmission.

Cone beam lives in :mod:`lowdose.physics.cone_beam`, the 2-D CT transforms
:func:`~lowdose.physics.radon.radon_2d` and :func:`~lowdose.physics.radon.fbp_2d` in
:mod:`lowdose.physics.radon`.
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.ray_matrix import project_stack


def projection_angles(n_angles: int = 63) -> np.ndarray:
    """``n_angles`` evenly spaced angles over 360 degrees, (K,) float64 in degrees (paper: 63)."""
    if int(n_angles) < 1:
        raise LowdoseInputError(f"n_angles={n_angles}: pass at least 1 projection angle")
    return np.arange(int(n_angles)) * (360.0 / int(n_angles))


def check_volume(mu: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Return ``mu`` as an array after checking it is a finite (Z, Y, X) volume with Y == X."""
    volume = np.asarray(mu)
    if volume.ndim != 3 or volume.shape[1] != volume.shape[2] or min(volume.shape) < 2:
        raise LowdoseInputError(
            f"volume has shape {volume.shape}: pass a (Z, Y, X) array with Y == X >= 2"
        )
    if not np.all(np.isfinite(volume)):
        raise LowdoseInputError("volume contains NaN or inf: pass finite mu values in 1/mm")
    if not voxel_mm > 0:
        raise LowdoseInputError(f"voxel_mm={voxel_mm}: pass the voxel edge length in mm (> 0)")
    return volume


def parallel_projection(mu: np.ndarray, angles_deg, *, voxel_mm: float) -> np.ndarray:
    """Parallel-beam line integrals of a volume, one detector row per z slice.

    A cached sparse system matrix per (slice shape, angles) projects all z slices at once
    (:func:`lowdose.physics.ray_matrix.parallel_matrix`): ~1 s to build once per process, ~0.8 s per
    256^3 volume at 63 views on one core. The detector has ``X`` columns at the voxel pitch, so
    the object must lie inside the cylinder inscribed in the volume (the phantoms do).

    Parameters
    ----------
    mu
        (Z, Y, X) attenuation in 1/mm with Y == X; not modified.
    angles_deg
        (A,) view angles in degrees, e.g. :func:`projection_angles`.
    voxel_mm
        Voxel edge length in mm.

    Returns
    -------
    numpy.ndarray
        (A, Z, X) float32 line integrals (dimensionless, >= 0 for mu >= 0).
    """
    volume = check_volume(mu, voxel_mm)
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64).ravel())
    width = volume.shape[2]
    sino = project_stack(volume, theta, n_det=width, n_steps=width)  # (A, Z, X)
    return sino * np.float32(voxel_mm)
