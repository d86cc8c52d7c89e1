"""What a training run leaves on disk, every file written atomically.

``RUN_DIR/config.yaml`` (resolved config), ``manifest.json`` (provenance and metric conventions),
``metrics.csv`` (one row per epoch), ``best.ckpt`` and ``last.ckpt``. Lightning's own checkpoint
writer opens the final name and writes into it (a kill mid-write leaves a truncated file), so
checkpoints go through ``AtomicCheckpointIO`` (temp file, fsync, rename).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lowdose.core.atomic import atomic_path, atomic_write_text
from lowdose.core.environment import capture_environment
from lowdose.data.scaling import NetworkScaling
from lowdose.models.validation_scores import ValidationScores
from lowdose.training.budget import BudgetPlan
from lowdose.training.config import val_monitor
from lowdose.training.replan import BudgetOutcome

log = logging.getLogger("lowdose.training.run")

METRICS_COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "val_psnr_db",
    "val_upsnr_db",
    "lr",
    "elapsed_s",
    "val_self_db",
    "val_identity_db",
    "val_pair_db",
)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, then rename it into place."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class MetricsCsv(L.Callback):
    """Append one row per validated epoch to ``metrics.csv`` and log it as one line.

    Its state (rows so far, elapsed time, the running train-loss sum of the current epoch) is
    saved in every checkpoint, so a resumed run continues the file as if never interrupted.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []
        self.elapsed_before_s = 0.0
        self.loss_sum = self.loss_count = 0.0
        self._start = time.perf_counter()

    def state_dict(self) -> dict:
        return {
            "rows": self.rows,
            "elapsed_s": self._elapsed_s(),
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
        }

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])
        self.elapsed_before_s = float(state["elapsed_s"])
        self.loss_sum, self.loss_count = state["loss_sum"], state["loss_count"]
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.loss_sum = self.loss_count = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.loss_sum += float(outputs["loss"])
        self.loss_count += 1

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "train_loss": self.loss_sum / max(self.loss_count, 1),
            "val_psnr_db": float(trainer.callback_metrics["val_psnr_db"]),
            # the clean-free selection score; NaN for runs validated against clean images
            "val_upsnr_db": float(trainer.callback_metrics.get("val_upsnr_db", float("nan"))),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(self._elapsed_s(), 3),
            # the single-acquisition modes' clean-free score (val_reference "self"), else NaN
            "val_self_db": float(trainer.callback_metrics.get("val_self_db", float("nan"))),
            # the noisy input returned unchanged, scored like the model (module.py); n2v: NaN
            "val_identity_db": float(trainer.callback_metrics.get("val_identity_db", float("nan"))),
            # the raw pair score, monitored for view-split halves (module.py); else NaN
            "val_pair_db": float(trainer.callback_metrics.get("val_pair_db", float("nan"))),
        }
        self.rows.append(row)
        if trainer.is_global_zero:
            atomic_write_text(self.path, _csv_text(self.rows))
            log.info(
                "epoch %d step %d train_loss %.3g val_psnr_db %.3f val_upsnr_db %.3f lr %.3g "
                "elapsed %.1fs val_self_db %.3f val_identity_db %.3f val_pair_db %.3f",
                *(row[key] for key in METRICS_COLUMNS),
            )

    def validation_scores(self, monitor: str, *, best_db: float) -> ValidationScores:
        """``best.ckpt``'s score ``best_db`` (the checkpoint callback's best) and the identity's.

        The identity scores the same on every validation (same images and masks): the last
        row's, which a resumed run restores, so a resume that validates no more still has it.
        NaN when no validation finished.
        """
        identity_db = float(self.rows[-1].get("val_identity_db", "nan")) if self.rows else math.nan
        return ValidationScores(monitor=monitor, model_db=best_db, identity_db=identity_db)

    def _elapsed_s(self) -> float:
        return self.elapsed_before_s + time.perf_counter() - self._start


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_manifest(
    run_dir: Path,
    *,
    config,
    data_sha256: str,
    val_reference: str,
    view_split: bool,
    scaling: NetworkScaling,
    model_name: str,
    budget_plan: BudgetPlan | None = None,
    validity: dict | None = None,
    scores: ValidationScores | None = None,
    budget_outcome: BudgetOutcome | None = None,
) -> None:
    """Write ``manifest.json``: provenance, seeds and the metric conventions of the run.

    ``budget_plan`` (every field of a ``--budget`` run's plan: measured speeds, overheads, the
    rule) is written as ``budget_plan``; null when the run was not planned here (no budget, or
    ``max_steps`` taken from a config file). ``validity`` is the clean-free validity range
    stored in ``best.ckpt`` (:func:`lowdose.training.validity.measure_validity`), once measured.
    ``scores`` (``validation_scores``) are ``best.ckpt``'s validation score and the identity's,
    once training ended (:func:`read_validation_scores` reads them back). ``budget_outcome``:
    what a budget run did against its plan (planned, re-planned and achieved steps, loop rate,
    wall times; :class:`~lowdose.training.replan.BudgetOutcome`), once it ended; ``max_steps``
    is the final plan's (a re-planned run's ``config.yaml`` has the same).
    """
    manifest = {
        **capture_environment().manifest_fields(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": config.runtime.seed,
        "dataset": str(Path(config.data.path).resolve()),
        "dataset_sha256": data_sha256,
        "model": model_name,
        "mode": config.model.mode,
        "loss": config.model.loss,
        "metrics": {
            "val_psnr_db": "mean over validation images of per-image PSNR against the "
            "val_reference (clean image, or the other noisy realisation), unclipped outputs",
            "val_upsnr_db": "clean-free: 10 log10(1 / mean uMSE), uMSE = mean((f(y_i) - y_j)^2) "
            "- Var(y_i - y_j) / 2 over validation pairs, both directions (NaN against clean)",
            "val_self_db": "clean-free, nb2nb/n2v: 10 log10(1 / mean loss) of the mode's own "
            "objective on validation images with fixed masks (n2v: blind-spot MSE; nb2nb: "
            "|f(g1 y) - g2 y|^2); not a PSNR to clean (NaN for other val_reference)",
            "val_identity_db": "the monitor's score of the identity (the noisy validation "
            "input returned unchanged) on the same images and masks; a model below it makes "
            "images worse (NaN for n2v: no comparable identity score)",
            "val_pair_db": "clean-free, realisation pairs: 10 log10(1 / mean((f(y_i) - y_j)^2)) "
            "over validation pairs, both directions; monitored for view-split halves, whose "
            "difference holds streaks as well as noise (NaN for other val_reference)",
            "monitor": val_monitor(val_reference, view_split=view_split),
            "selection": "clean-selected" if val_reference == "clean" else "clean-free",
            "data_range": 1.0,
            "scaling": dataclasses.asdict(scaling),
            "val_reference": val_reference,
            "val_crop": config.data.val_crop,
        },
        "schedule": config.optimisation.lr_schedule,
        "max_steps": config.schedule.max_steps,
        "budget_plan": None if budget_plan is None else dataclasses.asdict(budget_plan),
        "budget_outcome": None if budget_outcome is None else dataclasses.asdict(budget_outcome),
        "ema_decay": config.optimisation.ema_decay,
        "dose_range": None if config.data.dose_range is None else list(config.data.dose_range),
        "validity": validity,
        "validation_scores": None if scores is None else scores.to_dict(),
    }
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))


def read_budget_plan(run_dir: Path) -> BudgetPlan | None:
    """The ``budget_plan`` of ``RUN_DIR/manifest.json`` (written when training starts), or None."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8")).get("budget_plan")
    return None if saved is None else BudgetPlan.from_dict(saved)


def read_validation_scores(run_dir: Path) -> ValidationScores | None:
    """The ``validation_scores`` of ``RUN_DIR/manifest.json``, or None (none written yet)."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8")).get("validation_scores")
    return None if saved is None else ValidationScores.from_dict(saved)
