"""CT noise on HU slices: the paper's AWGN, and sinogram Poisson noise reconstructed by FBP.

Scale (the paper's CT rule): ``scaled = max(HU + 1024, 0) / data_max`` with ``data_max`` the
maximum of ``max(HU + 1024, 0)`` over the whole dataset; noise is added on that scale and PSNR is
measured with ``data_range = 1``. Noisy images are not clipped (values may fall below 0).

Sinogram model, per slice (parallel beam, :mod:`lowdose.physics.projection`):

1. ``mu = mu_water * max(1 + HU / 1000, 0)`` in 1/mm (``mu_water`` = 0.0192/mm, water at ~70 keV),
   times the pixel size in mm, so the Radon transform gives dimensionless line integrals ``p``;
2. counts ``~ Poisson(I0 * exp(-p))``, zero counts replaced by 0.5, ``p_noisy = -log(counts / I0)``
   (:func:`lowdose.physics.noise.add_poisson_sinogram`);
3. filtered back-projection (Hann-windowed ramp by default) and back to HU and to the scale.

The noise comes out spatially correlated with streaks along paths of low counts (through bone and
the widest parts of the body), as in real CT; AWGN is white.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lowdose.core.metrics import psnr
from lowdose.physics.noise import add_poisson_sinogram
from lowdose.physics.radon import fbp_2d, radon_2d

HU_OFFSET = 1024.0
MU_WATER_PER_MM = 0.0192
HU_WINDOW = (-1000.0, 1000.0)
DEFAULT_PIXEL_MM = 0.75
_SWEEP_SOLVE_SLICES = 32  # slices the sweep's I0 search runs on (the sweep uses <= 20)
_CACHEABLE_VIEW_PIXELS = 12_000_000  # views x pixels per angle group (see angle_groups)


def to_scale(hu, data_max: float) -> np.ndarray:
    """HU -> the dataset scale: ``max(HU + 1024, 0) / data_max`` (float32, clean images)."""
    return (np.maximum(np.asarray(hu, np.float64) + HU_OFFSET, 0.0) / data_max).astype(np.float32)


def from_scale(scaled, data_max: float) -> np.ndarray:
    """The dataset scale -> HU: ``scaled * data_max - 1024`` (float32)."""
    return (np.asarray(scaled, np.float64) * data_max - HU_OFFSET).astype(np.float32)


def views_for(size: int) -> np.ndarray:
    """Projection angles in degrees: 720 over 180 degrees at 512^2, in proportion to the size."""
    n_views = max(90, int(round(720 * size / 512)))
    return np.arange(n_views) * (180.0 / n_views)


def psnr_hu_window(clean_hu, noisy_hu, window=HU_WINDOW) -> np.ndarray:
    """PSNR in an HU window: both images clipped to ``window``, data_range = its width (dB).

    Parameters
    ----------
    clean_hu, noisy_hu : array_like (B, H, W) or (H, W)
        HU images.
    window : (low, high)
        Display window in HU (default -1000..1000, data range 2000).
    """
    low, high = window
    return psnr(np.clip(clean_hu, low, high), np.clip(noisy_hu, low, high), data_range=high - low)


def angle_groups(angles_deg, size: int) -> list[np.ndarray]:
    """Split angles into groups whose sparse matrices stay in :mod:`lowdose.physics.radon`'s cache.

    Why: that module caches a geometry's matrix only below ~40 M entries (~2.5 per pixel and
    view); 360 views of 256^2 exceed it, so every call rebuilt the matrices (~1 s per 60 views),
    which took ~85 % of a sinogram build. Two groups of 180 views are each cached (its cache holds
    4 geometries), and projection and FBP are exact sums over angle groups.
    """
    angles = np.asarray(angles_deg, np.float64)
    per_group = max(1, _CACHEABLE_VIEW_PIXELS // (size * size))
    return np.array_split(angles, -(-len(angles) // per_group))


def line_integrals(hu, pixel_mm, angles_deg, *, mu_water_per_mm=MU_WATER_PER_MM) -> np.ndarray:
    """Noise-free sinograms of HU slices.

    Parameters
    ----------
    hu : ndarray (B, H, W)
        Slices in HU.
    pixel_mm : array_like (B,)
        Pixel size of each slice in mm.
    angles_deg : ndarray (A,)

    Returns
    -------
    ndarray (B, A, D) float32
        Dimensionless line integrals ``p >= 0``.
    """
    mu_mm = mu_water_per_mm * np.maximum(1.0 + np.asarray(hu, np.float64) / 1000.0, 0.0)
    mu_pixel = (mu_mm * np.asarray(pixel_mm, np.float64)[:, None, None]).astype(np.float32)
    groups = angle_groups(angles_deg, mu_pixel.shape[-1])
    sinograms = np.concatenate([radon_2d(mu_pixel, group) for group in groups], axis=1)
    return np.maximum(sinograms, 0.0)  # interpolation round-off can dip below zero


def fbp_mu_pixel(sinograms, angles_deg, *, size: int, filter_name: str = "hann") -> np.ndarray:
    """FBP (B, A, D) -> (B, size, size) float32 by angle groups (:func:`angle_groups`).

    ``fbp_2d`` normalises by its own number of views, so the full FBP is the view-weighted mean
    of the group FBPs.
    """
    sinograms = np.asarray(sinograms, np.float32)
    image, start = np.zeros((len(sinograms), size, size), np.float32), 0
    for group in angle_groups(angles_deg, size):
        part = sinograms[:, start : start + len(group)]
        image += (len(group) / sinograms.shape[1]) * fbp_2d(
            part, group, output_size=size, filter_name=filter_name
        )
        start += len(group)
    return image


def reconstruct_hu(
    sinograms, pixel_mm, angles_deg, *, size, filter_name="hann", mu_water_per_mm=MU_WATER_PER_MM
) -> np.ndarray:
    """FBP of line-integral sinograms (B, A, D) back to HU slices (B, size, size) float32."""
    mu_pixel = fbp_mu_pixel(sinograms, angles_deg, size=size, filter_name=filter_name)
    mu_mm = mu_pixel / np.asarray(pixel_mm, np.float32)[:, None, None]
    return (1000.0 * (mu_mm / mu_water_per_mm - 1.0)).astype(np.float32)


def sinogram_noisy_hu(
    sinograms,
    pixel_mm,
    angles_deg,
    i0_photons: float,
    *,
    rngs,
    size: int,
    filter_name: str = "hann",
    mu_water_per_mm: float = MU_WATER_PER_MM,
) -> np.ndarray:
    """Poisson noise on each sinogram at ``i0_photons``, reconstructed to HU.

    Parameters
    ----------
    sinograms : ndarray (B, A, D)
        Noise-free line integrals from :func:`line_integrals`.
    rngs : sequence of numpy.random.Generator, length B
        One generator per slice (so results do not depend on how slices are batched).

    Returns
    -------
    ndarray (B, size, size) float32 HU
    """
    pairs = zip(sinograms, rngs, strict=True)
    noisy = np.stack([add_poisson_sinogram(s, i0_photons, rng=rng) for s, rng in pairs])
    return reconstruct_hu(
        noisy, pixel_mm, angles_deg, size=size, filter_name=filter_name,
        mu_water_per_mm=mu_water_per_mm,
    )  # fmt: skip


def solve_i0_for_psnr(
    psnr_at_i0, target_psnr_db: float, *, start: float = 2.5e4, tol_db: float = 0.02
) -> tuple[float, float]:
    """I0 whose measured PSNR meets the target, by log-linear steps then bisection.

    Image noise variance scales as ``1 / I0`` away from photon starvation, so PSNR rises
    ~10 dB per decade: each step multiplies I0 by ``10 ** ((target - psnr) / 10)``. If that does
    not converge in 6 steps (starvation, or a bias that caps the PSNR), the last two levels
    bracket a bisection in log I0.

    Parameters
    ----------
    psnr_at_i0 : callable float -> float
        Deterministic (seeded) mean PSNR at a level, increasing with I0.

    Returns
    -------
    (i0_photons, psnr_db)
    """
    i0, history = float(start), []
    for _ in range(6):
        value = psnr_at_i0(i0)
        history.append((i0, value))
        if abs(value - target_psnr_db) <= tol_db:
            return i0, value
        i0 *= 10.0 ** (np.clip(target_psnr_db - value, -20.0, 20.0) / 10.0)
    below = [level for level, value in history if value < target_psnr_db]
    above = [level for level, value in history if value > target_psnr_db]
    low = max(below) if below else min(level for level, _ in history) / 100.0
    high = min(above) if above else max(level for level, _ in history) * 100.0
    for _ in range(40):
        mid = float(np.sqrt(low * high))
        value = psnr_at_i0(mid)
        if abs(value - target_psnr_db) <= tol_db or high / low < 1.0001:
            return mid, value
        low, high = (mid, high) if value < target_psnr_db else (low, mid)
    return mid, value


def neighbour_correlation(noise) -> float:
    """Mean correlation of horizontally and vertically adjacent pixels of noise images.

    Parameters
    ----------
    noise : array_like (..., H, W)
        ``noisy - clean``; white noise gives ~0, FBP noise with a Hann filter clearly > 0.
    """
    values = np.asarray(noise, np.float64).reshape(-1, *np.shape(noise)[-2:])
    values = values - values.mean(axis=(1, 2), keepdims=True)
    pairs = [(values[:, :, :-1], values[:, :, 1:]), (values[:, :-1, :], values[:, 1:, :])]
    coefficients = [np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)) for a, b in pairs]
    return float(np.mean(coefficients))


def sinogram_sweep_model(attrs: dict):
    """The sweep's sinogram noise model for a CT dataset: ``(noise_function, solver)``.

    ``noise_function(clean (I, H, W) float32, scale (I,), i0, rng) -> noisy (I, H, W) float32``:
    the clean scaled slices go back to HU (``clean * scale - 1024``), are projected with the
    dataset's geometry (attrs ``views``, ``pixel_mm_mean``, ``filter_name``, ``mu_water_per_mm``),
    Poisson noise is drawn at ``I0 = i0`` and ``FBP(noisy) - FBP(clean)`` is added to the clean
    slice. Adding only the reconstructed noise keeps the sweep free of the FBP blur of the clean
    slice, so a 50 dB input is reachable; the noise is the same correlated, streaky FBP noise.
    ``solver(clean, scale, target_db) -> i0``: the I0 whose seeded draws give a mean PSNR
    (data_range 1 on the dataset scale) within 0.02 dB of the target on up to 32 of the slices
    (a subset of 8 of 13 TCGA slices missed by up to 1 dB). Below ~10 dB (TCGA, data_range 1)
    no I0 reaches the target: at vanishing counts FBP erases the image rather than adding noise.
    Clean sinograms are cached between calls for the last clean stack (the sweep calls both at
    every level).
    """
    views = int(attrs.get("views", 0)) or None
    pixel_mm = float(attrs.get("pixel_mm_mean", DEFAULT_PIXEL_MM))
    filter_name = str(attrs.get("filter_name", "hann"))
    mu_water = float(attrs.get("mu_water_per_mm", MU_WATER_PER_MM))
    cache: dict = {}

    def sinograms_of(clean, scale) -> tuple[np.ndarray, np.ndarray]:
        clean, scale = np.asarray(clean, np.float32), np.asarray(scale, np.float64)
        key = hashlib.sha1(clean.tobytes() + scale.tobytes()).hexdigest()
        if key not in cache:
            size = clean.shape[-1]
            angles = views_for(size) if views is None else np.arange(views) * (180.0 / views)
            hu = clean * scale[:, None, None] - HU_OFFSET
            sinograms = line_integrals(hu, np.full(len(clean), pixel_mm), angles,
                                       mu_water_per_mm=mu_water)  # fmt: skip
            cache.clear()  # one stack at a time: a 20-slice 256^2 stack is ~20 MB of sinograms
            cache[key] = (sinograms, angles)
        return cache[key]

    def noisy_from(clean, scale, sinograms, angles, i0, rng) -> np.ndarray:
        noise_p = np.stack([add_poisson_sinogram(s, i0, rng=rng) - s for s in sinograms])
        noise_mu = fbp_mu_pixel(noise_p, angles, size=clean.shape[-1], filter_name=filter_name)
        noise_hu = 1000.0 * noise_mu / (pixel_mm * mu_water)  # (I, H, W)
        return (clean + noise_hu / np.asarray(scale)[:, None, None]).astype(np.float32)

    def noise_function(clean, scale, i0, rng):
        return noisy_from(clean, scale, *sinograms_of(clean, scale), i0, rng)

    def solver(clean, scale, target_db):
        sinograms, angles = sinograms_of(clean, scale)  # the whole stack: noise_function's entry
        n_pick = min(_SWEEP_SOLVE_SLICES, len(clean))
        pick = np.unique(np.linspace(0, len(clean) - 1, n_pick).astype(int))
        sub_clean, sub_scale = np.asarray(clean, np.float32)[pick], np.asarray(scale)[pick]

        def psnr_at(i0: float) -> float:
            rng = np.random.default_rng([0, 13])
            noisy = noisy_from(sub_clean, sub_scale, sinograms[pick], angles, i0, rng)
            return float(np.mean(psnr(sub_clean, noisy, data_range=1.0)))

        return solve_i0_for_psnr(psnr_at, float(target_db))[0]

    return noise_function, solver
