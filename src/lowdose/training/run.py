"""Train a denoiser (Noise2Noise, Noise2Clean, Neighbor2Neighbor or Noise2Void) with Lightning.

``train(config)`` is the one entry point for the CLI and the experiment runner. Lightning runs the
loop, precision, checkpointing and DDP across processes, GPUs and nodes (``devices``,
``num_nodes``, ``strategy``; gloo on CPU); this module only wires the pieces:
``module.DenoiseModule`` (loss, schedule, validation PSNR), ``datamodule`` (seeded, resumable,
sharded sampling), ``noise_check`` (the noise-correlation warning of the single-acquisition
modes), ``budget`` (a ``--budget`` run's plan, made before training), ``replan`` (its re-plans
from the loop's measured rate, and what it achieved), ``divergence`` (a stop at non-finite
outputs) and ``run_dir`` (atomic files, metrics, manifest). Loading what it saved is
:func:`lowdose.models.checkpoint.load_model`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
import warnings
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lowdose.core.errors import LowdoseInputError
from lowdose.models.checkpoint import load_model, store_identity, store_meta
from lowdose.models.validation_scores import ValidationScores
from lowdose.training.budget import BudgetPlan, planned_config
from lowdose.training.config import TrainConfig, load_train_config, save_config, with_derived_epochs
from lowdose.training.datamodule import PairDataModule
from lowdose.training.dataset_meta import dataset_meta
from lowdose.training.divergence import StopOnDivergence
from lowdose.training.module import DenoiseModule
from lowdose.training.noise_check import warn_if_correlated
from lowdose.training.progress_bar import EpochProgressBar
from lowdose.training.replan import BudgetOutcome, BudgetReplan, budget_outcome
from lowdose.training.run_dir import (
    AtomicCheckpointIO,
    MetricsCsv,
    read_budget_plan,
    write_manifest,
)
from lowdose.training.throughput import Probe
from lowdose.training.validity import measure_validity, store_validity
from lowdose.training.wall_time import wall_time_s
from lowdose.training.weight_averaging import EMAWeights

log = logging.getLogger("lowdose.training.run")

STOPPED_CHECKPOINT = "stopped.ckpt"  # renamed to last.ckpt when fit returns


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished (or time-limited) run produced.

    ``best_val_psnr_db`` is the best value of ``monitor`` in dB with data_range 1:
    ``val_upsnr_db`` (the clean-free unbiased estimate, ``val_reference == "realisation"``),
    ``val_psnr_db`` against clean images (``"clean"``) or ``val_self_db`` (``"self"``: the
    single-acquisition mode's own validation loss, not a PSNR to clean); ``epochs_done`` counts
    completed epochs; ``budget_plan`` is the plan of a ``--budget`` run (None otherwise, and
    for a rerun whose ``max_steps`` came from a config file); ``scores``: ``best.ckpt``'s score
    and the identity's (``scores.warning()``: the line to show when training made images worse).
    """

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_val_psnr_db: float
    val_reference: str
    monitor: str
    epochs_done: int
    global_step: int
    model_name: str
    budget_plan: BudgetPlan | None = None
    scores: ValidationScores | None = None
    budget_outcome: BudgetOutcome | None = None


def train(config: TrainConfig, *, resume: bool = False, probe: Probe | None = None) -> RunResult:
    """Train as ``config`` says; with ``resume`` continue ``config.runtime.out/last.ckpt``.

    Writes ``config.yaml``, ``manifest.json``, ``metrics.csv``, ``best.ckpt`` (the best validated
    weights, not the last; its score and the identity's go into it, the manifest and the result)
    and ``last.ckpt`` in ``config.runtime.out``. A ``budget`` without ``max_steps`` is planned
    first (a short probe, or the injected ``probe``, e.g. speeds measured once on an idle
    machine; the plan is logged in one line and its keys land in ``config.yaml``). Raises
    ``LowdoseInputError`` for a missing dataset, a non-empty run directory without ``resume``,
    or a resume without ``last.ckpt``.
    """
    started_s = time.perf_counter()  # a budget counts from here: probe and start-up included
    run_dir = Path(config.runtime.out)
    data = Path(config.data.path)
    if not data.is_file():
        raise LowdoseInputError(f"dataset {data} not found: build one with `lowdose simulate`")
    last = run_dir / "last.ckpt"
    if resume and not last.is_file():
        raise LowdoseInputError(f"{last} not found: nothing to resume, train without --resume")
    if not resume and last.exists():
        raise LowdoseInputError(f"{run_dir} already holds a run: use --resume or a new --out")
    if config.runtime.threads:
        torch.set_num_threads(config.runtime.threads)  # before the probe: it measures these threads
    meta = dataset_meta(data, config)
    config, plan = _resolved(config, run_dir, resume=resume, probe=probe)
    L.seed_everything(config.runtime.seed, workers=True, verbose=False)
    warn_if_correlated(data, config.model.mode)  # before training: one line, the CLI shows it
    module = DenoiseModule(config, view_split=meta.view_split, meta=meta.to_hparams(run_dir))
    datamodule = PairDataModule(config)
    metrics = MetricsCsv(run_dir / "metrics.csv")
    replan = None  # a run planned here re-plans from its loop's rate; a resume finishes its plan
    if plan is not None and not resume and config.schedule.replan:
        replan = BudgetReplan(config, plan, started_s, partial(_save_config, run_dir))
    trainer = _trainer(config, run_dir, metrics, monitor=module.monitor, replan=replan)
    manifest = partial(
        write_manifest,
        run_dir,
        data_sha256=meta.dataset_sha256,
        val_reference=meta.val_reference,
        view_split=meta.view_split,
        scaling=meta.scaling,
        model_name=module.model.name,
        budget_plan=plan,
    )
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
        if plan is not None:  # now too: a killed budget run keeps its plan for the resume
            manifest(config=config)
    fit_s = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*Consider setting `persistent_workers.*")
        warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")  # it is
        warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    fit_s = time.perf_counter() - fit_s
    config = config if replan is None else replan.config  # the re-planned steps
    _final_checkpoints(trainer, run_dir)
    best = trainer.checkpoint_callback
    best_psnr = float(best.best_model_score) if best.best_model_score is not None else np.nan
    scores = metrics.validation_scores(module.monitor, best_db=best_psnr)
    outcome = None
    if trainer.is_global_zero:
        scores = _never_below_input(module.model, run_dir / "best.ckpt", scores)
        store_meta(run_dir / "best.ckpt", scores=scores.to_dict())
        validity = _validity(run_dir / "best.ckpt", config)
        if plan is not None:
            outcome = budget_outcome(
                plan,
                config,
                achieved_steps=trainer.global_step,
                train_s=fit_s,
                wall_s=time.perf_counter() - started_s,
                replan=replan,
                resumed=resume,
            )
        manifest(config=config, validity=validity, scores=scores, budget_outcome=outcome)
    return RunResult(
        run_dir=run_dir,
        best_checkpoint=run_dir / "best.ckpt",
        last_checkpoint=last,
        best_val_psnr_db=best_psnr,
        val_reference=meta.val_reference,
        monitor=module.monitor,
        epochs_done=trainer.current_epoch,
        global_step=trainer.global_step,
        model_name=module.model.name,
        budget_plan=plan,
        scores=scores,
        budget_outcome=outcome,
    )


def _never_below_input(model, best: Path, scores: ValidationScores) -> ValidationScores:
    """A residual net whose best validation is below its input's keeps its step-0 state.

    That state is the identity (the output convolution starts at zero), scored by the identity's
    own validation: ``best.ckpt`` is reset to it and the scores say so (one warning line).
    """
    if not (scores.worse_than_identity and getattr(model, "residual", False) and best.is_file()):
        return scores
    store_identity(best)
    log.warning(
        "no validation beat the noisy input: best.ckpt holds the untrained (identity) network"
    )
    return scores.with_identity_fallback()


def _save_config(run_dir: Path, config: TrainConfig) -> None:
    save_config(config, run_dir / "config.yaml")


def _validity(best: Path, config: TrainConfig) -> dict | None:
    """Measure the model's clean-free validity range and store it in ``best.ckpt`` (or None).

    Needs two realisations per validation image; a dataset with one (nb2nb / n2v data) gets no
    range, said in the log. The averaged weights (EMA) are what best.ckpt holds and what is
    measured.
    """
    if not best.is_file():
        return None
    network, _ = load_model(best)
    try:
        validity = measure_validity(
            network, config.data.path, seed=config.runtime.seed, crop=config.data.val_crop
        )
    except LowdoseInputError as error:
        log.info("no validity range: %s", error)
        return None
    store_validity(best, validity)
    return validity


def _resolved(config: TrainConfig, run_dir: Path, *, resume: bool, probe: Probe | None = None):
    """``(config, plan)``: a budget planned (once: ``max_steps`` set means planned), epochs."""
    plan = None
    if config.schedule.budget is not None and config.schedule.max_steps is None:
        config, plan = planned_config(config, probe=probe)
        log.info(plan.describe())
    elif resume:
        plan = read_budget_plan(run_dir)
    return with_derived_epochs(config), plan


def resume_config(run_dir: str | Path, overrides: dict | None = None) -> TrainConfig:
    """The saved ``RUN_DIR/config.yaml`` with ``overrides`` (e.g. more epochs, a new max_time)."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise LowdoseInputError(f"{saved} not found: --resume needs a run directory from train")
    return load_train_config(saved, {**(overrides or {}), "out": run_dir})


def _trainer(
    config: TrainConfig,
    run_dir: Path,
    metrics: MetricsCsv,
    *,
    monitor: str,
    replan: BudgetReplan | None = None,
) -> L.Trainer:
    runtime, schedule = config.runtime, config.schedule
    best = ModelCheckpoint(
        dirpath=run_dir,
        filename="best",
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    # A second writer of last.ckpt every N optimiser steps, so a killed run loses little.
    periodic = _PeriodicLast(
        dirpath=run_dir,
        filename="last",
        every_n_train_steps=runtime.checkpoint_every_n_steps,
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    callbacks = [metrics, best, periodic, StopOnDivergence(monitor)]
    if replan is not None:  # before the checkpoints: they save the re-planned state
        callbacks.append(replan)
    if config.optimisation.ema_decay:
        callbacks.append(EMAWeights(config.optimisation.ema_decay))
    if not runtime.quiet:
        callbacks.append(EpochProgressBar())
    strategy = runtime.strategy
    if strategy == "ddp" and _on_cpu(runtime.accelerator):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=schedule.epochs,
        max_steps=-1 if schedule.stop_step is None else schedule.stop_step,
        max_time=_timedelta(schedule.max_time),
        accelerator=runtime.accelerator,
        devices=runtime.devices,
        num_nodes=runtime.num_nodes,
        strategy=strategy,
        precision=runtime.precision,
        deterministic=runtime.deterministic,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        enable_progress_bar=not runtime.quiet,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        log_every_n_steps=1,
        # epochs of a re-planned run differ in length: a new loader (same pairs) per epoch
        reload_dataloaders_every_n_epochs=int(len(schedule.step_plan or ()) > 1),
    )


def _final_checkpoints(trainer: L.Trainer, run_dir: Path) -> None:
    # A --max-time stop can end mid-epoch, after the last periodic save: keep the final state so a
    # resume loses nothing, and give a run too short to validate a best.ckpt (its final weights).
    # save_checkpoint holds a barrier: every rank calls it, rank 0 writes.
    if any(isinstance(c, _PeriodicLast) and c.stopped_mid_epoch for c in trainer.callbacks):
        if trainer.is_global_zero:  # the state at the guard's stop, not the epoch-end one
            (run_dir / STOPPED_CHECKPOINT).replace(run_dir / "last.ckpt")
        trainer.strategy.barrier()
    else:
        trainer.save_checkpoint(run_dir / "last.ckpt")
    missing_best = trainer.strategy.broadcast(not (run_dir / "best.ckpt").exists(), src=0)
    if missing_best:
        log.warning("no validation finished: best.ckpt holds the final weights")
        trainer.save_checkpoint(run_dir / "best.ckpt")


def _timedelta(max_time: str | None) -> datetime.timedelta | None:
    """``"HH:MM:SS"`` or ``"DD:HH:MM:SS"`` -> timedelta (Lightning's string form needs all four)."""
    return None if max_time is None else datetime.timedelta(seconds=wall_time_s(max_time))


def _on_cpu(accelerator: str) -> bool:
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


class _PeriodicLast(ModelCheckpoint):
    """``last.ckpt`` every N steps, except on an epoch's last batch.

    The epoch-end checkpoint follows right after that batch; one written before validation would
    resume into an epoch whose validation and schedule step never ran.
    """

    stopped_mid_epoch = False

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if progress < trainer.num_training_batches:
            super().on_train_batch_end(trainer, *args, **kwargs)
            if trainer.should_stop and not self.stopped_mid_epoch:
                # The max_time guard (Lightning's Timer, which runs before checkpoint callbacks)
                # stops inside an epoch. Keep this state: the epoch-end saves that follow mark
                # the epoch done, and a resume from them would skip its missing steps.
                self.stopped_mid_epoch = True
                trainer.save_checkpoint(Path(self.dirpath) / STOPPED_CHECKPOINT)
