"""The data an evaluation reads: the test split (with its clean references when the file has
them), and the blind-tuning pair from the training split (never the test images)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split
from lowdose.physics.noise_estimation import single_image_noise_sigma


@dataclass(frozen=True)
class TestSet:
    """The test split of one dataset file, in memory.

    Attributes
    ----------
    path : pathlib.Path
    clean : ndarray (I, H, W) float32 or None
        References on the dataset's scale; None when the file has none (then N >= 2).
    noisy : ndarray (I, N, H, W) float32
        The N realisations; the first is every method's input.
    object_id : ndarray (I,) str
    index : ndarray (I,) int64
        Row of each image in the file.
    scale : ndarray (I,) float64
        Each image's divisor (``scaled = (raw + scaling_offset) / scale``).
    attrs : DatasetAttrs
    fov : ndarray (I, H, W) bool or None
        The scanner's field of view (the file's optional ``fov``): the clean-free scores count
        only the pixels inside it; None when the file has none.
    """

    __test__ = False  # a data class, not a pytest test class

    path: Path
    clean: np.ndarray | None
    noisy: np.ndarray
    object_id: np.ndarray
    index: np.ndarray
    scale: np.ndarray
    attrs: DatasetAttrs
    fov: np.ndarray | None = None

    @property
    def view_subsets(self) -> int:
        """K when the N realisations are K view subsets of one scan (attr ``realisations_are``
        ``view_subsets``, Noise2Inverse), else 1 (independent acquisitions)."""
        if self.attrs.extra.get("realisations_are") == "view_subsets":
            return int(self.noisy.shape[1])
        return 1

    @property
    def inputs(self) -> np.ndarray:
        """(I, H, W) float32: what every method denoises.

        The first realisation; for view subsets the whole scan, i.e. their mean (FBP is linear
        and normalised per subset, so the mean of K equal subsets is the full-view FBP): filters
        see the scan a user has, networks denoise each subset and average
        (:func:`lowdose.evaluation.methods.model_methods`).
        """
        if self.view_subsets > 1:
            return self.noisy.mean(axis=1, dtype=np.float64).astype(np.float32)
        return self.noisy[:, 0]

    def pair_noise_variance(self) -> np.ndarray:
        """(I,) float64 noise variance of each input from its realisation pair, clean-free:
        ``Var(y1 - y2) / 2`` inside the field of view (padding carries no noise), divided by K
        for view subsets (a subset has K times the variance of the scan, their mean); NaN for
        N = 1."""
        if self.noisy.shape[1] < 2:
            return np.full(len(self.noisy), np.nan)
        first = self.noisy[:, 0].astype(np.float64)
        pair = pair_noise_variance_all_pixels(first, self.noisy[:, 1], inside=self.fov)
        return pair / self.view_subsets

    def noise_sigma_estimate(self) -> np.ndarray:
        """(I,) float64 noise sd of each input, clean-free: from the realisation pair
        (:meth:`pair_noise_variance`), or from the single image (Immerkaer) when N = 1."""
        if self.noisy.shape[1] < 2:
            return np.array([single_image_noise_sigma(image) for image in self.inputs])
        return np.sqrt(np.maximum(self.pair_noise_variance(), 0.0))

    @property
    def data_range(self) -> float:
        """PSNR/SSIM data range on the dataset's scale (the file's ``psnr_data_range``)."""
        return float(self.attrs.psnr_data_range)


def read_test_set(data_path: Path) -> TestSet:
    """Read the test split; without clean images it needs N >= 2 realisations (for uPSNR)."""
    split = load_split(data_path, "test")
    if split.clean is None and split.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{data_path}: no clean images and one realisation per image, so nothing can be "
            "scored; evaluate a file with 'clean' or with N >= 2 realisations"
        )
    fov = None if split.fov is None else np.asarray(split.fov, bool)
    return TestSet(
        data_path,
        split.clean,
        split.noisy,
        split.object_id,
        split.index,
        split.scale,
        split.attrs,
        fov,
    )


def blind_training_pair(data_path: Path, tuning: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Inputs and targets for blind tuning, from the training split only.

    Parameters
    ----------
    data_path : path
    tuning : {"blind", "blind-clean"}
        ``blind``: the second noisy realisation is the target (Noise2Noise); the ``clean``
        array is never read, even when the file has one. ``blind-clean``: clean training
        images are the target.

    Returns
    -------
    (noisy (I, H, W), target (I, H, W), target_kind)
        ``target_kind`` is ``"second_realisation"`` or ``"clean"``.
    """
    if tuning == "blind":
        train = load_split(data_path, "train", with_clean=False)
        if train.noisy.shape[1] < 2:
            raise LowdoseInputError(
                f"{data_path}: blind tuning needs N >= 2 noisy realisations of the training "
                "images; use --tuning blind-clean (clean training images) or oracle"
            )
        return train.noisy[:, 0], train.noisy[:, 1], "second_realisation"
    train = load_split(data_path, "train")
    if train.clean is None:
        raise LowdoseInputError(
            f"{data_path}: blind-clean tuning needs clean training images; use --tuning blind"
        )
    return train.noisy[:, 0], train.clean, "clean"
