"""The volume phantoms are painted on, and the shape primitives they are painted with.

Every shape is painted inside its own bounding box (never a full-volume pass per organ) as a
soft membership ``f`` in [0, 1] from a signed distance in mm (positive inside): one voxel wide
partial-volume edges. Painting blends ``mu <- mu + f * (mu_organ - mu)`` and labels the voxels
where ``f > 0.5``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# (z, y, x) open coordinate grids in mm, each broadcastable to the box shape
Grids = tuple[np.ndarray, np.ndarray, np.ndarray]


class Canvas:
    """Attenuation ``mu`` (1/mm, float32) and ``labels`` (uint8) volumes of shape (Z, Y, X)."""

    def __init__(self, shape: tuple[int, int, int], voxel_mm: float):
        self.shape = shape
        self.voxel_mm = voxel_mm
        self.mu = np.zeros(shape, dtype=np.float32)
        self.labels = np.zeros(shape, dtype=np.uint8)
        # signed depth below the skin in mm (negative outside), set by the body painter
        self.body_depth_mm = np.full(shape, -1e3, dtype=np.float32)
        # voxel centres in mm from the volume centre, per axis
        self.axes_mm = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * voxel_mm for n in shape]

    def box(self, low_mm, high_mm) -> tuple[tuple[slice, ...], Grids] | None:
        """Index slices and open mm grids of the voxels inside [low, high] (z, y, x), or None."""
        slices, grids = [], []
        for axis, (lo, hi) in enumerate(zip(low_mm, high_mm, strict=True)):
            coords = self.axes_mm[axis]
            start = int(np.searchsorted(coords, lo - self.voxel_mm))
            stop = int(np.searchsorted(coords, hi + self.voxel_mm, side="right"))
            if stop <= start:
                return None
            slices.append(slice(start, stop))
            shape = [1, 1, 1]
            shape[axis] = stop - start
            grids.append(coords[start:stop].reshape(shape))
        return tuple(slices), (grids[0], grids[1], grids[2])

    def paint(
        self,
        low_mm,
        high_mm,
        signed_distance: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
        mu_value: float,
        label: int,
        *,
        where_label: tuple[int, ...] | None = None,
        inside_body_mm: float | None = None,
    ) -> None:
        """Blend a shape given by ``signed_distance(z, y, x)`` (mm, > 0 inside) into the box.

        ``where_label`` restricts painting to voxels that already carry one of those labels
        (e.g. lung vessels only inside the lungs); ``inside_body_mm`` clips the shape to at
        least that depth below the skin (organs stay inside the chest and abdominal walls).
        """
        found = self.box(low_mm, high_mm)
        if found is None:
            return
        index, grids = found
        distance = signed_distance(*grids)
        if inside_body_mm is not None:
            distance = np.minimum(distance, self.body_depth_mm[index] - inside_body_mm)
        fraction = np.broadcast_to(self.soft(distance), self.mu[index].shape)
        if where_label is not None:
            fraction = fraction * np.isin(self.labels[index], where_label)
        mu = self.mu[index]
        mu += fraction * (np.float32(mu_value) - mu)
        self.labels[index][fraction > 0.5] = label

    def soft(self, signed_distance_mm: np.ndarray) -> np.ndarray:
        """Partial-volume fraction in [0, 1]: 0.5 on the surface, one voxel wide ramp."""
        return np.clip(0.5 + signed_distance_mm / self.voxel_mm, 0.0, 1.0).astype(np.float32)

    def apply_texture(self, *, rng: np.random.Generator, amplitude: float, cell_mm: float) -> None:
        """Multiply ``mu`` by ``1 + amplitude * n`` with ``n`` smooth noise (unit std, ~cell_mm)."""
        coarse_shape = [max(2, int(round(n * self.voxel_mm / cell_mm)) + 2) for n in self.shape]
        import scipy.ndimage  # heavy (~0.5 s): only when a texture is painted

        noise = scipy.ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 0.7, mode="wrap")
        noise = ((noise - noise.mean()) / max(float(noise.std()), 1e-12)).astype(np.float32)
        # Separable linear upsampling, one small matrix product per axis; only the last one
        # (along x, contiguous) is full size: ~10x faster than scipy.ndimage.zoom(order=1) here.
        (n_z, n_y, n_x), (c_z, c_y, c_x) = self.shape, noise.shape
        noise = (_linear_upsampling(c_z, n_z) @ noise.reshape(c_z, -1)).reshape(n_z, c_y, c_x)
        noise = np.matmul(_linear_upsampling(c_y, n_y)[None], noise)  # (Z, Y, c_x)
        noise = noise.reshape(-1, c_x) @ (np.float32(amplitude) * _linear_upsampling(c_x, n_x).T)
        noise += 1
        self.mu *= noise.reshape(self.shape)


def _linear_upsampling(n_coarse: int, n_fine: int) -> np.ndarray:
    """(n_fine, n_coarse) float32 matrix of linear interpolation, end points aligned."""
    position = np.linspace(0, n_coarse - 1, n_fine)
    lower = np.minimum(np.floor(position).astype(int), n_coarse - 2)
    frac = position - lower
    matrix = np.zeros((n_fine, n_coarse), dtype=np.float32)
    matrix[np.arange(n_fine), lower] = 1 - frac
    matrix[np.arange(n_fine), lower + 1] = frac
    return matrix


def ellipsoid(centre, radii, rotation: np.ndarray | None = None):
    """Signed distance (approximate, mm) of an ellipsoid; ``rotation`` maps world to body axes."""
    cz, cy, cx = centre

    def distance(z, y, x):
        local = [z - cz, y - cy, x - cx]
        if rotation is not None:
            local = [sum(rotation[i][j] * local[j] for j in range(3)) for i in range(3)]
        rho2 = sum((c / r) ** 2 for c, r in zip(local, radii, strict=True))
        grad = np.sqrt(sum((c / r**2) ** 2 for c, r in zip(local, radii, strict=True)))
        rho = np.sqrt(rho2)
        # first-order distance to the surface: (1 - rho) / |grad rho|
        return (1 - rho) * rho / np.maximum(grad, 1e-9)

    return distance


def paint_tube(
    canvas: Canvas,
    points_mm,
    radii_mm,
    mu_value: float,
    label: int,
    *,
    where_label: tuple[int, ...] | None = None,
) -> None:
    """Paint a tube along a polyline (K, 3) of (z, y, x) mm with radii (K,), segment by segment.

    Each segment is painted in its own bounding box; overlapping joints blend to the same value.
    """
    points = np.asarray(points_mm, dtype=np.float32)
    radii = np.asarray(radii_mm, dtype=np.float32)
    for k in range(len(points) - 1):
        p0, p1, r0, r1 = points[k], points[k + 1], radii[k], radii[k + 1]
        reach = max(r0, r1)

        def distance(z, y, x, p0=p0, p1=p1, r0=r0, r1=r1):
            return _segment_distance(z, y, x, p0, p1, r0, r1)

        canvas.paint(
            np.minimum(p0, p1) - reach,
            np.maximum(p0, p1) + reach,
            distance,
            mu_value,
            label,
            where_label=where_label,
        )


def _segment_distance(z, y, x, p0, p1, r0, r1):
    direction = p1 - p0
    length2 = max(float(direction @ direction), 1e-9)
    rel = (z - p0[0], y - p0[1], x - p0[2])
    along = rel[0] * direction[0] + rel[1] * direction[1] + rel[2] * direction[2]
    t = np.clip(along / length2, 0, 1)
    dist = np.sqrt(sum((rel[i] - t * direction[i]) ** 2 for i in range(3)))
    return r0 + (r1 - r0) * t - dist


def rotation_zyx(yaw: float, pitch: float) -> np.ndarray:
    """Rotation (3, 3) in (z, y, x) order: ``yaw`` about z, then ``pitch`` about y (radians)."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    about_z = np.array([[1, 0, 0], [0, cy, -sy], [0, sy, cy]])
    about_y = np.array([[cp, 0, -sp], [0, 1, 0], [sp, 0, cp]])
    return about_y @ about_z
