"""Run one paper experiment end to end, each stage cached by the content hash of its inputs.

Layout under ``OUT/<experiment>/``::

    data/<key>.h5               the dataset (simulate xray | simulate ct); its name is its hash
    train/<model>/seed<s>/      one Lightning run directory per model and training seed s
                                (stage.json marks it finished)
    results/                    evaluate: results.csv/.parquet, summary.md, panels.npz
    sweep/                      accuracy range against clean: sweep.csv
    iq/                         image quality on the QA phantom (iq.enabled): iq.csv, iq_nps.csv,
                                iq_ttf.csv, iq.json (:mod:`lowdose.pipeline.iq_stage`)
    experiment.json             resolved config (with ``seeds``), stage keys, wall times,
                                environment

Seeds: each network is trained ``config.seeds`` times, with training seeds ``train.seed + 0 ..
seeds - 1`` (:func:`lowdose.pipeline.config.training_seeds`); every (model, seed) is its own
cached, resumable stage, so raising ``--seeds`` later trains only the new seeds. The evaluation
gets every checkpoint (its rows carry ``seed``); the sweep against clean uses each model's
*first* seed's checkpoint (the lowest seed, :func:`first_checkpoint`), also for models of another
experiment (``sweep.foreign_models``).

A stage whose ``stage.json`` holds the same key is skipped; a training run that was interrupted
(its key matches but it is not finished) resumes from ``last.ckpt``; a stage whose inputs changed
is recomputed and its old output moved aside to ``<name>.stale``.

Datasets are built by :mod:`lowdose.pipeline.dataset_stage` (where real CT data is looked up).
"""

from __future__ import annotations

import time
from pathlib import Path

from lowdose.core.atomic import atomic_write_text
from lowdose.core.environment import capture_environment
from lowdose.core.file_hash import file_sha256
from lowdose.core.progress import Log, ProgressScope, no_progress
from lowdose.data.dataset import read_attrs
from lowdose.data.experiment_record import ExperimentRecord, read_experiment_record
from lowdose.evaluation.evaluate import evaluate
from lowdose.evaluation.sweep import (
    default_targets_db,
    run_sweep,
    sweep_model,
    trained_sweep_models,
    write_sweep,
)
from lowdose.pipeline.cache import finish_stage, prepare_stage, stage_done, stage_key
from lowdose.pipeline.config import ExperimentConfig, training_seeds
from lowdose.pipeline.dataset_stage import build_dataset, workers
from lowdose.pipeline.iq_stage import iq_stage
from lowdose.training.config import make_train_config
from lowdose.training.run import resume_config, train


def run_dir_for(out_dir: Path, model: str, seed: int) -> Path:
    """The training run folder of ``model`` at training seed ``seed``: ``train/<model>/seed<s>``."""
    return out_dir / "train" / model / f"seed{seed}"


def first_checkpoint(experiment_dir: Path, model: str) -> Path | None:
    """``best.ckpt`` of ``model``'s lowest finished seed in an experiment folder, or None."""
    found = []
    for run in (experiment_dir / "train" / model).glob("seed*"):
        suffix = run.name.removeprefix("seed")
        if suffix.lstrip("-").isdigit() and (run / "best.ckpt").is_file():
            found.append((int(suffix), run / "best.ckpt"))
    return min(found)[1] if found else None


def train_models(
    config: ExperimentConfig, data_path: Path, data_key: str, out_dir: Path, log: Log
) -> dict[str, list[Path]]:
    """Train every model at every seed (skip finished, resume interrupted).

    Returns
    -------
    dict
        Model name -> its ``best.ckpt`` paths, in seed order (first seed first).
    """

    checkpoints: dict[str, list[Path]] = {}
    for spec in config.models:
        legacy = out_dir / "train" / spec.name
        if (
            legacy / "stage.json"
        ).is_file():  # a run in train/<model>/ itself, without seed folders
            prepare_stage(legacy, "seed-folders")  # moved aside to <model>.stale
            (legacy / "stage.json").unlink()
        for seed in training_seeds(config):
            checkpoints.setdefault(spec.name, []).append(
                _train_one(config, spec, seed, data_path, data_key, out_dir, log)
            )
    return checkpoints


def _train_one(config, spec, seed: int, data_path, data_key, out_dir, log: Log) -> Path:
    run_dir = run_dir_for(out_dir, spec.name, seed)
    train_values = {**config.train, "seed": seed}
    name = f"train {spec.name} (seed {seed})"
    key = stage_key("train-v2", data_key, spec.model_dump(), train_values)
    if stage_done(run_dir, key):
        log(f"{name}: cached")
    elif prepare_stage(run_dir, key) and (run_dir / "last.ckpt").is_file():
        log(f"{name}: resuming interrupted run")
        train(resume_config(run_dir), resume=True)
        finish_stage(run_dir, key)
    else:
        log(f"{name}: mode {spec.mode}, loss {spec.loss}")
        values = {**train_values, "data": data_path, "out": run_dir}
        values.update(mode=spec.mode, loss=spec.loss)
        train(make_train_config(values, source=f"experiment {config.name}"))
        finish_stage(run_dir, key)
    return run_dir / "best.ckpt"


def evaluate_stage(
    config: ExperimentConfig,
    data_path: Path,
    data_key: str,
    checkpoints: dict,
    out_dir: Path,
    log: Log,
    bars: ProgressScope,
) -> Path:
    """Evaluate every checkpoint (all seeds) and the filters on the test set.

    Cached by the checkpoints' hashes; ``checkpoints`` is :func:`train_models`' mapping.
    """

    folder = out_dir / "results"
    paths = [path for runs in checkpoints.values() for path in runs]
    hashes = {f"{path.parent.parent.name}/{path.parent.name}": file_sha256(path) for path in paths}
    key = stage_key("evaluate-v2", data_key, hashes, config.evaluate.cache_fields())
    if stage_done(folder, key):
        log("evaluate: cached")
        return folder
    prepare_stage(folder, key)
    log(
        f"evaluate: {len(checkpoints)} models x {config.seeds} seed(s), filters "
        f"{','.join(config.evaluate.filters)}"
    )
    with bars() as progress:
        evaluate(
            data_path,
            models=paths,
            filters=config.evaluate.filters,
            tuning=config.evaluate.tuning,
            tta=config.evaluate.tta,
            out_dir=folder,
            workers=workers(),
            progress=progress,
        )
    finish_stage(folder, key)
    return folder


def sweep_stage(
    config: ExperimentConfig,
    data_path: Path,
    data_key: str,
    checkpoints: dict,
    root: Path,
    log: Log,
) -> Path | None:
    """The sweep against clean (paper Fig. 2 / 4) of each model's first seed, cached."""

    spec = config.sweep
    if not spec.enabled:
        return None
    models = trained_sweep_models(data_path, {m: checkpoints[m][0] for m in spec.models})
    for foreign in spec.foreign_models:
        ckpt = first_checkpoint(root / foreign.experiment, foreign.model)
        if ckpt is None:
            log(f"sweep: {foreign.experiment}/{foreign.model} not trained in this run; left out")
            continue
        other = read_experiment_record(root / foreign.experiment / "experiment.json")
        trained_at = other.achieved_psnr_db
        models.append(
            sweep_model(
                ckpt, trained_at_db=trained_at, name=foreign.model, experiment=foreign.experiment
            )
        )
    folder = root / config.name / "sweep"
    hashes = {m.label: file_sha256(m.checkpoint) for m in models}
    key = stage_key("sweep-v2", data_key, hashes, spec.model_dump())
    if stage_done(folder, key):
        log("sweep: cached")
        return folder
    prepare_stage(folder, key)
    targets = default_targets_db(*spec.psnr_range_db, spec.levels)
    table = run_sweep(
        data_path,
        models,
        targets_db=targets,
        filters=spec.filters,
        n_images=spec.images,
        log=lambda text: log(f"sweep: {text}"),
    )
    write_sweep(table, folder)
    finish_stage(folder, key)
    return folder


def run_experiment(
    config: ExperimentConfig, root: Path, log: Log = print, bars: ProgressScope = no_progress
) -> Path:
    """Run every stage of one experiment under ``root/<name>``; return that folder.

    Each network is trained ``config.seeds`` times (see the module docstring for the layout).
    """

    out_dir = root / config.name
    out_dir.mkdir(parents=True, exist_ok=True)
    times = {}
    start = time.perf_counter()
    data_path, data_key = build_dataset(config.dataset, out_dir, log, bars)
    times["dataset_s"] = time.perf_counter() - start
    attrs = read_attrs(data_path)
    record = ExperimentRecord(
        name=config.name,
        paper_table=config.paper_table,
        scale=config.scale,
        baseline_target_db=attrs.target_psnr_db,
        achieved_psnr_db=attrs.achieved_psnr_db,
        dataset=str(data_path.relative_to(root)),
        dataset_attrs=attrs,
        config=config.model_dump(mode="json"),
        environment=capture_environment().report_fields(),
    )
    atomic_write_text(out_dir / "experiment.json", record.to_json())
    stamp = time.perf_counter()
    checkpoints = train_models(config, data_path, data_key, out_dir, log)
    times["train_s"] = time.perf_counter() - stamp
    stamp = time.perf_counter()
    evaluate_stage(config, data_path, data_key, checkpoints, out_dir, log, bars)
    times["evaluate_s"] = time.perf_counter() - stamp
    stamp = time.perf_counter()
    sweep_stage(config, data_path, data_key, checkpoints, root, log)
    times["sweep_s"] = time.perf_counter() - stamp
    stamp = time.perf_counter()
    iq_stage(config, checkpoints, out_dir, log, bars)
    times["iq_s"] = time.perf_counter() - stamp
    times["total_s"] = time.perf_counter() - start
    atomic_write_text(out_dir / "experiment.json", record.with_wall_times(times).to_json())
    return out_dir
