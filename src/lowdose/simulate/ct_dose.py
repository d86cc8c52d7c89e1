"""Sinogram noise by dose or by target PSNR, and the photon-starvation check of every such dataset.

The level: ``photons_per_ray`` (I0, unattenuated photons per detector bin and view), a
``dose_fraction`` of the full-dose reference of :mod:`lowdose.physics.ct_dose` (converted at the
dataset's geometry: bin = mean pixel size, its view count), or, for the paper's experiments, a
target PSNR (:func:`lowdose.simulate.ct_realisations.sinogram_realisations`). The clean reference
is always the noise-free FBP with the same geometry and kernel (``clean_reference =
"fbp_noise_free"``). Realisations are independent scans (``realisations_are =
"independent_scans"``), or, with ``view_subsets = K``, one scan per slice whose views are split
into K interleaved subsets, each reconstructed on its own (``realisations_are = "view_subsets"``;
Noise2Inverse from a single scan).

The check (:func:`measure_starvation`): FBP is linear, so the mean of the noisy images is
``reference + bias`` with the exact bias of :func:`lowdose.physics.ct_noise.mean_bias_hu`.
Inside the object (reference > -500 HU) it records the bias's RMS and 99th percentile of
``|bias|``, the noise SD of the realisations about ``reference + bias``, their ratio, and
``photon_starved`` when the ratio exceeds 0.1: a bias no denoiser trained on these data can
remove. ``i0_without_starvation`` is the I0 at which the ratio falls to 0.1: first guessed with
bias ~ 1/I0 and SD ~ 1/sqrt(I0), then refined with the exact bias (on up to 4 of the slices)
and the SD scaled by the estimator's exact variance per bin (:func:`i0_without_starvation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.data.scaling import hu_to_scaled, scaled_to_hu
from lowdose.physics.ct_dose import (
    FULL_DOSE_PHOTONS_PER_RAY,
    FULL_DOSE_REFERENCE,
    dose_fraction_for_photons,
    photons_per_ray_for_dose,
)
from lowdose.physics.ct_noise import (
    MU_WATER_PER_MM,
    angles_for,
    mean_bias_hu,
    noisy_sinograms,
    view_subset_hu,
)
from lowdose.physics.photon_starvation import post_log_variance
from lowdose.physics.radon import FBP_FILTERS
from lowdose.simulate.ct_realisations import (
    dose_stream,
    noise_stream,
    noisy_all,
    project_all,
    reconstruct_all,
    sinogram_realisations,
)

STARVATION_RATIO = 0.1  # bias RMS / noise SD above which a dataset is photon-starved
OBJECT_HU = -500.0  # inside the object: reference above this
_REFINE_SLICES = 4  # the exact bias's fall with I0, measured on a few slices
_CHUNK = 16


def check_sinogram_options(
    noise: str, *, target_psnr_db, photons_per_ray, dose_fraction, electronic_noise_counts,
    filter_name: str, view_subsets,
) -> None:  # fmt: skip
    """Raise (one line naming the option) unless the dose options fit together."""
    doses = [v for v in (photons_per_ray, dose_fraction) if v is not None]
    if filter_name not in FBP_FILTERS:
        raise LowdoseInputError(f"--kernel {filter_name!r}: use one of {', '.join(FBP_FILTERS)}")
    if len(doses) == 2:
        raise LowdoseInputError(
            "--photons-per-ray and --dose-fraction exclude each other: give one"
        )
    if doses and noise != "sinogram":
        raise LowdoseInputError("--photons-per-ray / --dose-fraction need --noise sinogram")
    if doses and target_psnr_db is not None:
        raise LowdoseInputError("--target-psnr and a dose (--photons-per-ray / --dose-fraction) "
                                "exclude each other: give one")  # fmt: skip
    for name, value in (("--photons-per-ray", photons_per_ray), ("--dose-fraction", dose_fraction)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise LowdoseInputError(f"{name} {value!r}: pass a number > 0")
    if not (math.isfinite(electronic_noise_counts) and electronic_noise_counts >= 0):
        raise LowdoseInputError(f"--electronic-noise {electronic_noise_counts!r}: pass counts >= 0")
    if electronic_noise_counts > 0 and not doses:
        raise LowdoseInputError("--electronic-noise needs a dose: add --photons-per-ray or "
                                "--dose-fraction")  # fmt: skip
    if view_subsets is not None and (not doses or int(view_subsets) < 2):
        raise LowdoseInputError(f"--view-subsets {view_subsets}: use an integer >= 2 with "
                                "--photons-per-ray or --dose-fraction")  # fmt: skip


def sinogram_noise(
    src, data_max: float, realisations: int, *, seed: int, views=None, filter_name="hann",
    target_psnr_db=None, target_scale="data_range_1", photons_per_ray=None, dose_fraction=None,
    electronic_noise_counts=0.0, view_subsets=None, progress: Progress | None = None,
):  # fmt: skip
    """Noisy FBPs of ``src`` (a :class:`lowdose.simulate.ct.CTSource`) at a dose or a target.

    Returns
    -------
    noisy : ndarray (I, N, H, W) float32
        Dataset scale; N = ``realisations``, or ``view_subsets`` (one scan split K ways).
    reference : ndarray (I, H, W) float32
        The noise-free FBP on the dataset scale (the dataset's clean images).
    i0_photons : float
    details : dict
        Attributes: the dose, the reference, the geometry and :class:`StarvationCheck`'s.
    """
    size = src.hu.shape[-1]
    geometry = {"angles": angles_for(size, views), "size": size, "filter_name": filter_name}
    sinograms = project_all(src, geometry["angles"], progress)
    reference = reconstruct_all(sinograms, src.pixel_mm, geometry, data_max, progress)
    bin_mm, n_views = float(np.mean(src.pixel_mm)), len(geometry["angles"])
    details: dict = {}
    if photons_per_ray is None and dose_fraction is None:
        stream = noise_stream(seed, "sinogram", target_psnr_db, target_scale)
        noisy, i0, details = sinogram_realisations(
            sinograms, reference, src.pixel_mm, geometry, data_max, target_psnr_db, realisations,
            stream=stream, target_scale=target_scale, progress=progress,
        )  # fmt: skip
    else:
        i0 = float(photons_per_ray or photons_per_ray_for_dose(dose_fraction, bin_mm=bin_mm,
                                                                 views=n_views))  # fmt: skip
        stream = dose_stream(seed, i0, electronic_noise_counts)
        args = (sinograms, src.pixel_mm, geometry, i0)
        noisy = (_subset_all(*args, view_subsets, stream, data_max, electronic_noise_counts,
                             progress) if view_subsets else
                 noisy_all(*args, realisations, stream, data_max, progress,
                           electronic_noise_counts=electronic_noise_counts))  # fmt: skip
    check = measure_starvation(sinograms, reference, noisy, src.pixel_mm, geometry, data_max, i0,
                               electronic_noise_counts=electronic_noise_counts)  # fmt: skip
    original = hu_to_scaled(src.hu, data_max, clip=True)
    details.update(
        _dose_attrs(i0, dose_fraction, bin_mm, n_views, electronic_noise_counts, view_subsets),
        filter_name=filter_name, clean_reference="fbp_noise_free", **check.to_attrs(),
        fbp_bias_rmse_hu=float(np.sqrt(np.mean((reference - original) ** 2)) * data_max),
    )  # fmt: skip
    return noisy, reference, i0, details


def _dose_attrs(i0, dose_fraction, bin_mm, n_views, electronic, view_subsets) -> dict:
    """The level and geometry attributes of a sinogram dataset (the sweep reads some of them)."""
    return {
        "i0_photons": i0, "photons_per_ray": i0, "views": n_views, "pixel_mm_mean": bin_mm,
        "dose_fraction": math.nan if dose_fraction is None else float(dose_fraction),
        "dose_fraction_equivalent": dose_fraction_for_photons(i0, bin_mm=bin_mm, views=n_views),
        "full_dose_photons_per_ray": FULL_DOSE_PHOTONS_PER_RAY,
        "full_dose_reference": FULL_DOSE_REFERENCE,
        "electronic_noise_counts": float(electronic), "mu_water_per_mm": MU_WATER_PER_MM,
        "realisations_are": "view_subsets" if view_subsets else "independent_scans",
        **({"view_subsets": int(view_subsets)} if view_subsets else {}),
    }  # fmt: skip


def _subset_all(sinograms, pixel_mm, geometry, i0, subsets, stream, data_max, electronic,
                progress) -> np.ndarray:  # fmt: skip
    """One noisy scan per slice (``default_rng([*stream, i, 0])``), split into K subset FBPs."""
    n_images, size = len(sinograms), geometry["size"]
    noisy = np.empty((n_images, int(subsets), size, size), np.float32)
    for start in range(0, n_images, _CHUNK):
        index = np.arange(start, min(start + _CHUNK, n_images))
        rngs = [np.random.default_rng([*stream, int(i), 0]) for i in index]
        scans = noisy_sinograms(sinograms[index], i0, rngs=rngs,
                                electronic_noise_counts=electronic)  # fmt: skip
        hu = view_subset_hu(scans, pixel_mm[index], geometry["angles"], int(subsets), size=size,
                            filter_name=geometry["filter_name"])  # fmt: skip
        noisy[index] = hu_to_scaled(hu, data_max)
        if progress:
            progress(f"{subsets} view subsets", int(index[-1]) + 1, n_images)
    return noisy


@dataclass(frozen=True)
class StarvationCheck:
    """Is a sinogram dataset photon-starved? (The module docstring; HU inside the object.)"""

    mean_bias_rms_hu: float
    mean_bias_p99_hu: float
    noise_sd_hu: float
    bias_to_noise: float
    photon_starved: bool
    i0_without_starvation: float

    def to_attrs(self) -> dict[str, float | bool]:
        """The dataset attributes (and summary details) of the check, under the field names."""
        return asdict(self)


def measure_starvation(
    sinograms, reference, noisy, pixel_mm, geometry, data_max: float, i0: float, *,
    electronic_noise_counts: float = 0.0,
) -> StarvationCheck:  # fmt: skip
    """The photon-starvation check of noisy FBPs (I, N, H, W) about their noise-free FBP (I, H, W).

    ``sinograms`` (I, A, D) are the noise-free line integrals the noise was drawn on at ``i0``;
    ``geometry`` holds ``angles``, ``size`` and ``filter_name``; images on the dataset scale.
    """
    bias = _bias_all(sinograms, pixel_mm, geometry, i0, electronic_noise_counts)
    reference_hu = scaled_to_hu(reference, data_max)
    inside = reference_hu > OBJECT_HU
    if not inside.any():  # an empty field: judge every pixel
        inside = np.ones_like(inside)
    squares, count = 0.0, 0
    for i in range(len(noisy)):  # slice by slice: the noisy stack stays on the dataset scale
        noise = scaled_to_hu(noisy[i], data_max) - (reference_hu[i] + bias[i])  # (N, H, W)
        values = noise[:, inside[i]].astype(np.float64)
        squares, count = squares + float(np.sum(values**2)), count + values.size
    noise_sd = math.sqrt(squares / count)
    rms, p99 = _bias_stats(bias, inside)
    ratio = rms / noise_sd if noise_sd > 0 else math.inf
    pick = np.unique(np.linspace(0, len(bias) - 1, min(_REFINE_SLICES, len(bias))).astype(int))

    def rms_on_pick(level: float) -> float:
        part = _bias_all(sinograms[pick], pixel_mm[pick], geometry, level, electronic_noise_counts)
        return _bias_stats(part, inside[pick])[0]

    def variance_on_pick(level: float) -> float:
        return float(
            np.mean(
                post_log_variance(
                    sinograms[pick], level, electronic_noise_counts=electronic_noise_counts
                )
            )
        )

    pick_rms, pick_variance = rms_on_pick(i0), variance_on_pick(i0)
    free = i0_without_starvation(
        i0, rms, noise_sd, lambda level: rms * rms_on_pick(level) / pick_rms if pick_rms else 0.0,
        lambda level: noise_sd * math.sqrt(variance_on_pick(level) / pick_variance),
    )  # fmt: skip
    return StarvationCheck(rms, p99, noise_sd, ratio, bool(ratio > STARVATION_RATIO), free)


def i0_without_starvation(
    i0: float, bias_rms_hu: float, noise_sd_hu: float, bias_rms_at: Callable[[float], float],
    noise_sd_at: Callable[[float], float] | None = None, *, ratio: float = STARVATION_RATIO,
    steps: int = 8,
) -> float:  # fmt: skip
    """The I0 at which bias RMS / noise SD falls to ``ratio``.

    First guess: bias ~ 1/I0 and SD ~ 1/sqrt(I0), so the ratio goes as ``I0^-1/2`` and
    ``I0 x (ratio_now / ratio)^2`` reaches it. Then up to ``steps`` secant steps in log I0 vs log
    ratio (the power law's exponent from the last two levels, between -3 and -0.1) with the
    exact bias (``bias_rms_at(I0)``, HU) and the SD ``noise_sd_at(I0)`` (default: scaled as
    ``sqrt(I0_now / I0)``), until the predicted ratio is within 1 % of ``ratio``. NaN if there is
    no bias to scale.

    Why :func:`measure_starvation` passes its own ``noise_sd_at`` (the SD scaled by the square root
    of the estimator's mean variance per bin, :func:`lowdose.physics.photon_starvation.
    post_log_variance`, which is ``sqrt(I0_now / I0)`` at large counts): starved counts have a
    capped, smaller variance, so the plain rule over-predicted the I0 found from 50 photons ~16x
    (torso phantoms at 64^2: 5.3e6 where 3.2e5 already meets the ratio).
    """
    if not (bias_rms_hu > 0 and noise_sd_hu > 0):
        return math.nan
    if noise_sd_at is None:

        def noise_sd_at(level: float) -> float:
            return noise_sd_hu * math.sqrt(i0 / level)

    points = [(math.log(i0), math.log(bias_rms_hu / noise_sd_hu))]  # (log I0, log ratio)
    level = i0 * (bias_rms_hu / noise_sd_hu / ratio) ** 2
    for _ in range(steps):
        predicted = bias_rms_at(level) / noise_sd_at(level)
        if not predicted > 0 or abs(predicted / ratio - 1.0) < 0.01:
            break
        points.append((math.log(level), math.log(predicted)))
        (x0, y0), (x1, y1) = points[-2:]
        slope = float(np.clip((y1 - y0) / (x1 - x0), -3.0, -0.1)) if x1 != x0 else -0.5
        level = math.exp(x1 + float(np.clip((math.log(ratio) - y1) / slope, -5.0, 5.0)))
    return float(level)


def starvation_warning(details: Mapping) -> str | None:
    """One line for people when a dataset's details say it is photon-starved, else None."""
    if not details.get("photon_starved"):
        return None
    advice = _round_up(float(details["i0_without_starvation"]))
    return (f"photon-starved: mean bias {details['mean_bias_rms_hu']:.1f} HU RMS (99th pct "
            f"{details['mean_bias_p99_hu']:.0f} HU) against noise SD {details['noise_sd_hu']:.1f} "
            f"HU, ratio {details['bias_to_noise']:.2f} at I0 {details['i0_photons']:.4g}; use "
            f"--photons-per-ray >= {advice:.0f} to keep the bias under 10 % of the noise sd"
            )  # fmt: skip


def _round_up(value: float) -> float:
    """Up to two significant digits (the warning's advice never falls short of the I0 found)."""
    if not (math.isfinite(value) and value > 0):
        return value
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / step - 1e-9) * step


def _bias_all(sinograms, pixel_mm, geometry, i0, electronic) -> np.ndarray:
    parts = [
        mean_bias_hu(sinograms[start : start + _CHUNK], pixel_mm[start : start + _CHUNK],
                     geometry["angles"], i0, size=geometry["size"],
                     filter_name=geometry["filter_name"], electronic_noise_counts=electronic)
        for start in range(0, len(sinograms), _CHUNK)
    ]  # fmt: skip
    return np.concatenate(parts)


def _bias_stats(bias: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """RMS and 99th percentile of ``|bias|`` (HU) over the pixels inside the object."""
    values = np.abs(bias[inside].astype(np.float64))
    return float(np.sqrt(np.mean(values**2))), float(np.percentile(values, 99))
