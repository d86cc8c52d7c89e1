"""``load_model`` reads training checkpoints into a UNet and a typed CheckpointMeta."""

from __future__ import annotations

import os

import pytest
import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel, ValidityRange, load_model
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
            scaling_rule="dataset_max",
            scaling_offset=1024.0,
            raw_units="hu",
            divisor=3071.5,
            data_range=1.0,
        ),
        dataset_sha256="ab" * 32,
        run_dir="/runs/ct-n2n",
        val_reference="clean",
        global_step=7,
    )
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
    with pytest.raises(LowdoseInputError, match="not a readable lowdose checkpoint"):
        load_model(tmp_path / "other.ckpt")


def _unet_checkpoint(path, *, width: int = 4, hparams_width: int | None = None) -> None:
    """A checkpoint in the training layout; ``hparams_width`` may name another width."""
    _save(path, UNet(width=width), meta=WRITTEN_META)
    if hparams_width is not None:
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["hyper_parameters"]["model"]["width"] = hparams_width
        torch.save(checkpoint, path)


# Files that are not lowdose checkpoints, and the reason the error gives for each.
NOT_CHECKPOINTS = {
    "empty": (lambda p: p.write_bytes(b""), "empty or ends early"),
    "random-bytes": (
        lambda p: p.write_bytes(bytes(range(256)) * 8),
        "corrupt bytes, or objects other than tensors",
    ),
    "first-half": (
        lambda p: (_unet_checkpoint(p), p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
        "not a complete torch archive",
    ),
    "tensor": (lambda p: torch.save(torch.zeros(3), p), "holds a Tensor, not a dict"),
    "state-dict-only": (
        lambda p: torch.save(UNet(width=4).state_dict(), p),
        "no lowdose hyper_parameters",
    ),
    "no-mode": (
        lambda p: torch.save({"state_dict": {}, "hyper_parameters": {"model": {}}}, p),
        "hyper_parameters lack mode, loss",
    ),
    "unknown-unet-argument": (
        lambda p: torch.save(
            {
                "state_dict": {},
                "hyper_parameters": {"model": {"depth": 3}, "mode": "n2n", "loss": "mse"},
            },
            p,
        ),
        "unknown network settings",
    ),
    "weights-of-another-width": (
        lambda p: _unet_checkpoint(p, width=4, hparams_width=8),
        "its weights do not fit unet-w8",
    ),
}


@pytest.mark.parametrize(("make", "reason"), NOT_CHECKPOINTS.values(), ids=NOT_CHECKPOINTS.keys())
def test_a_file_that_is_no_lowdose_checkpoint_is_one_line_naming_it(tmp_path, make, reason):
    path = tmp_path / "model.ckpt"
    make(path)
    with pytest.raises(LowdoseInputError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a readable lowdose checkpoint (")
    assert reason in message
    assert message.endswith("pass RUN_DIR/best.ckpt of a lowdose training")


class _RunsCodeWhenUnpickled:
    """What a hostile checkpoint holds: unpickling it would call os.mkdir(marker)."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_loading_runs_no_code_from_the_file(tmp_path):
    # weights_only=True: lowdose checkpoints hold only tensors and plain values.
    marker = tmp_path / "code-ran"
    checkpoint = {"state_dict": {}, "hyper_parameters": _RunsCodeWhenUnpickled(marker)}
    torch.save(checkpoint, tmp_path / "hostile.ckpt")
    with pytest.raises(LowdoseInputError, match="objects other than tensors and plain values"):
        load_model(tmp_path / "hostile.ckpt")
    assert not marker.exists()


def test_a_real_training_checkpoint_loads_without_warnings(tmp_path, recwarn):
    # The Lightning layout (callbacks, loops, optimiser and scheduler states) under weights_only.
    torch.manual_seed(0)
    network = UNet(width=4, residual=True)
    _save(tmp_path / "best.ckpt", network, meta=WRITTEN_META)
    checkpoint = torch.load(tmp_path / "best.ckpt", weights_only=True)
    checkpoint.update(
        {
            "epoch": 2,
            "pytorch-lightning_version": "2.6.6",
            "loops": {"fit_loop": {}},
            "callbacks": {"ModelCheckpoint{}": {"best_model_score": torch.tensor(31.5)}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}],
            "lr_schedulers": [{"best": float("inf"), "mode": "max"}],
        }
    )
    torch.save(checkpoint, tmp_path / "best.ckpt")
    model, meta = load_model(tmp_path)
    assert meta.model.name == "unet-w4-res" and meta.global_step == 7
    assert [str(w.message) for w in recwarn] == []


# hyper_parameters["meta"]["validity"] exactly as the validity sweep writes it
VALIDITY = {
    "estimator": "single_image_noise_sigma",
    "scale": "network",
    "sigma_low": 0.01,
    "sigma_high": 0.08,
    "trained_sigma": 0.03,
    "levels": [
        {"dose_fraction": 0.1, "sigma": 0.09, "gain_db": -0.4},
        {"dose_fraction": 0.5, "sigma": 0.042, "gain_db": 2.5},
        {"dose_fraction": 1.0, "sigma": 0.03, "gain_db": 3.0},
    ],
    "method": "binomial thinning of the validation counts",
}


def test_validity_range_is_parsed_and_absent_is_none(tmp_path):
    _save(tmp_path / "with.ckpt", UNet(width=2), meta={**WRITTEN_META, "validity": VALIDITY})
    _model, meta = load_model(tmp_path / "with.ckpt")
    assert meta.validity == ValidityRange(
        sigma_low=0.01,
        sigma_high=0.08,
        trained_sigma=0.03,
        estimator="single_image_noise_sigma",
        levels=((0.1, 0.09, -0.4), (0.5, 0.042, 2.5), (1.0, 0.03, 3.0)),
        scale="network",
        method="binomial thinning of the validation counts",
    )
    assert meta.validity.to_dict() == VALIDITY
    _save(tmp_path / "older.ckpt", UNet(width=2), meta=WRITTEN_META)
    assert load_model(tmp_path / "older.ckpt")[1].validity is None


@pytest.mark.parametrize(
    "validity",
    [
        {k: v for k, v in VALIDITY.items() if k != "sigma_high"},
        {**VALIDITY, "sigma_low": 0.2},  # above sigma_high
        {**VALIDITY, "levels": [{"dose_fraction": 0.5}]},
        "0.01..0.08",
    ],
    ids=["no-sigma-high", "low-above-high", "level-without-sigma", "not-a-dict"],
)
def test_a_malformed_validity_range_is_one_line_naming_the_file(tmp_path, validity):
    path = tmp_path / "bad.ckpt"
    _save(path, UNet(width=2), meta={**WRITTEN_META, "validity": validity})
    with pytest.raises(LowdoseInputError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: not a readable lowdose checkpoint")
    assert "meta.validity is malformed" in message
