"""Scores of a denoiser that need no clean image, from two noisy realisations of each image.

Model (:mod:`lowdose.physics.noise_estimation`): ``y_k = x + n_k`` with independent, zero-mean
noise of equal variance ``s2``. Denoising both realisations, ``f(y_1)`` and ``f(y_2)``, tells
how much noise the output keeps (their difference holds no object), and ``y_2`` is an unbiased
but noisy reference for ``f(y_1)``: ``MSE(f(y_1), y_2) - s2`` estimates the MSE against the
unknown clean image. ``lowdose dataset score-pairs`` prints :func:`score_pairs`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr_from_mse
from lowdose.core.progress import Progress
from lowdose.data.dataset import load_split
from lowdose.inference.predict import predict
from lowdose.models.checkpoint import load_model
from lowdose.physics.noise_estimation import noise_free_mask, pair_noise_variance


class CleanFreeScores(TypedDict):
    """Per-image scores, (B,) float64 arrays, and their means over images (floats).

    See :func:`clean_free_metrics` for each key's meaning.
    """

    residual_noise_variance: np.ndarray
    noise_reduction_factor: np.ndarray
    mse_to_truth_estimate: np.ndarray
    psnr_vs_other_realisation_corrected_db: np.ndarray
    psnr_vs_other_realisation_raw_db: np.ndarray
    mean_residual_noise_variance: float
    mean_noise_reduction_factor: float
    mean_mse_to_truth_estimate: float
    mean_psnr_vs_other_realisation_corrected_db: float
    mean_psnr_vs_other_realisation_raw_db: float


@dataclass(frozen=True)
class PairScores:
    """What ``lowdose dataset score-pairs`` reports for one split.

    Attributes
    ----------
    split : str
    n_images : int
    input_noise_variance : float
        Mean over images of the pair-estimated noise variance ``Var(y1 - y2) / 2`` on the
        dataset's scale (:func:`lowdose.physics.noise_estimation.pair_noise_variance`).
    scores : CleanFreeScores
    """

    split: str
    n_images: int
    input_noise_variance: float
    scores: CleanFreeScores


def clean_free_metrics(
    first, second, denoised_first, denoised_second, *, noise_variance, data_range=1.0
) -> CleanFreeScores:
    """Scores of a denoiser that need no clean image, per image and averaged.

    Parameters
    ----------
    first, second : array_like (B, H, W)
        The two realisations ``y_1``, ``y_2``; ``y_2`` is the reference for ``f(y_1)``.
    denoised_first, denoised_second : array_like (B, H, W)
        The model's outputs ``f(y_1)`` and ``f(y_2)``.
    noise_variance : float or array_like (B,)
        Known (pair-estimated) noise variance ``s2`` of one realisation, same units squared.
    data_range : float
        Peak value for PSNR (1.0 on the dataset scale).

    Returns
    -------
    CleanFreeScores
        ``residual_noise_variance``: ``Var(f(y_1) - f(y_2)) / 2``, the noise left in the output
        (blur and bias that both outputs share are not in it). ``noise_reduction_factor``:
        ``s2 / residual_noise_variance``. ``mse_to_truth_estimate``: ``MSE(f(y_1), y_2) - s2 *
        q``, with ``q`` the fraction of pixels that carry noise (not
        :func:`lowdose.physics.noise_estimation.noise_free_mask`): an unbiased estimate of the
        MSE against the unknown clean image, since y_2's noise is independent of f(y_1) and
        y_2 is the truth where it has no noise. ``psnr_vs_other_realisation_corrected_db``: that
        MSE as PSNR (NaN where the estimate is <= 0, i.e. below what the pair can resolve).
        ``psnr_vs_other_realisation_raw_db``: PSNR against y_2 uncorrected. ``mean_<key>``:
        the mean over images (the PSNR mean is taken of the mean MSE).
    """
    y1, y2, f1, f2 = (
        np.asarray(v, dtype=np.float64) for v in (first, second, denoised_first, denoised_second)
    )
    if not (y1.shape == f1.shape == f2.shape == y2.shape) or f1.ndim != 3:
        raise LowdoseInputError(
            f"shapes {y1.shape}, {y2.shape}, {f1.shape}, {f2.shape}: pass four (B, H, W) stacks"
        )
    fill = np.array([noise_free_mask(a, b).mean() for a, b in zip(y1, y2, strict=True)])
    noisy_fraction = 1.0 - fill
    s2 = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (f1.shape[0],))
    residual = np.var((f1 - f2).reshape(len(f1), -1), axis=1, ddof=1) / 2
    mse_raw = np.mean((f1 - y2).reshape(len(f1), -1) ** 2, axis=1)
    mse_truth = mse_raw - s2 * noisy_fraction
    return CleanFreeScores(
        residual_noise_variance=residual,
        noise_reduction_factor=s2 / residual,
        mse_to_truth_estimate=mse_truth,
        psnr_vs_other_realisation_corrected_db=_resolved_psnr(mse_truth, data_range),
        psnr_vs_other_realisation_raw_db=_resolved_psnr(mse_raw, data_range),
        mean_residual_noise_variance=float(np.mean(residual)),
        mean_noise_reduction_factor=float(np.mean(s2) / np.mean(residual)),
        mean_mse_to_truth_estimate=float(np.mean(mse_truth)),
        mean_psnr_vs_other_realisation_corrected_db=float(
            _resolved_psnr(np.mean(mse_truth), data_range)
        ),
        mean_psnr_vs_other_realisation_raw_db=float(_resolved_psnr(np.mean(mse_raw), data_range)),
    )


def _resolved_psnr(mse, data_range: float):
    # An MSE estimate <= 0 is below what the pair can resolve: NaN, not an infinite PSNR.
    mse = np.asarray(mse, dtype=np.float64)
    return psnr_from_mse(np.where(mse > 0, mse, np.nan), data_range=data_range)


def score_pairs(
    data_path: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    split: str = "test",
    device: str = "cpu",
    progress: Progress | None = None,
) -> PairScores:
    """Denoise both realisations of every image of ``split`` and score the model without clean.

    Parameters
    ----------
    data_path
        Dataset file with N >= 2 realisations (clean images, if any, are not read).
    model_path
        Checkpoint or run folder (``best.ckpt``).
    split : {"train", "val", "test"}
    device : str
        Torch device for the model.
    progress : Progress, optional
        ``progress(stage, done, total)``: stages ``denoise y1`` and ``denoise y2``.

    Returns
    -------
    PairScores
    """
    arrays = load_split(data_path, split)
    if arrays.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{data_path}: {arrays.noisy.shape[1]} realisation per image; clean-free scores "
            "need N >= 2 (build the dataset from two or more acquisitions)"
        )
    network, _meta = load_model(model_path)
    outputs = [
        predict(network, arrays.noisy[:, k], device=device, progress=_stage(progress, k))
        for k in (0, 1)
    ]
    s2 = np.array([pair_noise_variance(image[:2])[0] for image in arrays.noisy])
    scores = clean_free_metrics(arrays.noisy[:, 0], arrays.noisy[:, 1], *outputs, noise_variance=s2)
    return PairScores(split, len(s2), float(np.mean(s2)), scores)


def _stage(progress: Progress | None, k: int) -> Progress | None:
    if progress is None:
        return None
    return lambda _stage, done, total: progress(f"denoise y{k + 1}", done, total)
