"""Shared fixtures: a tiny, realistic dataset file that any test may build in its tmp_path.

``tiny_dataset``: a path to an HDF5 dataset written with :func:`lowdose.data.writer.write_dataset`:
I = 6 projection-like 64x64 images from 3 objects (2 images each; objects ``obj0``/``obj1``/
``obj2`` are in ``train``/``val``/``test``), N = 3 Poisson realisations, with ``clean``, on the
paper's X-ray scaling (each image divided by its clean maximum, so clean max is 1).

``make_tiny_dataset``: a factory for variations, e.g.
``make_tiny_dataset(n_realisations=2, with_clean=False, size=(48, 64), name="n2.h5")``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lowdose.data.attributes import DatasetAttrs
from lowdose.data.writer import write_dataset
from lowdose.physics.noise import realisations


def projection_like(n_images: int, height: int, width: int, *, rng: np.random.Generator):
    """Smooth transmission images ``exp(-line_integral)`` in about [0.05, 1], float64 (I, H, W).

    Line integrals are sums of random Gaussian blobs (organ-like), scaled so each image's
    darkest pixel has transmission 0.05.
    """
    rows, cols = np.mgrid[0:height, 0:width]
    integral = np.zeros((n_images, height, width))
    for image in range(n_images):
        for _ in range(6):
            y, x = rng.uniform(0, height), rng.uniform(0, width)
            radius = rng.uniform(0.1, 0.4) * min(height, width)
            integral[image] += np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * radius**2))
    integral *= np.log(1 / 0.05) / integral.max(axis=(1, 2), keepdims=True)
    return np.exp(-integral)


def write_tiny_dataset(
    path: Path,
    *,
    n_realisations: int = 3,
    n_objects: int = 3,
    images_per_object: int = 2,
    size: int | tuple[int, int] = 64,
    with_clean: bool = True,
    photons_per_pixel: float = 1000.0,
    seed: int = 0,
) -> Path:
    """Write a small X-ray-like dataset; objects cycle through train, val, test."""
    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    n_images = n_objects * images_per_object
    transmission = projection_like(n_images, height, width, rng=rng)
    noisy = realisations(transmission, photons_per_pixel, n_realisations, rng, model="poisson")
    peak = transmission.max(axis=(1, 2))
    object_id = np.repeat([f"obj{o}" for o in range(n_objects)], images_per_object)
    split = np.repeat(
        [("train", "val", "test")[o % 3] for o in range(n_objects)], images_per_object
    )
    attrs = DatasetAttrs(
        modality="xray",
        noise_model="poisson",
        noise_level=photons_per_pixel,
        scaling_rule="per_image_max",
        raw_units="transmission",
        seed=seed,
        description="tests/conftest.py tiny dataset",
    )
    return write_dataset(
        path,
        clean=(transmission / peak[:, None, None]).astype(np.float32) if with_clean else None,
        noisy=(noisy / peak[:, None, None, None]).astype(np.float32),
        object_id=object_id,
        split=split,
        scale=peak,
        attrs=attrs,
    )


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Path to the default tiny dataset (6 images, 3 objects, N = 3, 64x64, with clean)."""
    return write_tiny_dataset(tmp_path / "tiny.h5")


@pytest.fixture
def make_tiny_dataset(tmp_path: Path):
    """Factory ``(name="tiny.h5", **options of write_tiny_dataset) -> Path`` in tmp_path."""

    def make(name: str = "tiny.h5", **options) -> Path:
        return write_tiny_dataset(tmp_path / name, **options)

    return make


TCGA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct" / "tcga-luad"


@pytest.fixture(scope="session")
def tcga_dir() -> Path:
    """The shared real CT slices (``../shared/data/ct/tcga-luad``), read in place, never copied.

    A machine without ``../shared`` (a user's fresh clone) skips the tests that need them.
    """
    if not TCGA_DIR.is_dir():
        pytest.skip(f"real CT slices not found at {TCGA_DIR} (../shared of the repo)")
    return TCGA_DIR


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """``tmp_path/run/best.ckpt``: an untrained width-4 U-Net saved as training saves it."""
    import torch

    from lowdose.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(width=4)
    path = tmp_path / "run" / "best.ckpt"
    path.parent.mkdir()
    torch.save(
        {
            "hyper_parameters": {"model": {"width": 4}, "mode": "n2n", "loss": "mse", "meta": {}},
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
            "global_step": 0,
        },
        path,
    )
    return path


@pytest.fixture
def ct_scaling():
    """The HU scaling of the fake CT checkpoint: ``(HU + 1024) / 3000``."""
    from lowdose.data.scaling import NetworkScaling

    return NetworkScaling(scaling_rule="dataset_max", scaling_offset=1024.0, divisor=3000.0)


@pytest.fixture
def fake_checkpoint(monkeypatch, unet, tmp_path, ct_scaling):
    """``lowdose denoise``'s checkpoint loaders replaced by the test module's ``unet`` fixture with
    CT metadata, so the CLI is what is under test; returns the (unwritten) checkpoint path."""
    import lowdose.inference.files
    import lowdose.models.checkpoint
    from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel

    meta = CheckpointMeta(
        model=CheckpointModel(name="unet-w4", width=4, residual=False),
        mode="n2n",
        loss="mse",
        scaling=ct_scaling,
    )
    for module in (lowdose.inference.files, lowdose.models.checkpoint):  # the CLI reads meta too
        monkeypatch.setattr(module, "load_model", lambda path: (unet, meta))
    return tmp_path / "run" / "best.ckpt"


@pytest.fixture
def invoke_cli():
    """``invoke(args) -> Result`` of the lowdose CLI in a wide terminal (rich would wrap a
    one-line error at 80 columns)."""
    import typer.testing

    import lowdose.cli

    def invoke(args):
        return typer.testing.CliRunner().invoke(lowdose.cli.app, args, env={"COLUMNS": "400"})

    return invoke


class TrainingKilled(Exception):
    """Raised by :func:`kill_training_at` in place of a killed process."""


@pytest.fixture
def kill_training_at(monkeypatch):
    """``kill(step)``: the next ``lowdose.training.run.train`` dies once ``step`` steps are done
    (after that epoch's checkpoint), raising :class:`TrainingKilled`; later calls run normally.

    Usage: ``with pytest.raises(kill(2)): train(...)`` then ``train(..., resume=True)``.
    """
    import lightning as L

    import lowdose.training.run as training

    make_trainer = training._trainer

    class KillAtStep(L.Callback):
        def __init__(self, step: int) -> None:
            self.step = step

        def on_train_batch_start(self, trainer, *args) -> None:
            if trainer.global_step == self.step:
                monkeypatch.setattr(training, "_trainer", make_trainer)  # only this run dies
                raise TrainingKilled

    def kill(step: int) -> type[TrainingKilled]:
        def interrupted(*args, **kwargs):
            trainer = make_trainer(*args, **kwargs)
            trainer.callbacks.insert(0, KillAtStep(step))
            return trainer

        monkeypatch.setattr(training, "_trainer", interrupted)
        return TrainingKilled

    return kill
