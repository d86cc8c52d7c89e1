"""``load_model`` reads training checkpoints into a UNet and a typed CheckpointMeta."""

from __future__ import annotations

import pytest
import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel, load_model
from lowdose.models.unet import UNet

# hyper_parameters["meta"] exactly as lowdose.training.run writes it (the dict form of 0.1.0)
WRITTEN_META = {
    "scaling": {
        "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0,
        "raw_units": "hu",
        "divisor": 3071.5,
        "data_range": 1.0,
    },
    "dataset_sha256": "ab" * 32,
    "dataset": "/data/ct.h5",
    "val_reference": "clean",
    "run_dir": "/runs/ct-n2n",
}


def _save(path, network: UNet, *, meta: dict | None, global_step: int = 7) -> None:
    # The layout Lightning writes: weights prefixed "model.", the module's hyper-parameters.
    hparams = {"model": network.config(), "mode": "n2n", "loss": "mae", "lr": 1e-3}
    if meta is not None:
        hparams["meta"] = meta
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": global_step}, path)


def test_a_checkpoint_saved_the_current_way_loads_into_checkpoint_meta(tmp_path):
    torch.manual_seed(0)
    network = UNet(width=4, residual=True)
    _save(tmp_path / "best.ckpt", network, meta=WRITTEN_META)
    model, meta = load_model(tmp_path)  # a run folder means its best.ckpt
    assert meta == CheckpointMeta(
        model=CheckpointModel(name="unet-w4-res", width=4, residual=True),
        mode="n2n",
        loss="mae",
        scaling=NetworkScaling(
            scaling_rule="dataset_max", scaling_offset=1024.0, raw_units="hu", divisor=3071.5,
            data_range=1.0,
        ),
        dataset_sha256="ab" * 32,
        run_dir="/runs/ct-n2n",
        val_reference="clean",
        global_step=7,
    )  # fmt: skip
    assert not model.training
    for key, value in network.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_missing_metadata_takes_the_defaults(tmp_path):
    _save(tmp_path / "old.ckpt", UNet(width=2), meta=None)
    _model, meta = load_model(tmp_path / "old.ckpt")
    assert meta.scaling == NetworkScaling() and meta.dataset_sha256 is None
    partial = {"scaling": {"scaling_rule": "per_image_max", "scaling_offset": None}}
    _save(tmp_path / "partial.ckpt", UNet(width=2), meta=partial)
    _model, meta = load_model(tmp_path / "partial.ckpt")
    assert meta.scaling == NetworkScaling(scaling_rule="per_image_max")


def test_missing_or_foreign_files_are_one_line_errors(tmp_path):
    with pytest.raises(LowdoseInputError, match="best.ckpt"):
        load_model(tmp_path)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(LowdoseInputError, match="not a lowdose training checkpoint"):
        load_model(tmp_path / "other.ckpt")
