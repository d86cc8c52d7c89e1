"""Sinogram noise for a CT dataset: Poisson counts per ray, the log, FBP; at a target or a dose.

The level is a :class:`lowdose.physics.noise_levels.NoiseLevel`:

- a dose: ``photons_per_ray`` (I0, unattenuated photons per detector bin and view) as given, or a
  ``dose_fraction`` of the full-dose reference of :mod:`lowdose.physics.ct_dose` converted at the
  dataset's geometry (bin = mean pixel size, its view count), with optional electronic noise
  (Gaussian counts before the log);
- a target PSNR (the paper's experiments): I0 searched on a few slices with realisation 0's own
  draws, then corrected on full passes until the whole set is within 0.05 dB.

The clean reference is always the noise-free FBP with the same geometry and kernel
(``clean_reference = "fbp_noise_free"``; the original slice would add the FBP's own blur to the
noise). Realisations are independent scans (``realisations_are = "independent_scans"``), or, with
``view_subsets = K`` (a dose only), one scan per slice whose views are split into K interleaved
subsets, each reconstructed on its own (``realisations_are = "view_subsets"``; Noise2Inverse from
a single scan). Every dataset is checked for photon starvation
(:mod:`lowdose.simulate.starvation_check`).

Slices go 16 at a time through the cached sparse projector/FBP matrices of
:mod:`lowdose.physics.ray_matrix` and :mod:`lowdose.physics.radon` (angles split into cacheable
groups by :func:`lowdose.physics.ct_noise.angle_groups`): a 16-slice 256^2 build fell from 122 s
to 25 s. Streams: :mod:`lowdose.simulate.ct_levels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lowdose.core.progress import Progress
from lowdose.data.scaling import hu_to_scaled
from lowdose.physics.ct_dose import (
    FULL_DOSE_PHOTONS_PER_RAY,
    FULL_DOSE_REFERENCE,
    dose_fraction_for_photons,
)
from lowdose.physics.ct_noise import (
    MU_WATER_PER_MM,
    angles_for,
    line_integrals,
    noisy_sinograms,
    reconstruct_hu,
    sinogram_noisy_hu,
    solve_i0_for_psnr,
    view_subset_hu,
)
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct_levels import (
    dose_stream,
    mean_scaled_psnr,
    noise_stream,
    scaled_psnr,
    target_mse,
)
from lowdose.simulate.ct_source import CTSource
from lowdose.simulate.starvation_check import StarvationCheck, measure_starvation

_CHUNK = 16  # slices per FBP call: the cached sparse matrix is applied to 16 columns at once
_SOLVE_SLICES = 8  # slices the I0 search runs on (realisation 0 of the full pass, same draws)
_PASS_TOL_DB = 0.05  # a full pass further than this from the target is redone at a corrected I0


@dataclass(frozen=True)
class FBPGeometry:
    """Parallel-beam views ``angles`` (A,) in degrees over 180, image edge ``size`` in pixels and
    the FBP kernel ``filter_name`` of a sinogram dataset."""

    angles: np.ndarray
    size: int
    filter_name: str


@dataclass(frozen=True)
class SinogramNoise:
    """What a sinogram dataset's noise was drawn at and what it did; the dataset's attributes.

    Attributes
    ----------
    photons_per_ray : float
        I0 drawn at (given, converted from the dose fraction, or solved for the target).
    dose_fraction : float
        As asked; NaN when I0 was given or solved for.
    dose_fraction_equivalent : float
        I0 as a fraction of the full dose at this geometry.
    views, pixel_mm_mean, filter_name
        The geometry: views over 180 degrees, mean pixel (= bin) size in mm, FBP kernel.
    electronic_noise_counts : float
        Gaussian read-out noise (counts) before the log.
    view_subsets : int or None
        K when one scan per slice was split into K view subsets.
    fbp_bias_rmse_hu : float
        RMS difference between the noise-free FBP (the clean images) and the original slices.
    starvation : StarvationCheck
    target_noise_rmse_hu, full_passes : float, int or None
        A target only: the noise RMS the target means, and the full passes made to meet it.
    """

    photons_per_ray: float
    dose_fraction: float
    dose_fraction_equivalent: float
    views: int
    pixel_mm_mean: float
    filter_name: str
    electronic_noise_counts: float
    view_subsets: int | None
    fbp_bias_rmse_hu: float
    starvation: StarvationCheck
    target_noise_rmse_hu: float | None = None
    full_passes: int | None = None

    @property
    def realisations_are(self) -> str:
        return "view_subsets" if self.view_subsets else "independent_scans"

    def to_attrs(self) -> dict[str, float | int | str | bool]:
        """The dataset attributes (the sweep and the multi-dose merge read some of them)."""
        solved = {}
        if self.full_passes is not None:
            solved = {
                "target_noise_rmse_hu": self.target_noise_rmse_hu,
                "full_passes": self.full_passes,
            }
        subsets = {"view_subsets": int(self.view_subsets)} if self.view_subsets else {}
        return {
            **solved,
            "i0_photons": self.photons_per_ray,
            "photons_per_ray": self.photons_per_ray,
            "views": self.views,
            "pixel_mm_mean": self.pixel_mm_mean,
            "dose_fraction": self.dose_fraction,
            "dose_fraction_equivalent": self.dose_fraction_equivalent,
            "full_dose_photons_per_ray": FULL_DOSE_PHOTONS_PER_RAY,
            "full_dose_reference": FULL_DOSE_REFERENCE,
            "electronic_noise_counts": self.electronic_noise_counts,
            "mu_water_per_mm": MU_WATER_PER_MM,
            "realisations_are": self.realisations_are,
            **subsets,
            "filter_name": self.filter_name,
            "clean_reference": "fbp_noise_free",
            **self.starvation.to_attrs(),
            "fbp_bias_rmse_hu": self.fbp_bias_rmse_hu,
        }


def sinogram_noise(
    src: CTSource,
    data_max: float,
    level: NoiseLevel,
    *,
    realisations: int,
    seed: int,
    views: int | None = None,
    filter_name: str = "hann",
    target_scale: str = "data_range_1",
    electronic_noise_counts: float = 0.0,
    view_subsets: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, SinogramNoise]:
    """Noisy FBPs of ``src`` at ``level``: a target PSNR or a dose (the module docstring).

    Returns
    -------
    noisy : ndarray (I, N, H, W) float32
        Dataset scale; N = ``realisations``, or ``view_subsets`` (one scan split K ways).
    reference : ndarray (I, H, W) float32
        The noise-free FBP on the dataset scale (the dataset's clean images).
    noise : SinogramNoise
    """
    size = src.hu.shape[-1]
    geometry = FBPGeometry(angles_for(size, views), size, filter_name)
    sinograms = project_all(src, geometry.angles, progress)
    reference = reconstruct_all(sinograms, src.pixel_mm, geometry, data_max, progress)
    bin_mm, n_views = float(np.mean(src.pixel_mm)), len(geometry.angles)
    solved = {}
    if level.is_target:
        stream = noise_stream(seed, "sinogram", level.target_psnr_db, target_scale)
        noisy, i0, passes = _target_realisations(
            sinograms,
            reference,
            src.pixel_mm,
            geometry,
            data_max,
            level.target_psnr_db,
            realisations,
            stream=stream,
            target_scale=target_scale,
            progress=progress,
        )
        mse = target_mse(level.target_psnr_db, data_max, target_scale)
        solved = {"target_noise_rmse_hu": float(np.sqrt(mse) * data_max), "full_passes": passes}
    else:
        i0 = float(level.photons_per_ray_at(bin_mm=bin_mm, views=n_views))
        stream = dose_stream(seed, i0, electronic_noise_counts)
        if view_subsets:
            noisy = _subset_all(
                sinograms,
                src.pixel_mm,
                geometry,
                i0,
                view_subsets,
                stream,
                data_max,
                electronic_noise_counts,
                progress,
            )
        else:
            noisy = noisy_all(
                sinograms,
                src.pixel_mm,
                geometry,
                i0,
                realisations,
                stream,
                data_max,
                progress,
                electronic_noise_counts=electronic_noise_counts,
            )
    check = measure_starvation(
        sinograms,
        reference,
        noisy,
        src.pixel_mm,
        angles=geometry.angles,
        size=size,
        filter_name=filter_name,
        data_max=data_max,
        i0=i0,
        electronic_noise_counts=electronic_noise_counts,
    )
    original = hu_to_scaled(src.hu, data_max, clip=True)
    noise = SinogramNoise(
        photons_per_ray=i0,
        dose_fraction=math.nan if level.dose_fraction is None else level.dose_fraction,
        dose_fraction_equivalent=dose_fraction_for_photons(i0, bin_mm=bin_mm, views=n_views),
        views=n_views,
        pixel_mm_mean=bin_mm,
        filter_name=filter_name,
        electronic_noise_counts=float(electronic_noise_counts),
        view_subsets=int(view_subsets) if view_subsets else None,
        fbp_bias_rmse_hu=float(np.sqrt(np.mean((reference - original) ** 2)) * data_max),
        starvation=check,
        **solved,
    )
    return noisy, reference, noise


def _target_realisations(
    sinograms,
    reference,
    pixel_mm,
    geometry: FBPGeometry,
    data_max,
    target_psnr_db,
    n,
    *,
    stream,
    target_scale="data_range_1",
    progress: Progress | None = None,
) -> tuple[np.ndarray, float, int]:
    """Sinogram Poisson noise + FBP with I0 solved so the mean PSNR meets the target.

    The target is on ``target_scale`` (:func:`lowdose.simulate.ct_levels.scaled_psnr`) against
    ``reference``, the noise-free FBP (I, H, W) on the dataset scale. I0 is searched on a subset
    with realisation 0's own draws, then corrected on full passes until the whole set is within
    ``_PASS_TOL_DB``. ``sinograms`` (I, A, D) are the noise-free line integrals, ``stream`` the
    dataset's :func:`lowdose.simulate.ct_levels.noise_stream`.

    Returns
    -------
    noisy : ndarray (I, n, H, W) float32
    i0_photons : float
    full_passes : int
    """
    n_images = len(reference)
    subset = np.unique(np.linspace(0, n_images - 1, min(_SOLVE_SLICES, n_images)).astype(int))
    history = []  # (log10 I0, subset PSNR): its local slope corrects the first full pass

    def psnr_at(i0: float) -> float:
        rngs = [np.random.default_rng([*stream, int(i), 0]) for i in subset]
        hu = sinogram_noisy_hu(
            sinograms[subset],
            pixel_mm[subset],
            geometry.angles,
            i0,
            rngs=rngs,
            size=geometry.size,
            filter_name=geometry.filter_name,
        )
        scaled = hu_to_scaled(hu, data_max)
        value = float(np.mean(scaled_psnr(reference[subset], scaled, data_max, target_scale)))
        history.append((np.log10(i0), value))
        return value

    i0, _ = solve_i0_for_psnr(psnr_at, target_psnr_db)
    passes = []
    for attempt in range(3):  # the subset's I0 is corrected once or twice on the whole set
        noisy = noisy_all(sinograms, pixel_mm, geometry, i0, n, stream, data_max, progress)
        passes.append((np.log10(i0), mean_scaled_psnr(reference, noisy, data_max, target_scale)))
        if abs(passes[-1][1] - target_psnr_db) <= _PASS_TOL_DB or attempt == 2:
            break
        i0 = _corrected_i0(passes, target_psnr_db, _local_slope(history, np.log10(i0)))
    return noisy, i0, len(passes)


def _local_slope(history, log_i0: float) -> float:
    """dB per decade of I0 from the two subset evaluations nearest ``log_i0`` (10 if unknown).

    Why: near photon starvation PSNR rises faster than 10 dB per decade, and a first full-pass
    correction at 10 needed a third pass on TCGA at 256^2.
    """
    points = sorted(set(history), key=lambda point: abs(point[0] - log_i0))[:2]
    if len(points) == 2 and points[0][0] != points[1][0]:
        (x0, y0), (x1, y1) = points
        if (y1 - y0) / (x1 - x0) > 1.0:
            return float((y1 - y0) / (x1 - x0))
    return 10.0


def _corrected_i0(passes, target_psnr_db: float, slope: float = 10.0) -> float:
    """Next I0 from full passes: the subset's local slope, then the last two passes' secant."""
    if len(passes) >= 2:
        (x0, y0), (x1, y1) = passes[-2:]
        if x1 != x0 and (y1 - y0) / (x1 - x0) > 1.0:
            slope = (y1 - y0) / (x1 - x0)
    log_i0, achieved = passes[-1]
    return float(10.0 ** (log_i0 + (target_psnr_db - achieved) / slope))


def project_all(src: CTSource, angles, progress) -> np.ndarray:
    """Noise-free line integrals (I, A, D) of ``src.hu``, 16 slices at a time."""
    chunks = range(0, len(src.hu), _CHUNK)
    parts = []
    for done, start in enumerate(chunks, 1):
        stop = start + _CHUNK
        parts.append(line_integrals(src.hu[start:stop], src.pixel_mm[start:stop], angles))
        if progress:
            progress("projecting sinograms", done, len(chunks))
    return np.concatenate(parts)


def reconstruct_all(sinograms, pixel_mm, geometry: FBPGeometry, data_max, progress) -> np.ndarray:
    """Noise-free FBP (I, H, W) float32 on the dataset scale, 16 slices at a time."""
    parts = []
    for start in range(0, len(sinograms), _CHUNK):
        stop = start + _CHUNK
        hu = reconstruct_hu(
            sinograms[start:stop],
            pixel_mm[start:stop],
            geometry.angles,
            size=geometry.size,
            filter_name=geometry.filter_name,
        )
        parts.append(hu_to_scaled(hu, data_max))
        if progress:
            progress("noise-free FBP", min(stop, len(sinograms)), len(sinograms))
    return np.concatenate(parts)


def noisy_all(
    sinograms,
    pixel_mm,
    geometry: FBPGeometry,
    i0,
    n,
    stream,
    data_max,
    progress,
    electronic_noise_counts=0.0,
) -> np.ndarray:
    """``n`` independent noisy FBPs (I, n, H, W) float32 on the dataset scale.

    Slice ``i``, realisation ``r`` draws from ``default_rng([*stream, i, r])``.
    """
    n_images, size = len(sinograms), geometry.size
    noisy = np.empty((n_images, n, size, size), np.float32)
    for start in range(0, n_images, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, n_images))
        for r in range(n):
            rngs = [np.random.default_rng([*stream, int(i), r]) for i in index]
            hu = sinogram_noisy_hu(
                sinograms[index],
                pixel_mm[index],
                geometry.angles,
                i0,
                rngs=rngs,
                size=size,
                filter_name=geometry.filter_name,
                electronic_noise_counts=electronic_noise_counts,
            )
            noisy[index, r] = hu_to_scaled(hu, data_max)
        if progress:
            progress(f"noise at I0={i0:.3g}", int(index[-1]) + 1, n_images)
    return noisy


def _subset_all(
    sinograms,
    pixel_mm,
    geometry: FBPGeometry,
    i0,
    subsets,
    stream,
    data_max,
    electronic,
    progress,
) -> np.ndarray:
    """One noisy scan per slice (``default_rng([*stream, i, 0])``), split into K subset FBPs."""
    n_images, size = len(sinograms), geometry.size
    noisy = np.empty((n_images, int(subsets), size, size), np.float32)
    for start in range(0, n_images, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, n_images))
        rngs = [np.random.default_rng([*stream, int(i), 0]) for i in index]
        scans = noisy_sinograms(sinograms[index], i0, rngs=rngs, electronic_noise_counts=electronic)
        hu = view_subset_hu(
            scans,
            pixel_mm[index],
            geometry.angles,
            int(subsets),
            size=size,
            filter_name=geometry.filter_name,
        )
        noisy[index] = hu_to_scaled(hu, data_max)
        if progress:
            progress(f"{subsets} view subsets", int(index[-1]) + 1, n_images)
    return noisy
