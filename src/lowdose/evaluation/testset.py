"""The data an evaluation reads: the test split with its clean references, and the blind-tuning
pair from the training split (never the test images)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split


@dataclass(frozen=True)
class TestSet:
    """The test split of one dataset file, in memory.

    Attributes
    ----------
    path : pathlib.Path
    clean : ndarray (I, H, W) float32
        References on the dataset's scale.
    noisy : ndarray (I, N, H, W) float32
        The N realisations; the first is every method's input.
    object_id : ndarray (I,) str
    index : ndarray (I,) int64
        Row of each image in the file.
    scale : ndarray (I,) float64
        Each image's divisor (``scaled = (raw + scaling_offset) / scale``).
    attrs : DatasetAttrs
    """

    __test__ = False  # a data class, not a pytest test class

    path: Path
    clean: np.ndarray
    noisy: np.ndarray
    object_id: np.ndarray
    index: np.ndarray
    scale: np.ndarray
    attrs: DatasetAttrs

    @property
    def inputs(self) -> np.ndarray:
        """(I, H, W) float32: the first realisation, what every method denoises."""
        return self.noisy[:, 0]

    @property
    def data_range(self) -> float:
        """PSNR/SSIM data range on the dataset's scale (the file's ``psnr_data_range``)."""
        return float(self.attrs.psnr_data_range)


def read_test_set(data_path: Path) -> TestSet:
    """Read the test split; raises when the file has no clean images to measure against."""
    split = load_split(data_path, "test")
    if split.clean is None:
        raise LowdoseInputError(
            f"{data_path}: no clean images, so PSNR cannot be measured; evaluate a dataset "
            "with 'clean' (simulated data) or use `lowdose denoise` for your own data"
        )
    return TestSet(
        data_path, split.clean, split.noisy, split.object_id, split.index, split.scale, split.attrs
    )


def blind_training_pair(data_path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Inputs and targets for blind tuning, from the training split only.

    Returns
    -------
    (noisy (I, H, W), target (I, H, W), target_kind)
        ``target_kind`` is ``"clean"`` when the file has clean training images, else
        ``"second_realisation"`` (the second noisy copy, the Noise2Noise target).
    """
    train = load_split(data_path, "train")
    if train.clean is not None:
        return train.noisy[:, 0], train.clean, "clean"
    if train.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{data_path}: blind tuning needs clean training images or N >= 2 realisations; "
            "use --tuning oracle"
        )
    return train.noisy[:, 0], train.noisy[:, 1], "second_realisation"
