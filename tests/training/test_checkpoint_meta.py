"""What training records about its dataset keeps the checkpoint's dict form (``hparams.meta``)."""

from __future__ import annotations

import numpy as np

from lowdose.data.dataset import dataset_sha256
from lowdose.data.writer import write_dataset
from lowdose.training.run import _dataset_meta


def _dataset(path, *, scale, with_clean: bool):
    rng = np.random.default_rng(0)
    clean = rng.random((4, 32, 32)).astype(np.float32)
    attrs = {
        "modality": "ct", "noise_model": "gaussian", "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0, "raw_units": "hu",
    }  # fmt: skip
    write_dataset(
        path, clean=clean if with_clean else None, noisy=np.stack([clean, clean], axis=1),
        object_id=["a", "b", "c", "d"], split=["train", "train", "val", "test"], scale=scale,
        attrs=attrs,
    )  # fmt: skip
    return path


def test_dataset_meta_is_written_in_the_checkpoint_dict_form(tmp_path):
    path = _dataset(tmp_path / "ct.h5", scale=np.full(4, 3071.5), with_clean=True)
    written = _dataset_meta(path).to_hparams(tmp_path / "run")
    assert written == {
        "scaling": {
            "scaling_rule": "dataset_max", "scaling_offset": 1024.0, "raw_units": "hu",
            "divisor": 3071.5, "data_range": 1.0,
        },
        "dataset_sha256": dataset_sha256(path),
        "dataset": str(path),
        "val_reference": "clean",
        "run_dir": str((tmp_path / "run").resolve()),
    }  # fmt: skip
    assert list(written) == ["scaling", "dataset_sha256", "dataset", "val_reference", "run_dir"]


def test_per_image_scale_has_no_divisor_and_no_clean_validates_on_a_realisation(tmp_path):
    path = _dataset(tmp_path / "x.h5", scale=np.array([1.0, 2.0, 3.0, 4.0]), with_clean=False)
    meta = _dataset_meta(path)
    assert meta.scaling.divisor is None and meta.val_reference == "realisation"
