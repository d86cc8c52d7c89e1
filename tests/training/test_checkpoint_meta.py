"""What training records about its dataset keeps the checkpoint's dict form (``hparams.meta``)."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import dataset_sha256
from lowdose.data.writer import write_dataset
from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel
from lowdose.training.config import make_train_config
from lowdose.training.dataset_meta import dataset_meta as _dataset_meta


def _dataset(path, *, scale, with_clean: bool):
    rng = np.random.default_rng(0)
    clean = rng.random((4, 32, 32)).astype(np.float32)
    attrs = {
        "modality": "ct",
        "noise_model": "gaussian",
        "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0,
        "raw_units": "hu",
    }
    write_dataset(
        path,
        clean=clean if with_clean else None,
        noisy=np.stack([clean, clean], axis=1),
        object_id=["a", "b", "c", "d"],
        split=["train", "train", "val", "test"],
        scale=scale,
        attrs=attrs,
    )
    return path


def _config(path, **values):
    return make_train_config({"data": path, "out": path.parent / "run", **values})


def test_dataset_meta_is_written_in_the_checkpoint_dict_form(tmp_path):
    path = _dataset(tmp_path / "ct.h5", scale=np.full(4, 3071.5), with_clean=True)
    config = _config(path, mode="n2c", seed=7)
    written = _dataset_meta(path, config).to_hparams(tmp_path / "run")
    assert written == {
        "scaling": {
            "scaling_rule": "dataset_max",
            "scaling_offset": 1024.0,
            "raw_units": "hu",
            "divisor": 3071.5,
            "data_range": 1.0,
        },
        "dataset_sha256": dataset_sha256(path),
        "dataset": str(path),
        "val_reference": "clean",
        "seed": 7,
        "view_split": False,
        "run_dir": str((tmp_path / "run").resolve()),
    }
    assert list(written) == [
        "scaling",
        "dataset_sha256",
        "dataset",
        "val_reference",
        "seed",
        "view_split",
        "run_dir",
    ]


def test_n2n_validates_clean_free_even_when_the_file_has_clean_images(tmp_path):
    path = _dataset(tmp_path / "ct.h5", scale=np.full(4, 3071.5), with_clean=True)
    assert _dataset_meta(path, _config(path, mode="n2n")).val_reference == "realisation"
    chosen = _dataset_meta(path, _config(path, mode="n2n", val_reference="clean"))
    assert chosen.val_reference == "clean"


def test_per_image_scale_has_no_divisor_and_clean_validation_needs_clean(tmp_path):
    path = _dataset(tmp_path / "x.h5", scale=np.array([1.0, 2.0, 3.0, 4.0]), with_clean=False)
    meta = _dataset_meta(path, _config(path))
    assert meta.scaling.divisor is None and meta.val_reference == "realisation"
    with pytest.raises(LowdoseInputError, match="no clean images: use --val-reference realisation"):
        _dataset_meta(path, _config(path, mode="n2c"))


@pytest.mark.parametrize(
    ("val_reference", "selection"),
    [("realisation", "clean-free"), ("clean", "clean-selected"), (None, "")],
)
def test_checkpoint_meta_names_how_best_was_selected(val_reference, selection):
    meta = CheckpointMeta(
        CheckpointModel("unet-w8", 8, False), "n2n", "mse", val_reference=val_reference
    )
    assert meta.selection == selection
