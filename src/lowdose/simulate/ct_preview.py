"""A picture of the two CT noise models on one slice: clean, AWGN, sinogram noise, and the noise.

Top row: the clean slice and its AWGN and sinogram-noise versions, all at the same target PSNR
on the dataset scale, in the -1000..1000 HU window. Bottom row: the noise images (noisy - clean;
the sinogram's clean image is its noise-free FBP, as in the datasets) in a +-500 HU window, where
white AWGN and the correlated, streaky sinogram noise differ at a glance, and a panel of the
numbers.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.core.metrics import HU_WINDOW, psnr
from lowdose.data.scaling import hu_to_scaled, scaled_to_hu
from lowdose.physics.ct_noise import (
    angles_for,
    line_integrals,
    reconstruct_hu,
    sinogram_noisy_hu,
    solve_i0_for_psnr,
)
from lowdose.physics.noise import add_gaussian
from lowdose.physics.noise_levels import solve_sigma_for_psnr

NOISE_WINDOW_HU = 500.0


def preview_arrays(
    hu,
    pixel_mm: float,
    *,
    data_max: float,
    target_psnr_db: float,
    seed: int = 0,
    i0_photons: float | None = None,
    filter_name: str = "hann",
    views: int | None = None,
    electronic_noise_counts: float = 0.0,
) -> dict:
    """Clean, AWGN-noisy and sinogram-noisy HU versions of one slice at the same target PSNR.

    Parameters
    ----------
    hu : ndarray (H, W), H == W
        Clean slice in HU.
    pixel_mm : float
        Its pixel size in mm.
    data_max : float
        The dataset's scale divisor (``max(HU) + 1024`` of the dataset).
    i0_photons : float, optional
        Use this I0 (e.g. the dataset's); otherwise solved on this slice for the target.
    filter_name, views, electronic_noise_counts
        The dataset's FBP kernel, views over 180 degrees (default for the size) and read-out
        noise in counts (:func:`lowdose.physics.ct_noise.sinogram_noisy_hu`).

    Returns
    -------
    dict
        ``clean``, ``awgn``, ``sinogram`` (H, W) float32 HU; ``sigma_hu``, ``i0_photons``,
        ``psnr_awgn_db``, ``psnr_sinogram_db`` (data_range 1 on the dataset scale).
    """
    hu = np.asarray(hu, np.float32)
    clean = hu_to_scaled(hu, data_max, clip=True)
    sigma = solve_sigma_for_psnr(clean, target_psnr_db, data_range=1.0).level
    awgn = add_gaussian(clean, sigma, rng=np.random.default_rng([seed, 21]))
    angles = angles_for(hu.shape[-1], views)
    sinogram = line_integrals(hu[None], [pixel_mm], angles)

    def noisy_at(i0: float) -> np.ndarray:
        rngs = [np.random.default_rng([seed, 22])]
        noisy_hu = sinogram_noisy_hu(
            sinogram,
            [pixel_mm],
            angles,
            i0,
            rngs=rngs,
            size=hu.shape[-1],
            filter_name=filter_name,
            electronic_noise_counts=electronic_noise_counts,
        )
        return hu_to_scaled(noisy_hu[0], data_max)

    fbp_hu = reconstruct_hu(
        sinogram, [pixel_mm], angles, size=hu.shape[-1], filter_name=filter_name
    )[0]
    reference = hu_to_scaled(fbp_hu, data_max)
    if i0_photons is None:
        i0_photons, _ = solve_i0_for_psnr(
            lambda i0: psnr(reference, noisy_at(i0), data_range=1.0), target_psnr_db
        )
    sino_noisy = noisy_at(i0_photons)
    return {
        "clean": hu,
        "sinogram_reference": scaled_to_hu(reference, data_max),
        "awgn": scaled_to_hu(awgn, data_max),
        "sinogram": scaled_to_hu(sino_noisy, data_max),
        "sigma_hu": float(sigma * data_max),
        "i0_photons": float(i0_photons),
        "psnr_awgn_db": psnr(clean, awgn, data_range=1.0),
        "psnr_sinogram_db": psnr(reference, sino_noisy, data_range=1.0),
        "clean_reference": "fbp_noise_free",
        "filter_name": filter_name,
    }


def write_ct_preview(path: str | os.PathLike, arrays: dict, *, title: str = "") -> Path:
    """Draw :func:`preview_arrays` output as a 2 x 3 PNG panel (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image  # Pillow comes with matplotlib and imageio

    low, high = HU_WINDOW
    fig, axes = plt.subplots(2, 3, figsize=(9.0, 6.8), dpi=80)
    panels = [
        (arrays["clean"], "clean", (low, high)),
        (arrays["awgn"], f"AWGN  {arrays['psnr_awgn_db']:.2f} dB", (low, high)),
        (arrays["sinogram"], f"sinogram  {arrays['psnr_sinogram_db']:.2f} dB", (low, high)),
        (None, "", None),
        (arrays["awgn"] - arrays["clean"], "AWGN noise", (-NOISE_WINDOW_HU, NOISE_WINDOW_HU)),
        (
            arrays["sinogram"] - arrays["sinogram_reference"],
            "sinogram noise",
            (-NOISE_WINDOW_HU, NOISE_WINDOW_HU),
        ),
    ]
    for ax, (image, label, window) in zip(axes.ravel(), panels, strict=True):
        ax.set_axis_off()
        if image is not None:
            ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1])
            ax.set_title(label, fontsize=9)
    axes[1, 0].text(0.0, 0.5, _legend(arrays), fontsize=8, va="center", family="monospace")
    fig.suptitle(
        title or "CT noise models at the same PSNR (data_range 1, dataset max)", fontsize=10
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    buffer.seek(0)
    target = Path(path)
    with atomic_path(target) as tmp, Image.open(buffer) as image:
        # every panel is grey: 8-bit grayscale keeps the file ~3x smaller than matplotlib's RGBA
        image.convert("L").save(tmp, format="png", optimize=True)
    return target


def _legend(arrays: dict) -> str:
    return (
        f"images: window {HU_WINDOW[0]:.0f}..{HU_WINDOW[1]:.0f} HU\n"
        f"noise:  window +-{NOISE_WINDOW_HU:.0f} HU\n\n"
        f"AWGN sigma = {arrays['sigma_hu']:.0f} HU\n"
        f"sinogram I0 = {arrays['i0_photons']:.3g}\n"
        f"  photons per ray,\n  Poisson, {arrays['filter_name']} FBP\n"
        f"sinogram reference:\n  {arrays['clean_reference']}"
    )
