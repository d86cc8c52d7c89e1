"""Metrics of one method's outputs against the clean test images, as rows of ``results.csv``.

Conventions, written beside every number: PSNR and SSIM (7x7 uniform window) on the dataset's
scale with ``data_range`` = the file's ``psnr_data_range`` (1.0 on the paper's scaling), on
*unclipped* outputs. For CT stored in HU, also PSNR in a named HU window: both images are
converted back (``hu = scaled * scale - scaling_offset``) and clipped to the window, and
``data_range`` is the window width.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from lowdose.core.metrics import psnr, ssim
from lowdose.data.dataset import dataset_sha256
from lowdose.data.results import ResultRow
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
        The HU window of the window PSNR; None unless the dataset is CT in HU.
    input_psnr_db : ndarray (I,) float64
        PSNR of the noisy input per image.
    noise_var_estimate, noise_var_true : ndarray (I,) float64
        ``Var(y1 - y2) / 2`` (NaN for N < 2) and ``Var(y1 - clean)`` per image.
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
    return RowContext(
        dataset=test.path.stem,
        dataset_sha256=dataset_sha256(test.path),
        hu_window=hu_window if test.attrs.is_ct_hu else None,
        input_psnr_db=np.atleast_1d(psnr(test.clean, test.inputs, data_range=test.data_range)),
        noise_var_estimate=estimate,
        noise_var_true=true,
    )


def noise_variances(test: TestSet) -> tuple[np.ndarray, np.ndarray]:
    """Per image: ``Var(y1 - y2) / 2`` (needs N >= 2, else NaN) and the true ``Var(y1 - clean)``."""
    first = test.noisy[:, 0].astype(np.float64)
    true = np.var(first - test.clean, axis=(1, 2))
    if test.noisy.shape[1] < 2:
        return np.full(len(first), math.nan), true
    return np.var(first - test.noisy[:, 1], axis=(1, 2)) / 2.0, true


def hu_window_psnr(test: TestSet, outputs: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """(I,) PSNR in dB of ``outputs`` in the HU window ``(low, high)``, data_range its width."""
    low, high = window
    offset = test.attrs.scaling_offset
    factor = test.scale[:, None, None]
    reference = np.clip(test.clean * factor - offset, low, high)
    estimate = np.clip(outputs.astype(np.float64) * factor - offset, low, high)
    return np.atleast_1d(psnr(reference, estimate, data_range=high - low))


def result_rows(test: TestSet, method: MethodOutput, context: RowContext) -> list[ResultRow]:
    """One :class:`ResultRow` per test image for ``method``."""
    psnr_db = np.atleast_1d(psnr(test.clean, method.outputs, data_range=test.data_range))
    ssim_values = np.atleast_1d(ssim(test.clean, method.outputs, data_range=test.data_range))
    window = context.hu_window
    hu_db = (
        hu_window_psnr(test, method.outputs, window)
        if window is not None
        else np.full(len(psnr_db), math.nan)
    )
    return [
        ResultRow(
            dataset=context.dataset,
            dataset_sha256=context.dataset_sha256,
            image_index=int(test.index[i]),
            object_id=str(test.object_id[i]),
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
        )
        for i in range(len(psnr_db))
    ]
