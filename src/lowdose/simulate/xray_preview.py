"""A picture of what ``lowdose simulate xray`` makes: phantom slices and projections.

Top row: axial, coronal and sagittal slices of the first phantom (``mu``, 1/mm). Middle and
bottom rows: its clean and noisy projections at 0, 45 and 90 degrees, scaled as stored (divided
by the clean maximum). Transmission images are shown with a display gamma (stated in the figure)
because a linear grey scale leaves the body almost black; the data are not changed.
"""

from __future__ import annotations

import os

import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.phantoms.materials import Organ
from lowdose.physics.noise import add_poisson_transmission
from lowdose.simulate.xray import simulate_phantom_projections

PREVIEW_ANGLES_DEG = (0.0, 45.0, 90.0)
DISPLAY_GAMMA = 0.35


def phantom_seeds(seed: int, index: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(anatomy, noise) seeds of phantom ``index`` in a dataset built with ``seed``."""
    child = np.random.SeedSequence(seed).spawn(index + 1)[index]
    anatomy, noise = child.spawn(2)
    return anatomy, noise


def write_preview(
    path: str | os.PathLike,
    *,
    size: int,
    seed: int,
    photons_per_pixel: float,
    geometry: str = "parallel",
) -> None:
    """Render the montage of phantom 0 of a dataset to a PNG (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anatomy, noise = phantom_seeds(seed, 0)
    mu, labels, t = simulate_phantom_projections(
        size, PREVIEW_ANGLES_DEG, rng=np.random.default_rng(anatomy), geometry=geometry
    )
    scale = t.max(axis=(1, 2), keepdims=True)
    clean = t / scale
    noisy = add_poisson_transmission(t, photons_per_pixel, rng=np.random.default_rng(noise)) / scale
    fig, axes = plt.subplots(3, 3, figsize=(9, 9.6))
    for ax, (name, image) in zip(axes[0], _slices(mu, labels), strict=True):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=0.03, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    for row, (kind, stack) in enumerate((("clean", clean), ("noisy", noisy)), start=1):
        for ax, angle, image in zip(axes[row], PREVIEW_ANGLES_DEG, stack, strict=True):
            shown = np.clip(image, 0, None) ** DISPLAY_GAMMA
            ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"{kind} {angle:.0f} deg", fontsize=9)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(
        f"lowdose simulate xray: phantom 0 (seed {seed}), {size}^3, {geometry} beam, "
        f"{photons_per_pixel:.0f} photons/pixel\nslices: mu 0-0.03 /mm; projections: t / max(t), "
        f"display gamma {DISPLAY_GAMMA}",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
    plt.close(fig)


def _slices(mu: np.ndarray, labels: np.ndarray):

    # axial slice through the heart; coronal through the spinal canal's front; sagittal midline
    heart_z = np.nonzero((labels == Organ.HEART).any(axis=(1, 2)))[0]
    z = int(heart_z.mean()) if heart_z.size else mu.shape[0] // 2
    spine_y = np.nonzero((labels == Organ.SPINAL_CANAL).any(axis=(0, 2)))[0]
    y = int(spine_y.min()) - 2 if spine_y.size else mu.shape[1] // 2
    x = mu.shape[2] // 2
    return (
        ("axial (heart)", mu[z]),
        ("coronal", mu[:, max(y, 0)]),
        ("sagittal (midline)", mu[:, :, x]),
    )
