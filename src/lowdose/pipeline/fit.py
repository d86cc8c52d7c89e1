"""``lowdose fit``: from what the user has to denoised files and a report, in one command.

The route follows the inputs (:func:`plan_fit`):

* two or more inputs: repeated acquisitions of the same object -> ``dataset from-repeats`` ->
  Noise2Noise (``n2n``) on realisation pairs;
* one sinogram with ``--angles``, or instrument scans (Data Exchange, TIFF stacks with flats):
  its views split into two interleaved halves whose reconstructions carry independent noise
  (Noise2Inverse) -> ``dataset from-sinogram`` -> ``n2n``;
* instrument scans with ``--domain projections``: the sinograms' view halves denoised by
  Neighbor2Neighbor (photon noise is pixel-independent before reconstruction), then
  reconstructed (:mod:`lowdose.owndata.projection_domain`);
* one input: a single acquisition -> ``dataset from-single`` -> Neighbor2Neighbor (``nb2nb``;
  ``--mode n2v`` for blind-spot training);
* one CT scan in HU (``--mode auto``): no training: the built-in model ``ct-sinogram`` averaged
  with BM3D given each slice's own noise spectrum (``blend``,
  :mod:`lowdose.inference.spectrum_blend`): reconstruction noise is correlated, so
  Neighbor2Neighbor and Noise2Void (which assume pixel-independent noise) gained +0.10 dB where
  the blend gains +3.44 (quarter dose, docs/results.md, "One clinical scan").

Stages, each in its own folder of ``OUT`` and cached by a key of its inputs and options
(:mod:`lowdose.pipeline.cache`), so an interrupted fit resumes where it stopped:
``dataset/`` (the HDF5 dataset), ``train/`` (a clean-free training run limited to ``budget``;
it resumes from ``last.ckpt``), ``denoised/`` (every input, in its own format: a DICOM series
comes back as a DICOM series with new UIDs; a sinogram as ``<name>_denoised.npy`` of the mean
of the network's outputs over the view halves), ``compare/`` (network against blind NLM and
blind BM3D on the test split, :mod:`lowdose.evaluation.fit_compare`) and ``report.html``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lowdose.baselines.filters import bm3d_installed
from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, ProgressScope, no_progress
from lowdose.data.dataset import read_info
from lowdose.evaluation.fit_compare import compare_methods, save_comparison
from lowdose.evaluation.projection_compare import compare_projection_domain
from lowdose.inference.files import check_hu_inputs, denoise_files
from lowdose.inference.projection_denoise import denoise_projection_scans
from lowdose.inference.spectrum_blend import NETWORK, NETWORK_TTA
from lowdose.inference.view_split import denoise_sinograms
from lowdose.owndata.projection_domain import build_from_projection_halves
from lowdose.owndata.projection_scan import build_from_projections, is_instrument_scan
from lowdose.owndata.repeats import build_from_repeats
from lowdose.owndata.single import build_from_single
from lowdose.pipeline.cache import (
    finish_stage,
    inputs_key,
    prepare_stage,
    stage_done,
    stage_key,
)
from lowdose.report.fit_report import write_fit_report
from lowdose.training.config import TrainConfig
from lowdose.training.run import train
from lowdose.training.run_dir import read_validation_scores
from lowdose.training.wall_time import is_wall_time

Route = Literal["repeats", "sinogram", "single", "projections"]
_SINOGRAM_SUFFIXES = (".npy", ".tif", ".tiff", ".h5", ".hdf5")
_ANGLES_ON_IMAGES = (
    "--angles is for sinograms (.npy/.tif/.h5) and projections (flat*.tif or --flat)"
)


@dataclass(frozen=True)
class FitPlan:
    """What ``fit`` does with the inputs, and why (one sentence for people)."""

    route: Route
    mode: str
    reason: str


@dataclass(frozen=True)
class FitOptions:
    """The user's choices. ``budget`` (``HH:MM:SS``) limits the training's wall time."""

    budget: str = "00:10:00"
    modality: Literal["ct", "xray"] | None = None
    angles: str | None = None
    mode: Literal["auto", "n2n", "nb2nb", "n2v", "blend"] = "auto"
    split_by: str = "auto"
    width: int = 16
    seed: int = 0
    threads: int | None = None
    skip_bad: bool = False
    dataset_key: str | None = None
    device: str = "auto"
    units: str | None = None
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    center: float | None = None
    flat: str | None = None
    dark: str | None = None
    domain: Literal["reconstruction", "projections"] = "reconstruction"


@dataclass(frozen=True)
class FitResult:
    """Where ``fit`` wrote things, and what it chose."""

    plan: FitPlan
    dataset: Path
    run_dir: Path | None
    denoised: list[Path]
    report: Path
    preferred: str


def plan_fit(inputs: list[Path], options: FitOptions) -> FitPlan:
    """Choose the route and training mode from the inputs (see the module docstring)."""
    if not inputs:
        raise LowdoseInputError("fit needs at least one input: a DICOM folder, image or stack")
    single_modes = ("nb2nb", "n2v")
    if options.mode == "blend" and (len(inputs) > 1 or options.angles is not None):
        raise LowdoseInputError(
            "--mode blend is for one CT scan; with repeats or a sinogram use --mode auto (n2n)"
        )
    scans = [is_instrument_scan(p) or (options.flat is not None and p.is_dir()) for p in inputs]
    if options.angles is not None or all(scans):
        suffixes = [p.suffix.lower() for p in inputs]
        if not all(s or x in _SINOGRAM_SUFFIXES for s, x in zip(scans, suffixes, strict=True)):
            raise LowdoseInputError(_ANGLES_ON_IMAGES)
        if options.domain == "projections":
            return _projection_plan(inputs, scans, options)
        mode = "n2n" if options.mode == "auto" else options.mode
        return FitPlan("sinogram", mode, "projections or a sinogram: the two interleaved view "
                       "halves reconstruct to images with independent noise (Noise2Inverse), so "
                       f"{mode} trains on those pairs")  # fmt: skip
    if options.domain == "projections":
        raise LowdoseInputError(_DOMAIN_ON_IMAGES)
    if len(inputs) >= 2:
        mode = "n2n" if options.mode == "auto" else options.mode
        return FitPlan("repeats", mode, f"{len(inputs)} inputs: repeated acquisitions of the "
                       "same object give independent noise realisations, so Noise2Noise "
                       f"({mode}) trains on their pairs")  # fmt: skip
    mode = "nb2nb" if options.mode == "auto" else options.mode
    if mode == "blend":
        return FitPlan("single", mode, ONE_SCAN_REASON)
    if mode not in single_modes:
        raise LowdoseInputError(
            f"--mode {mode} needs two acquisitions (or a sinogram with --angles); one input "
            "trains with --mode nb2nb or n2v"
        )
    name = "Neighbor2Neighbor" if mode == "nb2nb" else "Noise2Void"
    return FitPlan("single", mode, f"one acquisition and no second realisation: {name} "
                   f"({mode}) trains on the single noisy image, assuming pixel-independent "
                   "noise")  # fmt: skip


_DOMAIN_ON_IMAGES = (
    "--domain projections is for instrument scans (Data Exchange .h5, a TIFF-stack folder with "
    "flat*.tif or --flat, a .mat sinogram); images are denoised as reconstructions"
)


def _projection_plan(inputs: list[Path], scans: list[bool], options: FitOptions) -> FitPlan:
    """Instrument scans denoised before reconstruction: a single-acquisition mode on counts."""
    if not all(scans):
        raise LowdoseInputError(_DOMAIN_ON_IMAGES)
    mode = "nb2nb" if options.mode == "auto" else options.mode
    if mode not in ("nb2nb", "n2v"):
        raise LowdoseInputError(
            f"--domain projections trains on one scan's own noise: use --mode nb2nb or n2v, "
            f"not {mode}"
        )
    reason = (
        "projections: photon noise is independent from pixel to pixel before reconstruction, "
        f"so the sinograms' view halves train {mode} on the scan itself; each half is denoised "
        "alone, then reconstructed"
    )
    return FitPlan("projections", mode, reason)


def run_fit(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    options: FitOptions,
    *,
    log: Log = print,
    bars: ProgressScope = no_progress,
) -> FitResult:
    """Build the dataset, train within the budget, denoise the inputs, compare and report."""
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise LowdoseInputError(f"input {path} not found: pass DICOM folders, images or stacks")
    out = Path(out)
    if not is_wall_time(options.budget):
        raise LowdoseInputError(f"--budget {options.budget!r}: use HH:MM:SS, e.g. 00:05:00")
    plan = plan_fit(paths, options)
    if options.mode == "blend" and not bm3d_installed():  # before any work is done
        raise LowdoseInputError("--mode blend needs the bm3d package: pip install lowdose[bm3d]")
    if plan.route == "single" and options.mode == "auto":  # the mode waits for the data
        log("route: single (one acquisition); mode: blend for one CT scan in HU, else nb2nb")
    else:
        log(f"route: {plan.route}, mode {plan.mode} — {plan.reason}")
    if plan.route not in ("sinogram", "projections"):
        check_hu_inputs(paths, options.units, modality=options.modality, skip_bad=options.skip_bad)
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        dataset, data_key = _dataset_stage(paths, out, plan, options, log=log, bars=bars)
    except LowdoseInputError:
        if fresh:  # bad input in a new fit: leave nothing behind (a resumed one keeps its stages)
            shutil.rmtree(out, ignore_errors=True)
        raise
    # from here on a failure keeps every finished stage: a rerun resumes from them
    plan = _one_scan_plan(plan, dataset, options, log=log)
    plan = _projection_mode(plan, dataset, options, log=log)
    if plan.mode in _NO_TRAINING:
        run_dir, checkpoint = None, NETWORK
    else:
        run_dir = _train_stage(dataset, data_key, out, plan, options, log=log)
        checkpoint = str(run_dir / "best.ckpt")
    denoised = _denoise_stage(paths, out, checkpoint, plan, options, log=log, bars=bars)
    preferred = _compare_stage(dataset, checkpoint, plan, out, log=log, bars=bars,
                               paths=paths, options=options)  # fmt: skip
    record = {"plan": asdict(plan), "options": asdict(options),
              "inputs": [str(p) for p in paths], "dataset": str(dataset),
              "run_dir": None if run_dir is None else str(run_dir), "checkpoint": checkpoint,
              "denoised": [str(p) for p in denoised]}  # fmt: skip
    atomic_write_text(out / "fit.json", json.dumps(record, indent=2))
    report = write_fit_report(out)
    return FitResult(plan, dataset, run_dir, denoised, report, preferred)


def _dataset_stage(paths, out: Path, plan: FitPlan, options: FitOptions, *, log, bars):
    folder = out / "dataset"
    key = stage_key("fit-dataset-v1", inputs_key(paths), plan.route, options.angles,
                    options.split_by, options.modality, options.seed, options.dataset_key,
                    options.skip_bad, list(options.fractions), options.center, options.flat,
                    options.dark)  # fmt: skip
    dataset = folder / "dataset.h5"
    if stage_done(folder, key):
        log(f"dataset: reusing {dataset}")
        return dataset, key
    prepare_stage(folder, key)  # the builders write atomically: no partial file to clear
    with bars() as progress:
        summary = _build(paths, dataset, plan, options, progress, log)
    log(summary.describe())  # includes the split made and the measured noise correlation
    finish_stage(folder, key)
    return dataset, key


def _build(paths, dataset: Path, plan: FitPlan, options: FitOptions, progress, log):
    if plan.route == "repeats":
        return build_from_repeats(paths, dataset, seed=options.seed, split_by=options.split_by,
                                  skip_bad=options.skip_bad,
                                  fractions=options.fractions)  # fmt: skip
    if plan.route == "projections":
        return build_from_projection_halves(paths, dataset, angles=options.angles,
                                            seed=options.seed, split_by=options.split_by,
                                            fractions=options.fractions, progress=progress,
                                            log=log, **scan_options(options))  # fmt: skip
    if plan.route == "sinogram":
        return build_from_projections(paths, dataset, angles=options.angles, splits=2,
                                      seed=options.seed, split_by=options.split_by,
                                      fractions=options.fractions, progress=progress, log=log,
                                      **scan_options(options))  # fmt: skip
    return build_from_single(paths, dataset, seed=options.seed, split_by=options.split_by,
                             modality=options.modality, skip_bad=options.skip_bad,
                             fractions=options.fractions)  # fmt: skip


_NO_TRAINING = ("blend", "builtin")  # the one-scan CT modes: the built-in model, no training
ONE_SCAN_REASON = (
    "one CT scan in HU and no second realisation: its reconstruction noise is correlated, "
    "which Neighbor2Neighbor and Noise2Void assume away (+0.10 dB measured), so no training: "
    "the built-in model ct-sinogram averaged with BM3D given each slice's own noise spectrum"
)


def _one_scan_plan(plan: FitPlan, dataset: Path, options: FitOptions, *, log) -> FitPlan:
    """``--mode auto`` on one CT scan in HU becomes the blend (see the module docstring)."""
    is_ct_hu = read_info(dataset).attrs.is_ct_hu
    if plan.mode == "blend" and not is_ct_hu:
        raise LowdoseInputError(
            f"--mode blend is for CT in HU, and {dataset} is not; use --mode nb2nb or n2v"
        )
    if plan.route != "single" or options.mode != "auto":
        return plan
    if not is_ct_hu:
        log(f"mode {plan.mode} — {plan.reason}")
        return plan
    if bm3d_installed():
        plan = FitPlan("single", "blend", ONE_SCAN_REASON)
    else:  # an optional extra: the built-in model alone, and say what the blend would need
        plan = FitPlan("single", "builtin", ONE_SCAN_REASON.split(": the built-in")[0]
                       + ": the built-in model ct-sinogram alone (the blend with spectrum BM3D, "
                       "+0.76 dB at quarter dose, needs pip install lowdose[bm3d])")  # fmt: skip
    log(f"mode {plan.mode} — {plan.reason}")
    return plan


NB2NB_MIN_PX = 64
"""Neighbor2Neighbor halves its patch and the U-Net needs multiples of 32: images >= 64 px."""


def _patch_px(dataset: Path) -> int:
    """The training patch: 64 px, or 32 px for images narrower than 64 (a view half of few
    views); the U-Net's five poolings need a multiple of 32."""
    height, width = read_info(dataset).shape[2:]
    return 64 if min(height, width) >= 64 else 32


def _projection_mode(plan: FitPlan, dataset: Path, options: FitOptions, *, log) -> FitPlan:
    """Projection halves narrower than 64 px train Noise2Void (nb2nb's patch cannot fit)."""
    if plan.route != "projections" or plan.mode != "nb2nb":
        return plan
    height, width = read_info(dataset).shape[2:]
    if min(height, width) >= NB2NB_MIN_PX:
        return plan
    if options.mode != "auto":
        raise LowdoseInputError(
            f"{dataset}: view halves of {height} x {width} px are too small for nb2nb (it needs "
            f">= {NB2NB_MIN_PX} px each way); use --mode n2v"
        )
    why = f" (n2v: halves of {height} views are too few for nb2nb's {NB2NB_MIN_PX} px)"
    plan = FitPlan("projections", "n2v", plan.reason.replace("nb2nb", "n2v") + why)
    log(f"mode {plan.mode} — {plan.reason}")
    return plan


def _train_stage(dataset: Path, data_key: str, out: Path, plan: FitPlan, options, *, log) -> Path:
    run_dir = out / "train"
    config = TrainConfig(
        data=dataset, out=run_dir, mode=plan.mode, loss="mse", width=options.width,
        residual=True, patch=_patch_px(dataset), batch_size=16, epochs=100_000,
        samples_per_epoch=16 * 40,
        max_time=options.budget, seed=options.seed, threads=options.threads, val_crop=256,
    )  # fmt: skip
    key = stage_key("fit-train-v1", data_key, config.flat_values())
    if stage_done(run_dir, key):
        log(f"training: reusing {run_dir / 'best.ckpt'}")
    else:
        resume = prepare_stage(run_dir, key) and (run_dir / "last.ckpt").is_file()
        log(f"training {plan.mode} (width {options.width}, residual) for at most "
            f"{options.budget}{' (resuming)' if resume else ''}; clean-free selection")  # fmt: skip
        result = train(config, resume=resume)
        score = f"{result.monitor} {result.best_val_psnr_db:.2f} dB"
        log(f"trained {result.global_step} steps; best {score}")
        finish_stage(run_dir, key, steps=result.global_step)
    scores = read_validation_scores(run_dir)  # a reused run warns as a fresh one does
    line = None if scores is None else scores.warning(str(run_dir))
    if line is not None:
        log(f"warning: {line}")
    return run_dir


def _denoise_stage(paths, out: Path, checkpoint: str, plan: FitPlan, options, *, log, bars):
    folder = out / "denoised"
    with bars() as progress:
        if plan.route == "projections":
            written = denoise_projection_scans(paths, folder, checkpoint, angles=options.angles,
                                               device=options.device,
                                               **scan_options(options))  # fmt: skip
        elif plan.route == "sinogram":
            written = denoise_sinograms(
                paths,
                folder,
                checkpoint,
                angles=options.angles,
                device=options.device,
                **scan_options(options),
            )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            written = denoise_files(paths, folder, checkpoint, progress=progress,
                                    tta=NETWORK_TTA if plan.mode in _NO_TRAINING else 1,
                                    blend_bm3d_psd=plan.mode == "blend", device=options.device,
                                    skip_bad=options.skip_bad, warn=log,
                                    units=options.units)  # fmt: skip
    log(f"denoised {len(paths)} input(s) into {folder}/ ({len(written)} files)")
    return written


def scan_options(options: FitOptions) -> dict:
    """What reading an instrument scan takes from the options (:func:`prepare_scan`)."""
    keys = ("center", "flat", "dark", "dataset_key")
    return {key: getattr(options, key) for key in keys}


def _compare_stage(dataset: Path, checkpoint: str, plan: FitPlan, out: Path, *, log, bars,
                   paths, options: FitOptions) -> str:  # fmt: skip
    with bars() as progress:
        if plan.route == "projections":
            comparison = compare_projection_domain(dataset, checkpoint, paths,
                                                   scan_options=scan_options(options),
                                                   angles=options.angles,
                                                   progress=progress)  # fmt: skip
        else:
            comparison = compare_methods(dataset, checkpoint, progress=progress,
                                         one_scan_blend=plan.mode in _NO_TRAINING)  # fmt: skip
    save_comparison(comparison, out / "compare")
    log(f"would use: {comparison.preferred} — {comparison.reason}")
    return comparison.preferred
