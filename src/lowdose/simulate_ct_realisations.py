"""N noisy realisations of a clean CT stack at a target PSNR: AWGN, or sinogram Poisson + FBP.

Both return images on the dataset scale of :mod:`lowdose.simulate_ct` and a dict of details that
become dataset attributes. Every slice and realisation draws from its own generator
``default_rng([seed, stream, slice, realisation])``: results do not depend on batching.
Slices are processed a few at a time through torch's projector, which already uses every core;
a process pool would only compete with it, so none is used.
"""

from __future__ import annotations

import numpy as np

from lowdose.metrics import psnr
from lowdose.noise import add_gaussian, solve_sigma_for_psnr
from lowdose.simulate_ct_noise import (
    HU_OFFSET,
    MU_WATER_PER_MM,
    line_integrals,
    reconstruct_hu,
    sinogram_noisy_hu,
    solve_i0_for_psnr,
    views_for,
)

_CHUNK = 4  # slices per projector call (bounded memory at 512^2 and 720 views)
_SOLVE_SLICES = 4  # slices the I0 search runs on
_MAX_BIAS_FRACTION = 0.1  # FBP discretisation MSE allowed, as a fraction of the noise MSE
_PASS_TOL_DB = 0.05  # a full pass further than this from the target is redone at a corrected I0


def awgn_realisations(clean, target_psnr_db, n, *, seed, progress=None):
    """The paper's noise: white Gaussian with sigma solved for the target (data_range 1).

    Returns
    -------
    noisy : ndarray (I, n, H, W) float32
    sigma : float
    details : dict
    """
    sigma = solve_sigma_for_psnr(clean, target_psnr_db, data_range=1.0).level
    noisy = np.empty((len(clean), n, *clean.shape[1:]), np.float32)
    for i, image in enumerate(clean):
        for r in range(n):
            noisy[i, r] = add_gaussian(image, sigma, rng=np.random.default_rng([seed, 5, i, r]))
        if progress:
            progress("adding AWGN", i + 1, len(clean))
    return noisy, sigma, {}


def sinogram_realisations(
    src, clean, data_max, target_psnr_db, n, *, seed, views=None, filter_name="hann",
    progress=None,
):  # fmt: skip
    """Sinogram Poisson noise + FBP with I0 solved so the mean PSNR meets the target.

    The clean reference stays the original slice when the noise-free FBP differs from it by
    less than ``_MAX_BIAS_FRACTION`` of the target noise MSE; otherwise the noise-free FBP
    becomes the clean image (attr ``clean_reference``).

    Returns
    -------
    noisy : ndarray (I, n, H, W) float32
    clean : ndarray (I, H, W) float32 (the input, or the noise-free FBP)
    i0_photons : float
    details : dict
    """
    size = clean.shape[-1]
    angles = views_for(size) if views is None else np.arange(views) * (180.0 / views)
    sinograms = _project_all(src, angles, progress)
    geometry = {"angles": angles, "size": size, "filter_name": filter_name}
    subset = np.unique(np.linspace(0, len(clean) - 1, min(_SOLVE_SLICES, len(clean))).astype(int))
    fbp_clean = _reconstruct_clean(sinograms[subset], src.pixel_mm[subset], geometry, data_max)
    bias_mse = float(np.mean((fbp_clean - clean[subset]) ** 2))
    target_mse = 10.0 ** (-target_psnr_db / 10.0)
    use_fbp = bias_mse > _MAX_BIAS_FRACTION * target_mse
    if use_fbp:
        clean = _reconstruct_all(sinograms, src.pixel_mm, geometry, data_max, progress)
    reference = clean[subset]

    def psnr_at(i0: float) -> float:
        rngs = [np.random.default_rng([seed, 7, int(i)]) for i in subset]
        hu = sinogram_noisy_hu(sinograms[subset], src.pixel_mm[subset], angles, i0, rngs=rngs,
                               size=size, filter_name=filter_name)  # fmt: skip
        return float(np.mean(psnr(reference, (hu + HU_OFFSET) / data_max, data_range=1.0)))

    i0, _ = solve_i0_for_psnr(psnr_at, target_psnr_db)
    passes = []
    for attempt in range(3):  # the subset's I0 is corrected once or twice on the whole set
        noisy = _noisy_all(sinograms, src.pixel_mm, geometry, i0, n, seed, data_max, progress)
        passes.append((np.log10(i0), _mean_psnr(clean, noisy)))
        if abs(passes[-1][1] - target_psnr_db) <= _PASS_TOL_DB or attempt == 2:
            break
        i0 = _corrected_i0(passes, target_psnr_db)
    details = {
        "i0_photons": i0, "views": len(angles), "filter_name": filter_name,
        "mu_water_per_mm": MU_WATER_PER_MM,
        "clean_reference": "fbp_noise_free" if use_fbp else "original",
        "fbp_bias_rmse_hu": float(np.sqrt(bias_mse) * data_max),
        "target_noise_rmse_hu": float(np.sqrt(target_mse) * data_max),
        "pixel_mm_mean": float(np.mean(src.pixel_mm)),
    }  # fmt: skip
    return noisy, clean, i0, details


def _corrected_i0(passes, target_psnr_db: float) -> float:
    """Next I0 from full passes: 10 dB per decade at first, then the secant of the last two."""
    slope = 10.0
    if len(passes) >= 2:
        (x0, y0), (x1, y1) = passes[-2:]
        if x1 != x0 and (y1 - y0) / (x1 - x0) > 1.0:
            slope = (y1 - y0) / (x1 - x0)
    log_i0, achieved = passes[-1]
    return float(10.0 ** (log_i0 + (target_psnr_db - achieved) / slope))


def _project_all(src, angles, progress) -> np.ndarray:
    chunks = range(0, len(src.hu), _CHUNK)
    parts = []
    for done, start in enumerate(chunks, 1):
        stop = start + _CHUNK
        parts.append(line_integrals(src.hu[start:stop], src.pixel_mm[start:stop], angles))
        if progress:
            progress("projecting sinograms", done, len(chunks))
    return np.concatenate(parts)


def _reconstruct_clean(sinograms, pixel_mm, geometry, data_max) -> np.ndarray:
    hu = reconstruct_hu(sinograms, pixel_mm, geometry["angles"], size=geometry["size"],
                        filter_name=geometry["filter_name"])  # fmt: skip
    return ((hu + HU_OFFSET) / data_max).astype(np.float32)


def _reconstruct_all(sinograms, pixel_mm, geometry, data_max, progress) -> np.ndarray:
    parts = []
    for start in range(0, len(sinograms), _CHUNK):
        stop = start + _CHUNK
        parts.append(_reconstruct_clean(sinograms[start:stop], pixel_mm[start:stop], geometry,
                                        data_max))  # fmt: skip
        if progress:
            progress("reconstructing noise-free FBP", min(stop, len(sinograms)), len(sinograms))
    return np.concatenate(parts)


def _noisy_all(sinograms, pixel_mm, geometry, i0, n, seed, data_max, progress) -> np.ndarray:
    n_images, size = len(sinograms), geometry["size"]
    noisy = np.empty((n_images, n, size, size), np.float32)
    for start in range(0, n_images, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, n_images))
        for r in range(n):
            rngs = [np.random.default_rng([seed, 11, int(i), r]) for i in index]
            hu = sinogram_noisy_hu(
                sinograms[index],
                pixel_mm[index],
                geometry["angles"],
                i0,
                rngs=rngs,
                size=size,
                filter_name=geometry["filter_name"],
            )
            noisy[index, r] = (hu + HU_OFFSET) / data_max
        if progress:
            progress(f"sinogram noise at I0={i0:.3g}", int(index[-1]) + 1, n_images)
    return noisy


def _mean_psnr(clean, noisy) -> float:
    flat = noisy.reshape(-1, *noisy.shape[2:])
    return float(np.mean(psnr(np.repeat(clean, noisy.shape[1], axis=0), flat, data_range=1.0)))
