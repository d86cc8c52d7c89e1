"""``lowdose train``: fit a U-Net by Noise2Noise, Noise2Clean, Neighbor2Neighbor or Noise2Void."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from lowdose.cli._app import app, console, user_errors, warn_line
from lowdose.core.errors import LowdoseInputError


@app.command()
def train(
    data: Path = typer.Option(None, "--data", help="Dataset file (.h5) from `lowdose simulate`."),
    mode: str = typer.Option(
        None,
        "--mode",
        help="n2n (Noise2Noise: >= 2 noisy realisations per image), n2c (clean targets), or, "
        "for ONE noisy acquisition per image and pixel-independent noise: nb2nb "
        "(Neighbor2Neighbor; --patch a multiple of 64) or n2v (Noise2Void).",
    ),
    loss: str = typer.Option(None, "--loss", help="mse or mae."),
    val_reference: str = typer.Option(
        None,
        "--val-reference",
        help="What picks best.ckpt and drives the schedule: realisation (clean-free uPSNR, the "
        "n2n default), self (clean-free: the nb2nb/n2v loss on validation images with fixed "
        "masks, their default) or clean (n2c default; other modes are then labelled "
        "clean-selected).",
    ),
    out: Path = typer.Option(None, "--out", help="Run directory to create."),
    config: Path = typer.Option(None, "--config", help="YAML TrainConfig; flags override it."),
    resume: Path = typer.Option(None, "--resume", help="Continue RUN_DIR from its last.ckpt."),
    budget: str = typer.Option(
        None,
        help="Wall time for the whole run, HH:MM:SS: a few-second probe picks the width "
        "(16/24/32/48), residual output, patch 64, batch 16, warm-up + cosine lr and the step "
        "count, prints them in one line and writes them into config.yaml and manifest.json, so "
        "a rerun or --resume repeats the same steps without probing. Options you give win: "
        "--width 32 --budget 00:30:00 fixes the width and only sizes the steps. --max-time "
        "becomes a guard (default 1.5 x the budget). The run then re-plans its steps from "
        "its own measured rate at epoch ends (--no-replan: keep the probe's plan).",
    ),
    replan: bool = typer.Option(
        None, "--replan/--no-replan", help="--budget: re-plan from the loop's measured rate."
    ),
    epochs: int = typer.Option(None, help="Epochs (default 10; with --max-steps derived)."),
    max_steps: int = typer.Option(
        None, help="Stop after exactly this many optimiser steps (validating ~--validations times)."
    ),
    validations: int = typer.Option(None, help="With --max-steps: validations (default 12)."),
    schedule: str = typer.Option(
        None,
        help="plateau (the paper's, default: halve lr when validation stalls) or cosine "
        "(warm-up, then cosine to 1 % of lr at --max-steps; the --budget default).",
    ),
    patch: int = typer.Option(
        None, help="Training patch side, multiple of 32 (64 for nb2nb) (default 64)."
    ),
    batch_size: int = typer.Option(None, help="Global batch size (default 16)."),
    max_time: str = typer.Option(None, help="Wall-time limit, e.g. 00:05:00."),
    seed: int = typer.Option(None, help="Seed for data order, crops and weights (default 0)."),
    workers: int = typer.Option(None, help="DataLoader worker processes (default 0)."),
    precision: str = typer.Option(None, help="Lightning precision, e.g. 32-true, bf16-mixed."),
    accelerator: str = typer.Option(
        None,
        "--accelerator",
        "--device",
        help="cpu, gpu (or cuda) or auto (a GPU when torch sees one); --device is the same option.",
    ),
    devices: int = typer.Option(None, help="Devices (processes) per node."),
    num_nodes: int = typer.Option(None, help="Nodes for multi-node DDP."),
    strategy: str = typer.Option(None, help="auto, ddp, ddp_spawn, ... (gloo on CPU)."),
    width: int = typer.Option(
        None,
        help="U-Net width: 48 = paper, 16 = quick unet-w16 (with --budget: fixed, not probed).",
    ),
    residual: bool = typer.Option(None, "--residual/--no-residual", help="Predict the noise."),
    lr: float = typer.Option(None, help="Adam learning rate (default 1e-3)."),
    ema_decay: float = typer.Option(
        None, "--ema-decay", help="Validate and save an EMA of the weights, e.g. 0.995."
    ),
    warmup_steps: int = typer.Option(None, help="Linear learning-rate warm-up steps."),
    samples_per_epoch: int = typer.Option(
        None, help="Samples per epoch (default: all pairs; with --max-steps derived)."
    ),
    val_crop: int = typer.Option(None, help="Centre crop for validation (default: whole)."),
    threads: int = typer.Option(None, help="torch threads per process."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last"),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile."),
    deterministic: bool = typer.Option(None, "--deterministic/--no-deterministic"),
    checkpoint_every_n_steps: int = typer.Option(None, help="Write last.ckpt every N steps."),
    quiet: bool = typer.Option(None, "--quiet/--progress", help="Log lines, no progress bar."),
    dose_range: str = typer.Option(
        None,
        "--dose-range",
        help="LOW:HIGH fractions of the acquired dose, 0 < LOW <= HIGH <= 1 (e.g. 0.1:1): each "
        "sample is re-noised to a dose drawn log-uniformly in the range, both realisations "
        "independently (X-ray photon thinning or CT AWGN; not sinogram noise). Clean-free; "
        "validation stays at the acquired dose. See docs/dose-robust.md.",
    ),
) -> None:
    """Train a denoiser; writes config.yaml, manifest.json, metrics.csv, best.ckpt, last.ckpt.

    Ends with one warning line when best.ckpt scores below its noisy input scored the same way.
    """
    # Flags left unset (None) fall through to the YAML file or the TrainConfig defaults.
    values = {k: v for k, v in locals().items() if v is not None and k not in ("config", "resume")}
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.training.config import load_train_config, make_train_config
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
        _configure_logging(quiet=cfg.quiet)  # a --budget run logs its plan in one line
        result = run_training(cfg, resume=resume is not None)
        console.print(
            f"[green]done[/] {result.model_name} {cfg.mode}-{cfg.loss}: best {result.monitor} "
            f"{result.best_val_psnr_db:.2f} dB (vs {result.val_reference}) after "
            f"{result.epochs_done} epochs, {result.global_step} steps -> {result.best_checkpoint}",
            highlight=False,
        )
        line = None if result.scores is None else result.scores.warning(str(result.run_dir))
        if line is not None:
            warn_line(line)


def _configure_logging(*, quiet: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False)
    logger = logging.getLogger("lowdose")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
