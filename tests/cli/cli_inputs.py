"""Inputs for the command-line tests, built once per module, and one way to run a command.

``build_cli_inputs(root)``: a tiny dataset (tests/conftest.py), a real checkpoint of a one-epoch
training on it, an image to denoise, two repeated acquisitions and an experiment folder with
results. ``run_cli(args)``: the real ``lowdose`` command in this process (typer's ``CliRunner``).
Test modules import both (this is not a conftest.py: a second ``conftest`` module would shadow
tests/conftest.py for the test modules that ``from conftest import`` it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from typer.testing import CliRunner, Result

from conftest import write_tiny_dataset
from lowdose.cli import app


def run_cli(args: list[str]) -> Result:
    """Run ``lowdose ARGS`` in this process; stdout and stderr together in ``result.output``."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


@dataclass(frozen=True)
class CliInputs:
    """Valid inputs that one bad input at a time is swapped into."""

    dataset: Path  # (6 images, 3 objects, N = 3, 64x64, with clean)
    checkpoint: Path  # RUN_DIR/best.ckpt of a real (one-epoch) lowdose training
    image: Path  # (2, 64, 64) float32 .npy to denoise
    repeats: tuple[Path, Path]  # two noisy (12, 64, 64) stacks of the same object
    experiment: Path  # a folder with results/ from `lowdose evaluate`, for `lowdose report`


def build_cli_inputs(root: Path) -> CliInputs:
    """Write the valid inputs under ``root`` (a one-epoch training: a few seconds)."""
    from lowdose.training.config import make_train_config
    from lowdose.training.run import train

    dataset = write_tiny_dataset(root / "tiny.h5")
    tiny = dict(width=4, patch=32, batch_size=2, samples_per_epoch=4, epochs=1, threads=1)
    result = train(make_train_config({**tiny, "quiet": True, "data": dataset, "out": root / "run"}))
    rng = np.random.default_rng(0)
    image = root / "image.npy"
    np.save(image, rng.random((2, 64, 64), dtype=np.float32))
    clean = rng.random((12, 64, 64), dtype=np.float32)
    repeats = tuple(root / f"acquisition{k}.npy" for k in (1, 2))
    for path in repeats:
        np.save(path, clean + 0.1 * rng.standard_normal(clean.shape, dtype=np.float32))
    experiment = root / "experiment"
    args = ["evaluate", "--data", dataset, "--filters", "gaussian", "--tuning", "blind"]
    assert run_cli([*args, "--out", experiment / "results"]).exit_code == 0
    return CliInputs(dataset, result.best_checkpoint, image, repeats, experiment)
