"""Out-of-field pixels (a dataset's ``fov``) never reach a supervised loss or a validation score."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from conftest import write_tiny_dataset
from lowdose.training.config import make_train_config
from lowdose.training.datamodule import validation_tensors
from lowdose.training.objectives import noise2noise
from lowdose.training.pairs import PairDataset
from lowdose.training.run import train


def with_field_of_view(path, *, outside_value: float = -0.5):
    """Add a disc ``fov`` to a tiny dataset and make its outside constant (scanner padding)."""
    with h5py.File(path, "r+") as handle:
        images, _, height, width = handle["noisy"].shape
        rows, cols = np.mgrid[0:height, 0:width]
        disc = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < (0.45 * height) ** 2
        fov = np.broadcast_to(disc, (images, height, width)).astype(np.uint8)
        handle.create_dataset("fov", data=fov)
        noisy = handle["noisy"][...]
        noisy[:, :, ~disc] = outside_value
        handle["noisy"][...] = noisy
    return path, disc


@pytest.mark.parametrize("in_memory", [True, False])
def test_n2n_targets_are_nan_exactly_outside_the_field_of_view(tmp_path, in_memory):
    path, disc = with_field_of_view(write_tiny_dataset(tmp_path / "d.h5"))
    pairs = PairDataset(path, "train", mode="n2n", patch=None, augment=False, in_memory=in_memory)
    inputs, targets = pairs.sample_batch(range(len(pairs)))
    assert torch.isfinite(inputs).all()
    assert torch.equal(torch.isnan(targets[:, 0]), torch.from_numpy(~disc).expand_as(targets[:, 0]))
    single = PairDataset(path, "train", mode="nb2nb", patch=None, augment=False)
    assert torch.isfinite(single.sample_batch([0])[1]).all()  # its target is its input


def test_supervised_loss_leaves_nan_targets_out_and_is_unchanged_without_them():
    rng = torch.Generator().manual_seed(0)
    inputs, targets = torch.rand(2, 1, 8, 8, generator=rng), torch.rand(2, 1, 8, 8, generator=rng)
    network = torch.nn.Identity()
    plain = noise2noise(network, (inputs, targets), rng, distance=F.mse_loss)
    assert plain == F.mse_loss(inputs, targets)
    masked_targets = targets.clone()
    masked_targets[..., :4] = float("nan")
    masked = noise2noise(network, (inputs, masked_targets), rng, distance=F.mse_loss)
    assert masked == pytest.approx(float(F.mse_loss(inputs[..., 4:], targets[..., 4:])), rel=1e-6)


def test_validation_scores_only_the_field_of_view(tmp_path):
    path, disc = with_field_of_view(write_tiny_dataset(tmp_path / "d.h5"))
    inputs, references, variance = validation_tensors(path, crop=None, reference="realisation")
    assert torch.equal(
        torch.isnan(references[:, 0]), torch.from_numpy(~disc).expand_as(references[:, 0])
    )
    first, second = inputs[:1, 0, disc].numpy(), inputs[len(inputs) // 2 :][:1, 0, disc].numpy()
    assert variance[0] == pytest.approx(float(np.var(first - second, ddof=1) / 2), rel=1e-5)


def test_training_with_a_field_of_view_stays_finite(tmp_path):
    path, _ = with_field_of_view(write_tiny_dataset(tmp_path / "d.h5"))
    tiny = {
        "width": 4,
        "patch": 32,
        "batch_size": 4,
        "samples_per_epoch": 16,
        "epochs": 2,
        "threads": 1,
        "quiet": True,
    }
    train(make_train_config({**tiny, "data": path, "out": tmp_path / "run"}))
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert np.isfinite(metrics["train_loss"]).all()
    assert (
        np.isfinite(metrics["val_upsnr_db"].dropna()).all()
        and metrics["val_upsnr_db"].notna().any()
    )
