"""Metrics of one method's outputs on the test images, as rows of ``results.csv``.

Conventions, written beside every number: PSNR and SSIM (7x7 uniform window) against the clean
images on the dataset's scale with ``data_range`` = the file's ``psnr_data_range`` (1.0 on the
paper's scaling), on *unclipped* outputs; NaN when the file has no clean images. For CT stored in
HU, also metrics in HU windows: both images are converted back (``hu = scaled * scale -
scaling_offset``) and clipped to the window, and ``data_range`` is the window width: PSNR in the
named window and in the soft-tissue window -160..240 HU, and SSIM as Wang et al. (2004) in the
named window. Clean-free, for N >= 2: ``uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2) / 2`` per
image and its uPSNR (:func:`lowdose.core.metrics.upsnr`); no clean image enters it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from lowdose.core.metrics import (
    HU_SOFT_TISSUE_WINDOW,
    psnr,
    psnr_hu_window,
    ssim,
    ssim_wang,
    unbiased_mse,
    upsnr_from_umse,
)
from lowdose.data.dataset import dataset_sha256
from lowdose.data.results import ResultRow
from lowdose.data.split_plan import source_object
from lowdose.evaluation.methods import MethodOutput
from lowdose.evaluation.testset import TestSet


@dataclass(frozen=True)
class RowContext:
    """What every row of one test set shares, computed once.

    Attributes
    ----------
    dataset, dataset_sha256 : str
        File stem and split-table hash (:func:`lowdose.data.dataset.dataset_sha256`).
    hu_window : (low_hu, high_hu) or None
        The HU window of the window metrics; None unless the dataset is CT in HU with clean.
    input_psnr_db : ndarray (I,) float64
        PSNR of the noisy input per image (NaN without clean).
    noise_var_estimate, noise_var_true : ndarray (I,) float64
        ``Var(y1 - y2) / 2`` (NaN for N < 2) and ``Var(y1 - clean)`` (NaN without clean).
    """

    dataset: str
    dataset_sha256: str
    hu_window: tuple[float, float] | None
    input_psnr_db: np.ndarray
    noise_var_estimate: np.ndarray
    noise_var_true: np.ndarray


def row_context(test: TestSet, hu_window: tuple[float, float]) -> RowContext:
    """The shared part of the rows; ``hu_window`` applies only to CT in HU."""
    estimate, true = noise_variances(test)
    has_clean = test.clean is not None
    return RowContext(
        dataset=test.path.stem,
        dataset_sha256=dataset_sha256(test.path),
        hu_window=hu_window if test.attrs.is_ct_hu and has_clean else None,
        input_psnr_db=_against_clean(psnr, test, test.inputs),
        noise_var_estimate=estimate,
        noise_var_true=true,
    )


def noise_variances(test: TestSet) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the pair estimate of the input's noise variance
    (:meth:`~lowdose.evaluation.testset.TestSet.pair_noise_variance`, NaN for N < 2) and the true
    ``Var(input - clean)`` (NaN without clean), both (I,) float64 on the dataset's scale squared."""
    inputs = test.inputs.astype(np.float64)
    true = (
        np.full(len(inputs), math.nan)
        if test.clean is None
        else np.var(inputs - test.clean, axis=(1, 2))
    )
    return test.pair_noise_variance(), true


def _against_clean(metric, test: TestSet, outputs: np.ndarray) -> np.ndarray:
    """(I,) ``metric(clean, outputs, data_range)``; NaN when the file has no clean images."""
    if test.clean is None:
        return np.full(len(outputs), math.nan)
    return np.atleast_1d(metric(test.clean, outputs, data_range=test.data_range))


def _to_hu(test: TestSet, images: np.ndarray) -> np.ndarray:
    """(I, H, W) float64 HU of images on the dataset's scale."""
    return images.astype(np.float64) * test.scale[:, None, None] - test.attrs.scaling_offset


def hu_metrics(
    test: TestSet, outputs: np.ndarray, window: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(I,) each: PSNR in ``window``, PSNR in the soft-tissue window, Wang SSIM in ``window``.

    All NaN when ``window`` is None (not CT in HU, or no clean images).
    """
    if window is None or test.clean is None:
        nan = np.full(len(outputs), math.nan)
        return nan, nan, nan
    low, high = window
    reference, estimate = _to_hu(test, test.clean), _to_hu(test, outputs)
    window_db = np.atleast_1d(psnr_hu_window(reference, estimate, window))
    soft_db = np.atleast_1d(psnr_hu_window(reference, estimate, HU_SOFT_TISSUE_WINDOW))
    clipped = np.clip(reference, low, high), np.clip(estimate, low, high)
    wang = np.atleast_1d(ssim_wang(*clipped, data_range=high - low))
    return window_db, soft_db, wang


def clean_free_scores(
    test: TestSet, outputs: np.ndarray, context: RowContext
) -> tuple[np.ndarray, np.ndarray]:
    """(I,) uMSE (dataset scale squared) and uPSNR in dB of ``outputs = f(y1)`` against y2.

    NaN for N < 2 and for view subsets (the input, their mean, shares the second's noise);
    uPSNR NaN where uMSE <= 0. Reads only the two realisations.
    """
    if test.noisy.shape[1] < 2 or test.view_subsets > 1:  # a subset is part of the input
        nan = np.full(len(outputs), math.nan)
        return nan, nan
    second, variance = test.noisy[:, 1], context.noise_var_estimate
    # inside the field of view only (when the file has one): constant padding would flatter it
    umse = unbiased_mse(second, outputs, noise_variance=variance, inside=test.fov)
    return umse, upsnr_from_umse(umse, data_range=test.data_range)


def result_rows(test: TestSet, method: MethodOutput, context: RowContext) -> list[ResultRow]:
    """One :class:`ResultRow` per test image for ``method``."""
    outputs = method.outputs
    psnr_db = _against_clean(psnr, test, outputs)
    ssim_values = _against_clean(ssim, test, outputs)
    window = context.hu_window
    hu_db, soft_db, wang = hu_metrics(test, outputs, window)
    umse, upsnr_db = clean_free_scores(test, outputs, context)
    return [
        ResultRow(
            dataset=context.dataset,
            dataset_sha256=context.dataset_sha256,
            image_index=int(test.index[i]),
            object_id=source_object(test.object_id[i]),  # tiles cluster by their object
            method=method.method,
            model=method.model,
            tuning=method.tuning,
            params=json.dumps(method.params[i], sort_keys=True),
            noise_level=float(test.attrs.noise_level),
            input_psnr_db=float(context.input_psnr_db[i]),
            psnr_db=float(psnr_db[i]),
            ssim=float(ssim_values[i]),
            psnr_hu_window_db=float(hu_db[i]),
            hu_window=f"{window[0]:g}..{window[1]:g}" if window is not None else "",
            data_range=test.data_range,
            scaling_rule=str(test.attrs.scaling_rule),
            clipped=False,
            noise_var_estimate=float(context.noise_var_estimate[i]),
            noise_var_true=float(context.noise_var_true[i]),
            seed=method.seed,
            selection=method.selection,
            upsnr_db=float(upsnr_db[i]),
            umse=float(umse[i]),
            psnr_hu_soft_db=float(soft_db[i]),
            ssim_wang_hu_window=float(wang[i]),
        )
        for i in range(len(outputs))
    ]
