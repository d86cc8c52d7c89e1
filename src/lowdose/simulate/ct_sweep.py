"""Sinogram noise for the accuracy sweep against clean: a CT dataset's clean slices at any I0.

The sweep (:mod:`lowdose.evaluation.sweep`) re-noises a dataset's clean test slices at a range of
levels with the dataset's own noise model. For a sinogram dataset that model needs the CT
builder's geometry (views, pixel size, FBP filter, water attenuation), which
:mod:`lowdose.simulate.ct_sinogram` records in the file's ``DatasetAttrs.extra``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from lowdose.core.metrics import psnr
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.scaling import scaled_to_hu
from lowdose.physics.ct_noise import (
    DEFAULT_PIXEL_MM,
    MU_WATER_PER_MM,
    fbp_mu_pixel,
    line_integrals,
    solve_i0_for_psnr,
    views_for,
)
from lowdose.physics.noise import add_poisson_sinogram

_SWEEP_SOLVE_SLICES = 32  # slices the sweep's I0 search runs on (the sweep uses <= 20)


def sinogram_sweep_model(attrs: DatasetAttrs) -> tuple[Callable, Callable]:
    """The sweep's sinogram noise model for a CT dataset: ``(noise_function, solver)``.

    ``noise_function(clean (I, H, W) float32, scale (I,), i0, rng) -> noisy (I, H, W) float32``:
    the clean scaled slices go back to HU (:func:`lowdose.data.scaling.scaled_to_hu`), are
    projected with the dataset's geometry (``attrs.extra``: ``views``, ``pixel_mm_mean``,
    ``filter_name``, ``mu_water_per_mm``), Poisson noise is drawn at ``I0 = i0`` and
    ``FBP(noisy) - FBP(clean)`` is added to the clean slice. Adding only the reconstructed noise
    keeps the sweep free of the FBP blur of the clean slice, so a 50 dB input is reachable; the
    noise is the same correlated, streaky FBP noise.
    ``solver(clean, scale, target_db) -> i0``: the I0 whose seeded draws give a mean PSNR
    (data_range 1 on the dataset scale) within 0.02 dB of the target on up to 32 of the slices
    (a subset of 8 of 13 TCGA slices missed by up to 1 dB). Below ~10 dB (TCGA, data_range 1)
    no I0 reaches the target: at vanishing counts FBP erases the image rather than adding noise.
    Clean sinograms are cached between calls for the last clean stack (the sweep calls both at
    every level).
    """
    extra = attrs.extra
    views = int(extra.get("views", 0)) or None
    pixel_mm = float(extra.get("pixel_mm_mean", DEFAULT_PIXEL_MM))
    filter_name = str(extra.get("filter_name", "hann"))
    mu_water = float(extra.get("mu_water_per_mm", MU_WATER_PER_MM))
    cache: dict = {}

    def sinograms_of(clean, scale) -> tuple[np.ndarray, np.ndarray]:
        clean, scale = np.asarray(clean, np.float32), np.asarray(scale, np.float64)
        key = hashlib.sha1(clean.tobytes() + scale.tobytes()).hexdigest()
        if key not in cache:
            size = clean.shape[-1]
            angles = views_for(size) if views is None else np.arange(views) * (180.0 / views)
            hu = scaled_to_hu(clean, scale[:, None, None])  # (I, H, W)
            sinograms = line_integrals(
                hu, np.full(len(clean), pixel_mm), angles, mu_water_per_mm=mu_water
            )
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
