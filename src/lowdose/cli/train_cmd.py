"""``lowdose train``: fit a U-Net by Noise2Noise, Noise2Clean, Neighbor2Neighbor or Noise2Void.

Every training option is a flat key of :class:`lowdose.training.config.TrainConfig`: its default
and its help are the config field's (:func:`_option`), and only the options given on the command
line override ``--config`` or ``--resume`` (:func:`_given`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from lowdose.cli._app import app, console, user_errors, warn_line
from lowdose.core.errors import LowdoseInputError
from lowdose.training.config import (
    FLAT_KEYS,
    load_train_config,
    make_train_config,
    train_field,
)

_BUDGET_HELP = (
    "The probe (a few seconds) picks the width, residual output, patch, batch, warm-up + cosine "
    "lr and the step count (lowdose.training.budget), prints them in one line and writes them "
    "into config.yaml and manifest.json, so a rerun or --resume repeats the same steps without "
    "probing. Options you give win: --width 32 --budget 00:30:00 fixes the width and only sizes "
    "the steps. Unless given, --max-time becomes a guard a margin past the budget. The run then "
    "re-plans its steps from its own measured rate at epoch ends (--no-replan: keep the "
    "probe's plan)."
)


def _option(key: str, *names: str, more: str = "") -> Any:
    """A typer option for the TrainConfig key ``key``: the field's default and description."""
    field = train_field(key)
    default = None if field.is_required() else field.default
    return typer.Option(default, *names, help=" ".join(filter(None, (field.description, more))))


@app.command()
def train(
    ctx: typer.Context,
    data: Path = _option("data", "--data"),
    mode: str = _option("mode", "--mode"),
    loss: str = _option("loss", "--loss"),
    val_reference: str = _option("val_reference", "--val-reference"),
    out: Path = _option("out", "--out"),
    config: Path = typer.Option(
        None, "--config", help="YAML TrainConfig (flat or grouped keys); options given win."
    ),
    resume: Path = typer.Option(None, "--resume", help="Continue RUN_DIR from its last.ckpt."),
    budget: str = _option("budget", more=_BUDGET_HELP),
    replan: bool = _option("replan", "--replan/--no-replan"),
    epochs: int = _option("epochs"),
    max_steps: int = _option("max_steps"),
    validations: int = _option("validations"),
    schedule: str = _option("schedule"),
    patch: int = _option("patch"),
    batch_size: int = _option("batch_size"),
    max_time: str = _option("max_time"),
    seed: int = _option("seed"),
    workers: int = _option("workers"),
    precision: str = _option("precision"),
    accelerator: str = _option(
        "accelerator", "--accelerator", "--device", more="--device is the same option."
    ),
    devices: int = _option("devices"),
    num_nodes: int = _option("num_nodes"),
    strategy: str = _option("strategy"),
    width: int = _option("width"),
    residual: bool = _option("residual", "--residual/--no-residual"),
    lr: float = _option("lr"),
    ema_decay: float = _option("ema_decay", "--ema-decay"),
    warmup_steps: int = _option("warmup_steps"),
    samples_per_epoch: int = _option("samples_per_epoch"),
    val_crop: int = _option("val_crop"),
    threads: int = _option("threads"),
    channels_last: bool = _option("channels_last", "--channels-last/--no-channels-last"),
    compile: bool = _option("compile", "--compile/--no-compile"),
    deterministic: bool = _option("deterministic", "--deterministic/--no-deterministic"),
    checkpoint_every_n_steps: int = _option("checkpoint_every_n_steps"),
    quiet: bool = _option("quiet", "--quiet/--progress"),
    dose_range: str = _option("dose_range", "--dose-range"),
) -> None:
    """Train a denoiser; writes config.yaml, manifest.json, metrics.csv, best.ckpt, last.ckpt.

    Ends with one warning line when best.ckpt scores below its noisy input scored the same way.
    """
    values = _given(ctx)
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.training.run import resume_config
        from lowdose.training.run import train as run_training

        if resume is not None:
            if config is not None:
                raise LowdoseInputError("--resume takes its config from RUN_DIR; drop --config")
            cfg = resume_config(resume, values)
        elif config is not None:
            cfg = load_train_config(config, values)
        else:
            cfg = make_train_config(values, source="command line")
        _configure_logging(quiet=cfg.runtime.quiet)  # a --budget run logs its plan in one line
        result = run_training(cfg, resume=resume is not None)
        console.print(
            f"[green]done[/] {result.model_name} {cfg.model.mode}-{cfg.model.loss}: best "
            f"{result.monitor} {result.best_val_psnr_db:.2f} dB (vs {result.val_reference}) "
            f"after {result.epochs_done} epochs, {result.global_step} steps -> "
            f"{result.best_checkpoint}",
            highlight=False,
        )
        line = None if result.scores is None else result.scores.warning(str(result.run_dir))
        if line is not None:
            warn_line(line)


def _given(ctx: typer.Context) -> dict[str, Any]:
    """The TrainConfig keys given on the command line; the others come from the file or defaults."""
    # by the source's name: typer may run on its own copy of click, with its own enum
    return {
        key: value
        for key, value in ctx.params.items()
        if key in FLAT_KEYS and ctx.get_parameter_source(key).name != "DEFAULT"
    }


def _configure_logging(*, quiet: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False)
    logger = logging.getLogger("lowdose")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
