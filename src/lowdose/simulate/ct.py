"""Build CT datasets: clean slices and N noisy realisations, AWGN in the image or sinogram noise.

The paper's CT data: real slices divided by the maximum of the whole dataset, white Gaussian noise
added in the image at a baseline PSNR of 24.44 or 18.66 dB (``data_range = 1``;
:func:`awgn_realisations`, here). lowdose also offers realistic sinogram noise at the same target
or at a dose (:mod:`lowdose.simulate.ct_sinogram`: clean = the noise-free FBP, photon-starvation
check). The level is one :class:`lowdose.physics.noise_levels.NoiseLevel`, made where the user
states it (:func:`ct_noise_level` for the command line's options).

Scale (:func:`lowdose.data.scaling.hu_to_scaled`): ``clean = max(HU + 1024, 0) / data_max`` with
``data_max`` the largest ``HU + 1024`` of the dataset (the stored ``scale`` of every image; attrs
``scaling_rule = dataset_max``, ``scaling_offset = 1024``, ``raw_units = hu``). By default the
target refers to this scale (``target_scale="data_range_1"``, the paper); ``"hu_window"`` meets
it in the -1000..1000 HU window instead (:mod:`lowdose.simulate.ct_levels`). Both achieved PSNRs
are stored. Clean slices come from :mod:`lowdose.simulate.ct_source`. Deterministic for a seed:
each slice and realisation draws from its own stream keyed by the level
(:mod:`lowdose.simulate.ct_levels`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, psnr_hu_window
from lowdose.core.progress import Progress
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, split_write_and_summarise
from lowdose.data.scaling import HU_OFFSET, hu_to_scaled, scaled_to_hu
from lowdose.data.split_plan import plan_split
from lowdose.data.splits import SPLIT_METHODS, SplitPlan
from lowdose.physics.ct_noise import neighbour_correlation
from lowdose.physics.noise_levels import (
    NoiseLevel,
    solve_level_numerically,
    solve_sigma_for_psnr,
)
from lowdose.physics.radon import FBP_FILTERS
from lowdose.simulate.ct_levels import (
    SCALE_NOTES,
    ct_noise_name,
    mean_scaled_psnr,
    noise_stream,
    target_mse,
)
from lowdose.simulate.ct_sinogram import SinogramNoise, sinogram_noise
from lowdose.simulate.ct_source import CTSource, load_ct_source

PAPER_CT_LEVEL = NoiseLevel(target_psnr_db=24.44)
"""The default level: the paper's first CT baseline PSNR (its second is 18.66 dB)."""
_DOSE_OPTIONS = "--photons-per-ray / --dose-fraction"


@dataclass(frozen=True)
class AwgnNoise:
    """The white Gaussian noise of a CT dataset: its SD in HU (``sigma * data_max``)."""

    sigma_hu: float

    def to_attrs(self) -> dict[str, float | str]:
        return {"sigma_hu": self.sigma_hu, "realisations_are": "independent_scans"}


@dataclass(frozen=True)
class CTDetails:
    """What a CT build knows beyond the common attributes; all of it is also in ``attrs.extra``.

    Attributes
    ----------
    data_max : float
        The dataset divisor, ``max(HU + 1024)`` over the dataset.
    achieved_psnr_hu_window_db : float
        Mean PSNR of the noisy images in the -1000..1000 HU window (data_range 2000).
    noise_neighbour_correlation : float
        Lag-1 correlation of the noise (noisy - clean).
    target_scale : {"data_range_1", "hu_window"}
        Where a target PSNR was met.
    noise : AwgnNoise or SinogramNoise
        The noise's own record.
    """

    data_max: float
    achieved_psnr_hu_window_db: float
    noise_neighbour_correlation: float
    target_scale: str
    noise: AwgnNoise | SinogramNoise

    @property
    def sinogram(self) -> SinogramNoise | None:
        """The sinogram noise's record, None for AWGN."""
        return self.noise if isinstance(self.noise, SinogramNoise) else None

    def to_attrs(self) -> dict[str, float | int | str | bool]:
        return {
            "achieved_psnr_hu_window_db": self.achieved_psnr_hu_window_db,
            "noise_neighbour_correlation": self.noise_neighbour_correlation,
            **self.noise.to_attrs(),
            "target_scale": self.target_scale,
            "target_psnr_scale": SCALE_NOTES[self.target_scale],
        }


def ct_noise_level(
    noise: str,
    *,
    target_psnr_db: float | None = None,
    photons_per_ray: float | None = None,
    dose_fraction: float | None = None,
) -> NoiseLevel:
    """The one level that ``lowdose simulate ct``'s options give (24.44 dB when none is given).

    Raises one line naming the options when two levels are given, a dose without sinogram noise,
    or a dose that is not a number > 0.
    """
    doses = {"--photons-per-ray": photons_per_ray, "--dose-fraction": dose_fraction}
    given = {name: value for name, value in doses.items() if value is not None}
    if len(given) == 2:
        raise LowdoseInputError(
            "--photons-per-ray and --dose-fraction exclude each other: give one"
        )
    _check_dose_noise(ct_noise_name(noise), bool(given))
    if given and target_psnr_db is not None:
        raise LowdoseInputError(
            f"--target-psnr and a dose ({_DOSE_OPTIONS}) exclude each other: give one"
        )
    for name, value in given.items():
        if not (math.isfinite(value) and value > 0):
            raise LowdoseInputError(f"{name} {value!r}: pass a number > 0")
    if photons_per_ray is not None:
        return NoiseLevel(photons_per_ray=photons_per_ray)
    if dose_fraction is not None:
        return NoiseLevel(dose_fraction=dose_fraction)
    if target_psnr_db is not None:
        return NoiseLevel(target_psnr_db=target_psnr_db)
    return PAPER_CT_LEVEL


def build_ct_dataset(
    out: str | os.PathLike,
    *,
    source: str | os.PathLike = "phantom",
    noise: str = "awgn",
    level: NoiseLevel = PAPER_CT_LEVEL,
    realisations: int = 2,
    size: int = 256,
    split_by: str = "auto",
    seed: int = 0,
    views: int | None = None,
    filter_name: str = "hann",
    target_scale: Literal["data_range_1", "hu_window"] = "data_range_1",
    electronic_noise_counts: float = 0.0,
    view_subsets: int | None = None,
    skip_bad: bool = False,
    fractions=(0.8, 0.1, 0.1),
    n_phantoms: int = 5,
    slices_per_phantom: int = 8,
    progress: Progress | None = None,
) -> DatasetSummary[CTDetails]:
    """Build and write a CT dataset file (docs/interfaces.md layout) at a target PSNR or a dose.

    Parameters
    ----------
    out : path
        Destination ``.h5`` (written atomically; nothing is written if reading fails).
    source : path, "phantom" or "qa-phantom"
        :func:`lowdose.simulate.ct_source.load_ct_source`.
    noise : {"awgn", "sinogram"}
        The paper's white Gaussian noise (``"gaussian"`` names it too), or Poisson noise in the
        sinogram reconstructed by FBP.
    level : NoiseLevel
        A target PSNR on ``target_scale`` (default 24.44 dB); with sinogram noise also a dose,
        ``photons_per_ray`` or ``dose_fraction`` (:mod:`lowdose.physics.ct_dose`).
    realisations : int
        Independent noisy copies per slice (>= 2 for Noise2Noise); ignored with ``view_subsets``.
    size : int
        Slice edge in pixels.
    split_by : {"auto", "patient", "volume", "slab", "region"}
        :func:`lowdose.data.split_plan.plan_split` (patient = DICOM PatientID, volume = series);
        ignored for the QA phantom (all test).
    views : int, optional
        Projection angles over 180 degrees (sinogram); default 720 * size / 512.
    filter_name : {"hann", "ramp", "shepp-logan"}
        FBP kernel (sinogram; ``--kernel``).
    target_scale : {"data_range_1", "hu_window"}
        Where the target is met: data_range 1 on the dataset scale (the paper), or the
        -1000..1000 HU window (data_range 2000 HU). Both PSNRs are stored.
    electronic_noise_counts, view_subsets
        With a dose only: Gaussian counts before the log, and K (one scan split into K view
        subsets, noisy (I, K, H, W); :mod:`lowdose.simulate.ct_sinogram`).
    seed : int
        Seeds the phantoms, the noise and the split; the noise stream is also keyed by ``noise``
        and the level (target and scale, or the dose): independent draws at every level.
    fractions : tuple
        Fractions of objects (slices, tiles) for (train, val, test) or (train, test).
    n_phantoms, slices_per_phantom : int
        ``source="phantom"`` only.
    progress : Progress, optional
        ``progress(stage, done, total)``, ``done`` absolute (:mod:`lowdose.core.progress`).

    Returns
    -------
    DatasetSummary[CTDetails]
        ``details`` (also stored as attributes); ``skipped``: unreadable files.
    """
    started = time.perf_counter()
    check_choices(noise, split_by, realisations, target_scale)
    noise = ct_noise_name(noise)
    check_sinogram_options(
        noise,
        level,
        filter_name=filter_name,
        electronic_noise_counts=electronic_noise_counts,
        view_subsets=view_subsets,
    )
    src = load_ct_source(
        source,
        size=size,
        seed=seed,
        skip_bad=skip_bad,
        n_phantoms=n_phantoms,
        slices_per_phantom=slices_per_phantom,
    )
    data_max = float(np.max(src.hu) + HU_OFFSET)
    clean = hu_to_scaled(src.hu, data_max, clip=True)  # (I, H, W)
    plan = _plan(src, clean.shape[1:], split_by, fractions, seed)  # fail fast, before the noise
    if noise == "awgn":
        noisy, drawn_at = awgn_realisations(
            clean,
            level.target_psnr_db,
            realisations,
            seed=seed,
            data_max=data_max,
            target_scale=target_scale,
            progress=progress,
        )
        record = AwgnNoise(sigma_hu=drawn_at * data_max)
    else:
        noisy, clean, record = sinogram_noise(
            src,
            data_max,
            level,
            realisations=realisations,
            seed=seed,
            views=views,
            filter_name=filter_name,
            target_scale=target_scale,
            electronic_noise_counts=electronic_noise_counts,
            view_subsets=view_subsets,
            progress=progress,
        )
        drawn_at = record.photons_per_ray
    achieved_db, details = _measure(clean, noisy, data_max, target_scale, record)
    attrs = _attrs(src, noise, level, drawn_at, achieved_db, seed, size, details)
    return split_write_and_summarise(
        out,
        plan=plan,
        clean=clean,
        noisy=noisy,
        scale=np.full(len(clean), data_max),
        attrs=attrs.with_extra(**src.attrs),
        started_s=started,
        details=details,
        skipped=src.skipped,
    )


def _plan(src: CTSource, image_shape, split_by: str, fractions, seed: int) -> SplitPlan:
    """:func:`lowdose.data.split_plan.plan_split` of the slices; for the QA phantom every slice
    to test, one object per patient id (nobody trains on it)."""
    if not src.test_only:
        return plan_split(
            src.patient_id,
            image_shape=image_shape,
            method=split_by,
            volume_id=src.volume_id,
            fractions=fractions,
            rng=np.random.default_rng([seed, 3]),
        )
    ids = np.asarray(src.patient_id).astype(str)
    return SplitPlan(
        "patient",
        np.arange(len(ids), dtype=np.int64),
        ids,
        np.full(len(ids), "test"),
        note="every slice in test: nobody trains on the QA phantom",
    )


def check_choices(noise: str, split_by: str, realisations: int, target_scale: str) -> None:
    """Raise unless noise, split_by, realisations and target_scale are known / usable."""
    if target_scale not in SCALE_NOTES:
        raise LowdoseInputError(f"target_scale={target_scale!r}: use 'data_range_1' or 'hu_window'")
    ct_noise_name(noise)
    if split_by not in SPLIT_METHODS:
        raise LowdoseInputError(f"split_by={split_by!r}: use one of {', '.join(SPLIT_METHODS)}")
    if realisations < 1:
        raise LowdoseInputError(f"realisations={realisations}: use 1 or more (2 for Noise2Noise)")


def check_sinogram_options(
    noise: str,
    level: NoiseLevel,
    *,
    filter_name: str,
    electronic_noise_counts: float,
    view_subsets: int | None,
) -> None:
    """Raise (one line naming the option) unless the level and the sinogram options fit."""
    if filter_name not in FBP_FILTERS:
        raise LowdoseInputError(f"--kernel {filter_name!r}: use one of {', '.join(FBP_FILTERS)}")
    if not (level.is_target or level.is_dose):
        raise LowdoseInputError(
            f"{level.describe()}: a CT dataset takes a target PSNR or, with "
            f"sinogram noise, a dose ({_DOSE_OPTIONS})"
        )
    _check_dose_noise(noise, level.is_dose)
    if not (math.isfinite(electronic_noise_counts) and electronic_noise_counts >= 0):
        raise LowdoseInputError(f"--electronic-noise {electronic_noise_counts!r}: pass counts >= 0")
    if electronic_noise_counts > 0 and not level.is_dose:
        raise LowdoseInputError(
            "--electronic-noise needs a dose: add --photons-per-ray or --dose-fraction"
        )
    if view_subsets is not None and (not level.is_dose or int(view_subsets) < 2):
        raise LowdoseInputError(
            f"--view-subsets {view_subsets}: use an integer >= 2 with "
            "--photons-per-ray or --dose-fraction"
        )


def _check_dose_noise(noise: str, is_dose: bool) -> None:
    if is_dose and noise != "sinogram":
        raise LowdoseInputError(f"{_DOSE_OPTIONS} need --noise sinogram")


def awgn_realisations(
    clean,
    target_psnr_db: float,
    n: int,
    *,
    seed: int,
    data_max: float = 1.0,
    target_scale: str = "data_range_1",
    progress: Progress | None = None,
) -> tuple[np.ndarray, float]:
    """The paper's noise: white Gaussian with sigma solved for the target.

    ``target_scale="data_range_1"`` (the paper): sigma in closed form for data_range 1.
    ``"hu_window"``: sigma bisected on the actual draws so the mean PSNR in -1000..1000 HU meets
    the target (clipping to the window makes it differ from the closed form).

    Returns
    -------
    noisy : ndarray (I, n, H, W) float32
    sigma : float
        On the dataset scale.
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
        sigma0 = float(np.sqrt(target_mse(target_psnr_db, data_max, target_scale)))

        def psnr_at(level: float) -> float:
            noisy = clean[:, None] + level * draws
            return mean_scaled_psnr(clean, noisy, data_max, target_scale)

        sigma = solve_level_numerically(
            psnr_at, target_psnr_db, low=sigma0 / 4, high=sigma0 * 8, tol_db=0.01
        ).level
    noisy = (clean[:, None] + np.float32(sigma) * draws).astype(np.float32)
    return noisy, float(sigma)


def _measure(clean, noisy, data_max: float, target_scale: str, record) -> tuple[float, CTDetails]:
    """The mean PSNR (data_range 1) and the details: HU-window PSNR, the noise's correlation."""
    n = noisy.shape[1]
    flat_noisy = noisy.reshape(-1, *noisy.shape[2:])
    flat_clean = np.repeat(clean, n, axis=0)
    window_db = psnr_hu_window(
        scaled_to_hu(flat_clean, data_max), scaled_to_hu(flat_noisy, data_max)
    )
    details = CTDetails(
        data_max=data_max,
        achieved_psnr_hu_window_db=float(np.mean(window_db)),
        noise_neighbour_correlation=neighbour_correlation(flat_noisy - flat_clean),
        target_scale=target_scale,
        noise=record,
    )
    return float(np.mean(psnr(flat_clean, flat_noisy, data_range=1.0))), details


def _attrs(src, noise, level, drawn_at, achieved_db, seed, size, details) -> DatasetAttrs:
    target = level.target_psnr_db if level.is_target else math.nan
    at = f"{target} dB" if level.is_target else f"I0 {drawn_at:.4g} photons per ray"
    return DatasetAttrs(
        modality="ct",
        noise_model="gaussian" if noise == "awgn" else "sinogram",
        scaling_rule="dataset_max",
        noise_level=float(drawn_at),
        target_psnr_db=float(target),
        achieved_psnr_db=achieved_db,
        psnr_data_range=1.0,
        scaling_offset=HU_OFFSET,
        raw_units="hu",
        seed=int(seed),
        description=f"CT slices with {noise} noise at {at} (lowdose simulate ct)",
    ).with_extra(
        noise_level_name="sigma (dataset scale)" if noise == "awgn" else "I0 photons per ray",
        scaling_note="clean = max(HU + 1024, 0) / data_max; noisy = (HU + 1024) / data_max, "
        "not clipped",
        data_max=details.data_max,
        hu_window="-1000..1000",
        hu_window_rule="both images clipped to the window, data_range 2000",
        size=int(size),
        source=src.description,
        n_skipped=len(src.skipped),
        **details.to_attrs(),
    )
