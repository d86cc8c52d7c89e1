"""CT sinogram noise on HU slices: line integrals, Poisson counts, FBP back to HU.

Everything here is in HU, line integrals and photons; the dataset scale (``(HU + 1024) / data_max``)
is :mod:`lowdose.data.scaling`'s, and the builders that use both are in :mod:`lowdose.simulate`.

Sinogram model, per slice (parallel beam, :mod:`lowdose.physics.radon`):

1. ``mu = mu_water * max(1 + HU / 1000, 0)`` in 1/mm (``mu_water`` = 0.0192/mm, water at ~70 keV),
   times the pixel size in mm, so the Radon transform gives dimensionless line integrals ``p``;
2. counts ``~ Poisson(I0 * exp(-p))`` (+ Gaussian electronic noise, optional), readings below 0.5
   replaced by 0.5, ``p_noisy = -log(counts / I0)`` (:func:`lowdose.physics.noise.
   add_poisson_sinogram`);
3. filtered back-projection (kernel: Hann-windowed ramp by default, ramp or Shepp-Logan;
   :data:`lowdose.physics.radon.FBP_FILTERS`) and back to HU: of all views, or of K interleaved
   view subsets of one scan (:func:`view_subset_hu`).

The mean of the noisy images is the FBP of the estimator's mean, whose bias against the noise-free
FBP (:func:`mean_bias_hu`) comes from :mod:`lowdose.physics.photon_starvation`.

The noise comes out spatially correlated with streaks along paths of low counts (through bone and
the widest parts of the body), as in real CT; AWGN is white.
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise import add_poisson_sinogram
from lowdose.physics.photon_starvation import post_log_bias
from lowdose.physics.radon import fbp_2d, radon_2d

MU_WATER_PER_MM = 0.0192
DEFAULT_PIXEL_MM = 0.75
_CACHEABLE_VIEW_PIXELS = 12_000_000  # views x pixels per angle group (see angle_groups)


def views_for(size: int) -> np.ndarray:
    """Projection angles in degrees: 720 over 180 degrees at 512^2, in proportion to the size."""
    n_views = max(90, int(round(720 * size / 512)))
    return np.arange(n_views) * (180.0 / n_views)


def angles_for(size: int, views: int | None = None) -> np.ndarray:
    """``views`` angles evenly over 180 degrees (default :func:`views_for` the size), in degrees."""
    return views_for(size) if views is None else np.arange(views) * (180.0 / views)


def angle_groups(angles_deg, size: int) -> list[np.ndarray]:
    """Split angles into groups whose sparse matrices stay cached.

    Why: :mod:`lowdose.physics.ray_matrix` (and the FBP of :mod:`lowdose.physics.radon`) cache a
    geometry's matrix only below ~40 M entries (~2.5 per pixel and view); 360 views of 256^2
    exceed it, so every call rebuilt the matrices (~1 s per 60 views), which took ~85 % of a
    sinogram build. Two groups of 180 views are each cached (the cache holds 4 geometries), and
    projection and FBP are exact sums over angle groups.
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


def view_subset_hu(
    sinograms,
    pixel_mm,
    angles_deg,
    subsets: int,
    *,
    size,
    filter_name="hann",
    mu_water_per_mm=MU_WATER_PER_MM,
) -> np.ndarray:
    """FBP of K interleaved view subsets of each sinogram, in HU: (B, A, D) -> (B, K, size, size).

    Subset ``k`` holds views ``k, k + K, k + 2K, ...`` (as :mod:`lowdose.owndata.split_sinogram`).
    Each FBP is normalised by its own number of views, so every subset image has the HU scale of
    the full FBP with about K times its noise variance, and (FBP being linear) the mean of the K
    images is the full-view FBP exactly when K divides the number of views.
    """
    sinograms, angles = np.asarray(sinograms, np.float32), np.asarray(angles_deg, np.float64)
    if isinstance(subsets, bool) or not isinstance(subsets, int | np.integer) or subsets < 2:
        raise LowdoseInputError(f"view_subsets={subsets!r} (--view-subsets): pass an integer >= 2")
    if len(angles) < 2 * subsets:
        raise LowdoseInputError(
            f"{len(angles)} views cannot be split {subsets} ways "
            "(--view-subsets): use fewer subsets or more --views"
        )
    images = [
        reconstruct_hu(
            sinograms[:, k::subsets],
            pixel_mm,
            angles[k::subsets],
            size=size,
            filter_name=filter_name,
            mu_water_per_mm=mu_water_per_mm,
        )
        for k in range(subsets)
    ]
    return np.stack(images, axis=1)


def mean_bias_hu(
    sinograms,
    pixel_mm,
    angles_deg,
    i0_photons: float,
    *,
    size: int,
    filter_name="hann",
    electronic_noise_counts: float = 0.0,
    mu_water_per_mm: float = MU_WATER_PER_MM,
) -> np.ndarray:
    """Exact bias of the mean noisy FBP against the noise-free FBP, in HU (B, size, size) float32.

    FBP is linear, so ``E[FBP(p_hat)] - FBP(p) = FBP(E[p_hat] - p)``, with the estimator's bias
    per bin from :func:`lowdose.physics.photon_starvation.post_log_bias` (Poisson pmf, electronic
    noise included). Positive where few photons arrive (the log of a small count overshoots),
    negative where almost none do (the zero-count floor caps ``p_hat``).

    Parameters
    ----------
    sinograms : ndarray (B, A, D)
        Noise-free line integrals from :func:`line_integrals`.
    pixel_mm : array_like (B,)
    i0_photons : float
        Unattenuated photons per detector bin and view.
    """
    bias_p = post_log_bias(sinograms, i0_photons, electronic_noise_counts=electronic_noise_counts)
    mu_pixel = fbp_mu_pixel(
        bias_p.astype(np.float32), angles_deg, size=size, filter_name=filter_name
    )
    mu_mm = mu_pixel / np.asarray(pixel_mm, np.float32)[:, None, None]
    return (1000.0 * mu_mm / mu_water_per_mm).astype(np.float32)


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
    electronic_noise_counts: float = 0.0,
) -> np.ndarray:
    """Poisson (+ electronic) noise on each sinogram at ``i0_photons``, reconstructed to HU.

    Parameters
    ----------
    sinograms : ndarray (B, A, D)
        Noise-free line integrals from :func:`line_integrals`.
    rngs : sequence of numpy.random.Generator, length B
        One generator per slice (so results do not depend on how slices are batched).
    electronic_noise_counts : float
        Gaussian read-out noise in counts (0: none, and the Poisson draws are unchanged).

    Returns
    -------
    ndarray (B, size, size) float32 HU
    """
    noisy = noisy_sinograms(
        sinograms, i0_photons, rngs=rngs, electronic_noise_counts=electronic_noise_counts
    )
    return reconstruct_hu(
        noisy,
        pixel_mm,
        angles_deg,
        size=size,
        filter_name=filter_name,
        mu_water_per_mm=mu_water_per_mm,
    )


def noisy_sinograms(sinograms, i0_photons, *, rngs, electronic_noise_counts=0.0) -> np.ndarray:
    """Post-log noisy sinograms (B, A, D) float32, slice ``b`` drawn from ``rngs[b]``."""
    sigma = electronic_noise_counts
    pairs = zip(sinograms, rngs, strict=True)
    return np.stack(
        [
            add_poisson_sinogram(s, i0_photons, rng=rng, electronic_noise_counts=sigma)
            for s, rng in pairs
        ]
    )


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
