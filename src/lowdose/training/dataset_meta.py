"""What a checkpoint records about its training data, read from the dataset before training.

:func:`dataset_meta` also checks, before training starts (not at the first validation an epoch
later), that the dataset has what ``val_reference`` needs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import dataset_sha256, read_info, read_scale
from lowdose.data.scaling import NetworkScaling
from lowdose.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    """What a checkpoint records about its training data (``hyper_parameters["meta"]``).

    Saved as a plain dict (:meth:`to_hparams`), so checkpoints load with ``weights_only=True``;
    :func:`lowdose.models.checkpoint.load_model` reads it back.
    """

    scaling: NetworkScaling
    dataset_sha256: str
    dataset: str
    val_reference: Literal["clean", "realisation", "self"]
    seed: int
    view_split: bool = False
    """The realisations are reconstructions from disjoint view subsets of one scan."""

    def to_hparams(self, run_dir: Path) -> dict:
        """The checkpoint's dict form: the fields as plain values, plus ``run_dir``."""
        return {**dataclasses.asdict(self), "run_dir": str(run_dir.resolve())}


def dataset_meta(path: Path, config: TrainConfig) -> DatasetMeta:
    """The :class:`DatasetMeta` of ``path``; ``LowdoseInputError`` if it cannot validate."""
    info = read_info(path)
    # Checked before training starts, not at the first validation an epoch later.
    val_reference = config.data.val_reference
    if val_reference == "clean" and not info.has_clean:
        raise LowdoseInputError(
            f"{path} has no clean images: use --val-reference realisation (clean-free)"
        )
    if val_reference == "realisation" and info.shape[1] < 2:
        raise LowdoseInputError(
            f"{path} has 1 realisation per image: --val-reference realisation needs 2; use "
            "--mode nb2nb or n2v (validated with --val-reference self) or --val-reference clean"
        )
    scale = read_scale(path)  # (I,) divisors; one value for dataset_max and for no scaling
    constant = bool(np.all(scale == scale[0]))
    scaling = NetworkScaling(
        scaling_rule=info.attrs.scaling_rule,
        scaling_offset=info.attrs.scaling_offset,
        raw_units=info.attrs.raw_units,
        divisor=float(scale[0]) if constant else None,
        data_range=info.attrs.psnr_data_range,
    )
    return DatasetMeta(
        scaling=scaling,
        dataset_sha256=dataset_sha256(path),
        dataset=str(path),
        val_reference=val_reference,
        seed=config.runtime.seed,
        view_split=info.attrs.is_view_split,
    )
