"""Build CT datasets: clean slices (real CT or phantoms) and N noisy realisations.

The paper's CT data: real slices divided by the maximum of the whole dataset, AWGN added at a
baseline PSNR of 24.44 or 18.66 dB (``data_range = 1``). lowdose also offers realistic sinogram
noise (:mod:`lowdose.physics.ct_noise`) with ``I0`` solved for the same target or set by a dose
(:mod:`lowdose.simulate.ct_dose`: clean = the noise-free FBP, photon-starvation check).

Scale (:func:`lowdose.data.scaling.hu_to_scaled`): ``clean = max(HU + 1024, 0) / data_max`` with
``data_max`` the largest ``HU + 1024`` of the dataset (the stored ``scale`` of every image; attrs
``scaling_rule = dataset_max``, ``scaling_offset = 1024``, ``raw_units = hu``). By default the
target refers to this scale (``target_scale="data_range_1"``, the paper); ``"hu_window"`` meets
it in the -1000..1000 HU window instead (both images clipped to it, data_range 2000), which gives
sinogram I0 a physical value. Both achieved PSNRs are stored.

Sources: a folder or file readable by :func:`lowdose.io.images.read_ct` (slices resized to ``size``
with ``skimage.transform.resize``, anti-aliased, when they differ, e.g. 512 -> 256; the pixel size
grows accordingly), ``"phantom"``: axial slices of :func:`lowdose.phantoms.torso.torso_phantom`
converted to HU with the phantom's own water attenuation, so the pipeline runs with no data, or
``"qa-phantom"``: the three modules of :func:`lowdose.phantoms.qa_phantom.qa_phantom` (one
object, all in the test split: nobody trains on the QA phantom; its geometry in the attributes).
Deterministic for a seed: each slice and realisation draws from its own stream keyed by the
level (:func:`lowdose.simulate.ct_realisations.noise_stream`, ``dose_stream``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from lowdose.io.images import read_ct
from lowdose.phantoms.materials import MU_PER_MM
from lowdose.phantoms.qa_phantom import MODULES, qa_phantom
from lowdose.phantoms.torso import torso_phantom
from lowdose.physics.ct_noise import DEFAULT_PIXEL_MM, neighbour_correlation
from lowdose.simulate.ct_dose import check_sinogram_options, sinogram_noise
from lowdose.simulate.ct_realisations import awgn_realisations, ct_noise_name


@dataclass(frozen=True)
class CTSource:
    """Clean slices ready for noise: HU (I, size, size) float32, who they belong to; ``test_only``
    (all to test) and ``attrs`` (more file attributes) for the QA phantom."""

    hu: np.ndarray
    patient_id: np.ndarray
    volume_id: np.ndarray
    pixel_mm: np.ndarray
    description: str
    skipped: tuple = ()
    test_only: bool = False
    attrs: Mapping = field(default_factory=dict)


def load_ct_source(
    source: str | os.PathLike,
    *,
    size: int,
    seed: int = 0,
    skip_bad: bool = False,
    n_phantoms: int = 5,
    slices_per_phantom: int = 8,
) -> CTSource:
    """Clean slices in HU at ``size`` x ``size`` from a folder/file or ``"phantom"``.

    Parameters
    ----------
    source : str or PathLike
        Anything :func:`lowdose.io.images.read_ct` reads, ``"phantom"`` or ``"qa-phantom"``.
    size : int
        Output edge in pixels (slices are resized, anti-aliased, when they differ).
    n_phantoms, slices_per_phantom : int
        Phantom source only: phantoms drawn (one object each) and axial slices taken from each.
    """
    if size < 32:
        raise LowdoseInputError(f"size={size}: use at least 32 pixels (256 or 512 typically)")
    if str(source) == "phantom":
        return _phantom_source(size, seed, n_phantoms, slices_per_phantom)
    if str(source) == "qa-phantom":
        qa, n = qa_phantom(size), len(MODULES)
        return CTSource(qa.hu, np.full(n, "qa-phantom"), np.array(qa.modules),
                        np.full(n, qa.pixel_mm), f"QA phantom ({qa.pixel_mm:.3g} mm pixels)",
                        test_only=True, attrs=qa.to_attrs())  # fmt: skip

    stack = read_ct(source, skip_bad=skip_bad)
    spacing = np.array([np.mean(s.pixel_spacing_mm or DEFAULT_PIXEL_MM) for s in stack.slices])
    hu, note = _resized(stack.hu, size)
    pixel_mm = spacing * stack.hu.shape[1] / size
    return CTSource(
        hu=hu,
        patient_id=np.array([s.patient_id for s in stack.slices]),
        volume_id=np.array([s.series_uid for s in stack.slices]),
        pixel_mm=pixel_mm,
        description=f"{source} ({stack.kind}, {stack.units_note}{note})",
        skipped=stack.skipped,
    )


def _resized(hu: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    if hu.shape[1:] == (size, size):
        return hu, ""
    from skimage.transform import resize

    out = resize(hu, (hu.shape[0], size, size), order=1, anti_aliasing=True, preserve_range=True)
    return out.astype(np.float32), f"; resized {hu.shape[1]}x{hu.shape[2]} -> {size}x{size}"


def _phantom_source(size: int, seed: int, n_phantoms: int, per_phantom: int) -> CTSource:

    voxel_mm = 512.0 / size  # the phantom's own rule: 512 / size fits the whole torso
    depth = max(16, per_phantom)
    take = np.linspace(0, depth - 1, per_phantom).round().astype(int)
    slices = []
    for index in range(n_phantoms):
        mu, _ = torso_phantom((depth, size, size), rng=np.random.default_rng([seed, 2, index]),
                              voxel_mm=voxel_mm)  # fmt: skip
        slices.append(1000.0 * (mu[take] / MU_PER_MM["water"] - 1.0))
    ids = np.repeat([f"phantom-{k:03d}" for k in range(n_phantoms)], per_phantom)
    return CTSource(
        hu=np.concatenate(slices).astype(np.float32),
        patient_id=ids,
        volume_id=ids,
        pixel_mm=np.full(len(ids), voxel_mm),
        description=f"torso phantoms ({n_phantoms} x {per_phantom} axial slices, {voxel_mm} mm)",
    )


def build_ct_dataset(
    out: str | os.PathLike,
    *,
    source: str | os.PathLike = "phantom",
    noise: str = "awgn",
    target_psnr_db: float | None = None,
    realisations: int = 2,
    size: int = 256,
    split_by: str = "auto",
    seed: int = 0,
    views: int | None = None,
    filter_name: str = "hann",
    target_scale: Literal["data_range_1", "hu_window"] = "data_range_1",
    photons_per_ray: float | None = None,
    dose_fraction: float | None = None,
    electronic_noise_counts: float = 0.0,
    view_subsets: int | None = None,
    skip_bad: bool = False,
    fractions=(0.8, 0.1, 0.1),
    n_phantoms: int = 5,
    slices_per_phantom: int = 8,
    progress: Progress | None = None,
) -> DatasetSummary:
    """Build and write a CT dataset file (docs/interfaces.md layout) at a target PSNR or a dose.

    Parameters
    ----------
    out : path
        Destination ``.h5`` (written atomically; nothing is written if reading fails).
    source : path, "phantom" or "qa-phantom"
    noise : {"awgn", "sinogram"}
        The paper's white Gaussian noise (``"gaussian"`` names it too), or Poisson noise in the
        sinogram reconstructed by FBP.
    target_psnr_db : float, optional
        Mean PSNR of the noisy images on ``target_scale``; default 24.44 unless a dose is given
        (a target with a dose raises).
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
    photons_per_ray, dose_fraction : float, optional
        Sinogram noise at a dose, not a target: photons per detector bin and view, or a fraction
        of the full dose (:mod:`lowdose.physics.ct_dose`). With one of them only:
        ``electronic_noise_counts`` (Gaussian counts before the log) and ``view_subsets`` (K:
        one scan split into K view subsets, noisy (I, K, H, W); :mod:`lowdose.simulate.ct_dose`).
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
    DatasetSummary
        ``details`` (also stored as attributes): ``data_max`` (the divisor, HU),
        ``achieved_psnr_hu_window_db``, ``noise_neighbour_correlation``, ``target_scale``,
        ``realisations_are`` and the noise's own (``sigma_hu``; or the sinogram's of
        :func:`lowdose.simulate.ct_dose.sinogram_noise`). ``skipped``: unreadable files.
    """
    started = time.perf_counter()
    check_choices(noise, split_by, realisations, target_scale)
    noise = ct_noise_name(noise)
    check_sinogram_options(noise, target_psnr_db=target_psnr_db, photons_per_ray=photons_per_ray,
                           dose_fraction=dose_fraction, filter_name=filter_name,
                           electronic_noise_counts=electronic_noise_counts,
                           view_subsets=view_subsets)  # fmt: skip
    dosed = photons_per_ray is not None or dose_fraction is not None
    target = math.nan if dosed else 24.44 if target_psnr_db is None else float(target_psnr_db)
    src = load_ct_source(source, size=size, seed=seed, skip_bad=skip_bad, n_phantoms=n_phantoms,
                         slices_per_phantom=slices_per_phantom)  # fmt: skip
    data_max = float(np.max(src.hu) + HU_OFFSET)
    clean = hu_to_scaled(src.hu, data_max, clip=True)  # (I, H, W)
    plan = _test_only_plan(src) if src.test_only else plan_split(  # fail fast, before the noise
        src.patient_id, image_shape=clean.shape[1:], method=split_by, volume_id=src.volume_id,
        fractions=fractions, rng=np.random.default_rng([seed, 3]))  # fmt: skip
    if noise == "awgn":
        noisy, level, details = awgn_realisations(
            clean, target, realisations, seed=seed, data_max=data_max,
            target_scale=target_scale, progress=progress,
        )  # fmt: skip
        details = {"sigma_hu": level * data_max, "realisations_are": "independent_scans"}
    else:
        noisy, clean, level, details = sinogram_noise(
            src, data_max, realisations, seed=seed, views=views, filter_name=filter_name,
            target_psnr_db=None if dosed else target, target_scale=target_scale,
            photons_per_ray=photons_per_ray, dose_fraction=dose_fraction,
            electronic_noise_counts=electronic_noise_counts, view_subsets=view_subsets,
            progress=progress,
        )  # fmt: skip
    measured = _measure(clean, noisy, data_max)
    details = {**details, "target_scale": target_scale,
               "target_psnr_scale": _SCALE_NOTES[target_scale]}  # fmt: skip
    attrs = _attrs(src, noise, level, target, data_max, seed, size, measured, details)
    return split_write_and_summarise(
        out, plan=plan, clean=clean, noisy=noisy, scale=np.full(len(clean), data_max),
        attrs=attrs.with_extra(**src.attrs), started_s=started,
        details={"data_max": data_max, **measured, **details}, skipped=src.skipped,
    )  # fmt: skip


def _test_only_plan(src: CTSource) -> SplitPlan:
    """Every slice to test, one object per patient id (the QA phantom: no split planning)."""
    ids = np.asarray(src.patient_id).astype(str)
    return SplitPlan("patient", np.arange(len(ids), dtype=np.int64), ids, np.full(len(ids), "test"),
                     note="every slice in test: nobody trains on the QA phantom")  # fmt: skip


_SCALE_NOTES = {
    "data_range_1": "data_range 1 on max(HU + 1024, 0) / dataset max",
    "hu_window": "hu_window: -1000..1000 HU, both clipped, data_range 2000",
}


def check_choices(noise: str, split_by: str, realisations: int, target_scale: str) -> None:
    """Raise unless noise, split_by, realisations and target_scale are known / usable."""
    if target_scale not in _SCALE_NOTES:
        raise LowdoseInputError(f"target_scale={target_scale!r}: use 'data_range_1' or 'hu_window'")
    ct_noise_name(noise)
    if split_by not in SPLIT_METHODS:
        raise LowdoseInputError(f"split_by={split_by!r}: use one of {', '.join(SPLIT_METHODS)}")
    if realisations < 1:
        raise LowdoseInputError(f"realisations={realisations}: use 1 or more (2 for Noise2Noise)")


def _measure(clean: np.ndarray, noisy: np.ndarray, data_max: float) -> dict:

    n = noisy.shape[1]
    flat_noisy = noisy.reshape(-1, *noisy.shape[2:])
    flat_clean = np.repeat(clean, n, axis=0)
    return {
        "achieved_psnr_db": float(np.mean(psnr(flat_clean, flat_noisy, data_range=1.0))),
        "achieved_psnr_hu_window_db": float(np.mean(psnr_hu_window(
            scaled_to_hu(flat_clean, data_max), scaled_to_hu(flat_noisy, data_max)))),
        "noise_neighbour_correlation": neighbour_correlation(flat_noisy - flat_clean),
    }  # fmt: skip


def _attrs(src, noise, level, target, data_max, seed, size, measured, details):
    extra = {k: v for k, v in measured.items() if k != "achieved_psnr_db"}
    return DatasetAttrs(
        modality="ct",
        noise_model="gaussian" if noise == "awgn" else "sinogram",
        scaling_rule="dataset_max",
        noise_level=float(level),
        target_psnr_db=float(target),
        achieved_psnr_db=measured["achieved_psnr_db"],
        psnr_data_range=1.0,
        scaling_offset=HU_OFFSET,
        raw_units="hu",
        seed=int(seed),
        description=f"CT slices with {noise} noise at "
        + (f"{target} dB" if math.isfinite(target) else f"I0 {level:.4g} photons per ray")
        + " (lowdose simulate ct)",
    ).with_extra(
        noise_level_name="sigma (dataset scale)" if noise == "awgn" else "I0 photons per ray",
        scaling_note="clean = max(HU + 1024, 0) / data_max; noisy = (HU + 1024) / data_max, "
        "not clipped",
        data_max=data_max,
        hu_window="-1000..1000",
        hu_window_rule="both images clipped to the window, data_range 2000",
        size=int(size),
        source=src.description,
        n_skipped=len(src.skipped),
        **extra,
        **details,
    )
