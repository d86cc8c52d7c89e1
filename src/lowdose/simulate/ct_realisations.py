"""N noisy realisations of a clean CT stack at a target PSNR: AWGN, or sinogram Poisson + FBP.

Both return images on the dataset scale of :mod:`lowdose.simulate.ct` and a dict of details that
become dataset attributes. Every slice and realisation draws from its own generator
``default_rng([*noise_stream(seed, model, target, scale), slice, realisation])``: results do not
depend on batching, the same (seed, target) gives the same draws bit for bit, and two datasets at
different targets (ct24 and ct18) or with different noise models never share draws (with one
stream per seed, the ct18 AWGN noise was exactly 1.945 x the ct24 noise).
Slices go 16 at a time through the cached sparse projector/FBP matrices of
:mod:`lowdose.physics.ray_matrix` and :mod:`lowdose.physics.radon` (angles split into cacheable
groups by :func:`lowdose.physics.ct_noise.angle_groups`): a 16-slice 256^2 build fell from 122 s
to 25 s. Dose-based sinogram datasets (:mod:`lowdose.simulate.ct_dose`) use the projection and
FBP passes here with a stream of their own (:func:`dose_stream`).
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, psnr_hu_window
from lowdose.core.progress import Progress
from lowdose.data.scaling import hu_to_scaled, scaled_to_hu
from lowdose.physics.ct_noise import (
    line_integrals,
    reconstruct_hu,
    sinogram_noisy_hu,
    solve_i0_for_psnr,
)
from lowdose.physics.noise_levels import solve_level_numerically, solve_sigma_for_psnr

_CHUNK = 16  # slices per FBP call: the cached sparse matrix is applied to 16 columns at once
_SOLVE_SLICES = 8  # slices the I0 search runs on (realisation 0 of the full pass, same draws)
_PASS_TOL_DB = 0.05  # a full pass further than this from the target is redone at a corrected I0
TARGET_SCALES = ("data_range_1", "hu_window")
_MODEL_STREAMS = {"awgn": 5, "sinogram": 11, "sinogram_dose": 17}  # never renumber: seeds
CT_NOISES = ("awgn", "sinogram")
NOISE_ALIASES = {"gaussian": "awgn"}  # AWGN's name as a dataset's noise_model


def ct_noise_name(name: str) -> str:
    """The CT noise ``name`` names: ``"awgn"`` (also ``"gaussian"``, case-insensitive) or
    ``"sinogram"``; anything else raises one line naming the choices.

    >>> ct_noise_name("Gaussian"), ct_noise_name("sinogram")
    ('awgn', 'sinogram')
    """
    value = str(name).strip().lower()
    value = NOISE_ALIASES.get(value, value)
    if value not in CT_NOISES:
        raise LowdoseInputError(f"noise={name!r}: use awgn (or gaussian) or sinogram")
    return value


def level_key(level: float) -> int:
    """A stable non-negative integer for a noise level, to key its noise stream.

    The level rounded to 1/1000 of its unit (dB, photons), folded onto non-negative integers.

    >>> level_key(24.44), level_key(18.66), level_key(-1.0)
    (48880, 37320, 1999)
    """
    thousandths = int(round(float(level) * 1000))
    return 2 * thousandths if thousandths >= 0 else -2 * thousandths - 1


def noise_stream(seed: int, model: str, target_psnr_db: float, target_scale: str) -> list[int]:
    """Entropy prefix of a dataset's noise: ``[seed, model id, level key, scale id]``.

    Slice ``i`` and realisation ``r`` draw from ``default_rng([*prefix, i, r])``.
    """
    scale_id = TARGET_SCALES.index(target_scale)
    return [int(seed), _MODEL_STREAMS[model], level_key(target_psnr_db), scale_id]


def scaled_psnr(clean, noisy, data_max: float, target_scale: str) -> np.ndarray:
    """Per-image PSNR (dB) of scaled images on the scale a target refers to.

    ``"data_range_1"``: data_range 1 on the dataset scale; ``"hu_window"``: both images back to HU,
    clipped to -1000..1000 HU, data_range 2000 (:func:`lowdose.core.metrics.psnr_hu_window`).
    """
    if target_scale == "hu_window":
        return psnr_hu_window(scaled_to_hu(clean, data_max), scaled_to_hu(noisy, data_max))
    return np.atleast_1d(psnr(clean, noisy, data_range=1.0))


def _target_mse(target_psnr_db: float, data_max: float, target_scale: str) -> float:
    """Noise MSE on the dataset scale that the target means (window clipping ignored)."""
    data_range = 2000.0 / data_max if target_scale == "hu_window" else 1.0
    return data_range**2 * 10.0 ** (-target_psnr_db / 10.0)


def awgn_realisations(
    clean,
    target_psnr_db,
    n,
    *,
    seed,
    data_max=1.0,
    target_scale="data_range_1",
    progress: Progress | None = None,
):
    """The paper's noise: white Gaussian with sigma solved for the target.

    ``target_scale="data_range_1"`` (the paper): sigma in closed form for data_range 1.
    ``"hu_window"``: sigma bisected on the actual draws so the mean PSNR in -1000..1000 HU meets
    the target (clipping to the window makes it differ from the closed form).

    Returns
    -------
    noisy : ndarray (I, n, H, W) float32
    sigma : float
    details : dict
    """
    shape = clean.shape[1:]
    stream = noise_stream(seed, "awgn", target_psnr_db, target_scale)
    draws = np.empty((len(clean), n, *shape), np.float32)  # (I, n, H, W) N(0, 1), as add_gaussian
    for i in range(len(clean)):
        for r in range(n):
            rng = np.random.default_rng([*stream, i, r])
            draws[i, r] = rng.standard_normal(shape, np.float32)
        if progress:
            progress("drawing AWGN", i + 1, len(clean))
    sigma = solve_sigma_for_psnr(clean, target_psnr_db, data_range=1.0).level
    if target_scale == "hu_window":
        sigma0 = float(np.sqrt(_target_mse(target_psnr_db, data_max, target_scale)))

        def psnr_at(level: float) -> float:
            noisy = clean[:, None] + level * draws
            return _mean_psnr(clean, noisy, data_max, target_scale)

        sigma = solve_level_numerically(psnr_at, target_psnr_db, low=sigma0 / 4, high=sigma0 * 8,
                                        tol_db=0.01).level  # fmt: skip
    noisy = (clean[:, None] + np.float32(sigma) * draws).astype(np.float32)
    return noisy, float(sigma), {}


def sinogram_realisations(
    sinograms, reference, pixel_mm, geometry, data_max, target_psnr_db, n, *, stream,
    target_scale="data_range_1", progress: Progress | None = None,
):  # fmt: skip
    """Sinogram Poisson noise + FBP with I0 solved so the mean PSNR meets the target.

    The target is on ``target_scale`` (:func:`scaled_psnr`) against ``reference``, the noise-free
    FBP with the same geometry and kernel (the original slice would add the FBP's own blur to the
    noise). I0 is searched on a subset with realisation 0's own draws, then corrected on full
    passes until the whole set is within ``_PASS_TOL_DB``.

    Parameters
    ----------
    sinograms : ndarray (I, A, D)
        Noise-free line integrals (:func:`project_all`).
    reference : ndarray (I, H, W) float32
        The noise-free FBP on the dataset scale (:func:`reconstruct_all`).
    pixel_mm : ndarray (I,)
    geometry : dict
        ``angles`` (A,) degrees, ``size``, ``filter_name``.
    stream : list of int
        :func:`noise_stream` of the dataset.

    Returns
    -------
    noisy : ndarray (I, n, H, W) float32
    i0_photons : float
    details : dict
    """
    angles, size, filter_name = geometry["angles"], geometry["size"], geometry["filter_name"]
    subset = np.unique(np.linspace(0, len(reference) - 1,
                                   min(_SOLVE_SLICES, len(reference))).astype(int))  # fmt: skip
    history = []  # (log10 I0, subset PSNR): its local slope corrects the first full pass

    def psnr_at(i0: float) -> float:
        rngs = [np.random.default_rng([*stream, int(i), 0]) for i in subset]
        hu = sinogram_noisy_hu(sinograms[subset], pixel_mm[subset], angles, i0, rngs=rngs,
                               size=size, filter_name=filter_name)  # fmt: skip
        value = float(np.mean(scaled_psnr(reference[subset], hu_to_scaled(hu, data_max),
                                          data_max, target_scale)))  # fmt: skip
        history.append((np.log10(i0), value))
        return value

    i0, _ = solve_i0_for_psnr(psnr_at, target_psnr_db)
    passes = []
    for attempt in range(3):  # the subset's I0 is corrected once or twice on the whole set
        noisy = noisy_all(sinograms, pixel_mm, geometry, i0, n, stream, data_max, progress)
        passes.append((np.log10(i0), _mean_psnr(reference, noisy, data_max, target_scale)))
        if abs(passes[-1][1] - target_psnr_db) <= _PASS_TOL_DB or attempt == 2:
            break
        i0 = _corrected_i0(passes, target_psnr_db, _local_slope(history, np.log10(i0)))
    target_mse = _target_mse(target_psnr_db, data_max, target_scale)
    details = {"target_noise_rmse_hu": float(np.sqrt(target_mse) * data_max),
               "full_passes": len(passes)}  # fmt: skip
    return noisy, i0, details


def dose_stream(seed: int, i0_photons: float, electronic_noise_counts: float) -> list[int]:
    """Entropy prefix of a dose-based sinogram dataset's noise (slice ``i``, scan ``r`` appended).

    Keyed by the photons per ray and the electronic noise, so two dose levels never share draws,
    nor with any target-PSNR dataset. A one-scan set split into view subsets draws its scan as
    scan 0 of the same stream: at the same seed and dose it is the two-scan set's first scan, so
    the two arms of ``ct-dose`` see the same noisy input and compare exactly paired.
    """
    return [int(seed), _MODEL_STREAMS["sinogram_dose"], level_key(i0_photons),
            level_key(electronic_noise_counts)]  # fmt: skip


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


def project_all(src, angles, progress) -> np.ndarray:
    """Noise-free line integrals (I, A, D) of ``src.hu``, 16 slices at a time."""
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
    return hu_to_scaled(hu, data_max)


def reconstruct_all(sinograms, pixel_mm, geometry, data_max, progress) -> np.ndarray:
    """Noise-free FBP (I, H, W) float32 on the dataset scale, 16 slices at a time."""
    parts = []
    for start in range(0, len(sinograms), _CHUNK):
        stop = start + _CHUNK
        parts.append(_reconstruct_clean(sinograms[start:stop], pixel_mm[start:stop], geometry,
                                        data_max))  # fmt: skip
        if progress:
            progress("noise-free FBP", min(stop, len(sinograms)), len(sinograms))
    return np.concatenate(parts)


def noisy_all(
    sinograms, pixel_mm, geometry, i0, n, stream, data_max, progress, electronic_noise_counts=0.0
) -> np.ndarray:
    """``n`` independent noisy FBPs (I, n, H, W) float32 on the dataset scale.

    Slice ``i``, realisation ``r`` draws from ``default_rng([*stream, i, r])``.
    """
    n_images, size = len(sinograms), geometry["size"]
    noisy = np.empty((n_images, n, size, size), np.float32)
    for start in range(0, n_images, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, n_images))
        for r in range(n):
            rngs = [np.random.default_rng([*stream, int(i), r]) for i in index]
            hu = sinogram_noisy_hu(
                sinograms[index],
                pixel_mm[index],
                geometry["angles"],
                i0,
                rngs=rngs,
                size=size,
                filter_name=geometry["filter_name"],
                electronic_noise_counts=electronic_noise_counts,
            )
            noisy[index, r] = hu_to_scaled(hu, data_max)
        if progress:
            progress(f"noise at I0={i0:.3g}", int(index[-1]) + 1, n_images)
    return noisy


def _mean_psnr(clean, noisy, data_max: float, target_scale: str) -> float:
    """Mean PSNR over images and realisations: clean (I, H, W), noisy (I, n, H, W)."""
    flat = noisy.reshape(-1, *noisy.shape[2:])
    reference = np.repeat(clean, noisy.shape[1], axis=0)
    return float(np.mean(scaled_psnr(reference, flat, data_max, target_scale)))
