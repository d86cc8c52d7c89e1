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
from functools import partial
from pathlib import Path

from lowdose.baselines.filters import bm3d_installed
from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, ProgressScope, no_progress
from lowdose.evaluation.fit_compare import compare_methods, save_comparison
from lowdose.evaluation.projection_compare import compare_projection_domain
from lowdose.inference.files import check_hu_inputs, denoise_files
from lowdose.inference.projection_denoise import denoise_projection_scans
from lowdose.inference.spectrum_blend import NETWORK, NETWORK_TTA
from lowdose.inference.view_split import denoise_sinograms
from lowdose.owndata.projection_domain import build_from_projection_halves
from lowdose.owndata.projection_scan import build_from_projections
from lowdose.owndata.repeats import build_from_repeats
from lowdose.owndata.single import build_from_single
from lowdose.pipeline.cache import (
    finish_stage,
    inputs_key,
    prepare_stage,
    stage_done,
    stage_key,
)
from lowdose.pipeline.fit_plan import (
    NO_TRAINING,
    FitOptions,
    FitPlan,
    one_scan_plan,
    patch_px,
    plan_fit,
    projection_mode,
    scan_reading,
)
from lowdose.report.fit_report import write_fit_report
from lowdose.training.config import TrainConfig
from lowdose.training.run import train
from lowdose.training.run_dir import read_validation_scores
from lowdose.training.wall_time import is_wall_time


@dataclass(frozen=True)
class FitResult:
    """Where ``fit`` wrote things, and what it chose."""

    plan: FitPlan
    dataset: Path
    run_dir: Path | None
    denoised: list[Path]
    report: Path
    preferred: str


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
    plan = one_scan_plan(plan, dataset, options, log=log)
    plan = projection_mode(plan, dataset, options, log=log)
    if plan.mode in NO_TRAINING:
        run_dir, checkpoint = None, NETWORK
    else:
        run_dir = _train_stage(dataset, data_key, out, plan, options, log=log)
        checkpoint = str(run_dir / "best.ckpt")
    denoised = _denoise_stage(paths, out, checkpoint, plan, options, log=log, bars=bars)
    preferred = _compare_stage(
        dataset, checkpoint, plan, out, log=log, bars=bars, paths=paths, options=options
    )
    record = {
        "plan": asdict(plan),
        "options": asdict(options),
        "inputs": [str(p) for p in paths],
        "dataset": str(dataset),
        "run_dir": None if run_dir is None else str(run_dir),
        "checkpoint": checkpoint,
        "denoised": [str(p) for p in denoised],
    }
    atomic_write_text(out / "fit.json", json.dumps(record, indent=2))
    report = write_fit_report(out)
    return FitResult(plan, dataset, run_dir, denoised, report, preferred)


def _dataset_stage(paths, out: Path, plan: FitPlan, options: FitOptions, *, log, bars):
    folder = out / "dataset"
    key = stage_key(
        "fit-dataset-v1",
        inputs_key(paths),
        plan.route,
        options.angles,
        options.split_by,
        options.modality,
        options.seed,
        options.dataset_key,
        options.skip_bad,
        list(options.fractions),
        options.center,
        options.flat,
        options.dark,
        *([options.backend] if options.backend != "builtin" else []),  # old keys stay valid
    )
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
        return build_from_repeats(
            paths,
            dataset,
            seed=options.seed,
            split_by=options.split_by,
            skip_bad=options.skip_bad,
            fractions=options.fractions,
        )
    if plan.route in ("projections", "sinogram"):  # instrument scans, read one way for both
        builder = (
            build_from_projection_halves
            if plan.route == "projections"
            else partial(build_from_projections, splits=2)
        )
        return builder(
            paths,
            dataset,
            seed=options.seed,
            split_by=options.split_by,
            fractions=options.fractions,
            progress=progress,
            log=log,
            **scan_reading(options).options(),
        )
    return build_from_single(
        paths,
        dataset,
        seed=options.seed,
        split_by=options.split_by,
        modality=options.modality,
        skip_bad=options.skip_bad,
        fractions=options.fractions,
    )


def _train_stage(dataset: Path, data_key: str, out: Path, plan: FitPlan, options, *, log) -> Path:
    run_dir = out / "train"
    config = TrainConfig(
        data=dataset,
        out=run_dir,
        mode=plan.mode,
        loss="mse",
        width=options.width,
        residual=True,
        patch=patch_px(dataset),
        batch_size=16,
        epochs=100_000,
        samples_per_epoch=16 * 40,
        max_time=options.budget,
        seed=options.seed,
        threads=options.threads,
        val_crop=256,
    )
    key = stage_key("fit-train-v1", data_key, config.flat_values())
    if stage_done(run_dir, key):
        log(f"training: reusing {run_dir / 'best.ckpt'}")
    else:
        resume = prepare_stage(run_dir, key) and (run_dir / "last.ckpt").is_file()
        log(
            f"training {plan.mode} (width {options.width}, residual) for at most "
            f"{options.budget}{' (resuming)' if resume else ''}; clean-free selection"
        )
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
            written = denoise_projection_scans(
                paths, folder, checkpoint, reading=scan_reading(options), device=options.device
            )
        elif plan.route == "sinogram":
            written = denoise_sinograms(
                paths, folder, checkpoint, reading=scan_reading(options), device=options.device
            )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            written = denoise_files(
                paths,
                folder,
                checkpoint,
                progress=progress,
                tta=NETWORK_TTA if plan.mode in NO_TRAINING else 1,
                blend_bm3d_psd=plan.mode == "blend",
                device=options.device,
                skip_bad=options.skip_bad,
                warn=log,
                units=options.units,
            )
    log(f"denoised {len(paths)} input(s) into {folder}/ ({len(written)} files)")
    return written


def _compare_stage(
    dataset: Path,
    checkpoint: str,
    plan: FitPlan,
    out: Path,
    *,
    log,
    bars,
    paths,
    options: FitOptions,
) -> str:
    with bars() as progress:
        if plan.route == "projections":
            comparison = compare_projection_domain(
                dataset,
                checkpoint,
                paths,
                reading=scan_reading(options),
                progress=progress,
            )
        else:
            comparison = compare_methods(
                dataset, checkpoint, progress=progress, one_scan_blend=plan.mode in NO_TRAINING
            )
    save_comparison(comparison, out / "compare")
    log(f"would use: {comparison.preferred} — {comparison.reason}")
    return comparison.preferred
