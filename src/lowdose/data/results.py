"""The results schema: the columns of ``results.csv`` and ``sweep.csv``, and their one summary.

``lowdose evaluate`` writes one :class:`ResultRow` per test image x method (docs/interfaces.md,
"Results"); ``lowdose sweep`` one row of :data:`SWEEP_COLUMNS` per method x noise level x image.
:func:`summarize` turns a results table into the paper-form rows (mean, 95 % confidence interval,
SSIM, HU-window PSNR per method) that both ``summary.md`` and the report show.

Means are NaN-aware: taken over the *finite* values of a group (a diverged network's NaN PSNR is
left out, not allowed to turn the mean into NaN), with ``n`` the number of images that entered.

>>> import math
>>> mean, half = mean_ci95([1.0, 2.0, 3.0])
>>> round(mean, 3), round(half, 3)
(2.0, 2.484)
>>> mean_ci95([4.0, math.nan])
(4.0, nan)
"""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np

#: Columns of ``results.csv`` / ``results.parquet``, in the order they are written.
RESULT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "dataset_sha256",
    "image_index",
    "object_id",
    "method",
    "model",
    "tuning",
    "params",
    "noise_level",
    "input_psnr_db",
    "psnr_db",
    "ssim",
    "psnr_hu_window_db",
    "hu_window",
    "data_range",
    "scaling_rule",
    "clipped",
    "noise_var_estimate",
    "noise_var_true",
)

#: Columns of ``sweep.csv``, in the order they are written.
SWEEP_COLUMNS: tuple[str, ...] = (
    "method",
    "model_trained_at_db",
    "noise_level",
    "image_index",
    "input_psnr_db",
    "output_psnr_db",
    "gain_db",
    "tuning",
)

#: Keys of a :class:`SummaryRow`, in table order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "label",
    "method",
    "model",
    "tuning",
    "noise_level",
    "n",
    "psnr_db",
    "psnr_ci95_db",
    "ssim",
    "ssim_ci95",
    "psnr_hu_window_db",
)

# Optional columns a hand-written results table may lack, and the value that stands for them.
_DEFAULTS = {
    "model": "",
    "tuning": "none",
    "noise_level": math.nan,
    "ssim": math.nan,
    "psnr_hu_window_db": math.nan,
}


class ResultRow(TypedDict):
    """One row of ``results.csv``: one test image denoised by one method.

    PSNRs in dB and SSIM on the dataset's scale with ``data_range``, on unclipped outputs
    (``clipped`` is always False); ``psnr_hu_window_db`` is NaN and ``hu_window`` empty unless
    the dataset is CT in HU; ``noise_var_estimate`` (``Var(y1 - y2) / 2``, NaN for N < 2) and
    ``noise_var_true`` (``Var(y1 - clean)``) are the per-image noise variances on that scale.
    """

    dataset: str
    dataset_sha256: str
    image_index: int
    object_id: str
    method: str
    model: str
    tuning: str  # "none" | "oracle" | "blind"
    params: str  # JSON of the filter setting / checkpoint used for this image
    noise_level: float
    input_psnr_db: float
    psnr_db: float
    ssim: float
    psnr_hu_window_db: float
    hu_window: str  # "LOW..HIGH" in HU, or ""
    data_range: float
    scaling_rule: str
    clipped: bool
    noise_var_estimate: float
    noise_var_true: float


class SummaryRow(TypedDict):
    """One method x model x tuning x noise level of a results table (paper Tables III-V).

    ``n`` counts the images with a finite PSNR (those the means are over); the ``*_ci95``
    entries are half-widths of the 95 % Student-t interval of the mean (NaN for n < 2).
    """

    label: str
    method: str
    model: str
    tuning: str
    noise_level: float
    n: int
    psnr_db: float
    psnr_ci95_db: float
    ssim: float
    ssim_ci95: float
    psnr_hu_window_db: float


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95 % Student-t confidence interval of the mean.

    Parameters
    ----------
    values : array_like (n,)
        Samples (one per test image); NaN and Inf are left out.

    Returns
    -------
    (mean, half_width) : tuple of float
        Both NaN without finite samples; ``half_width`` NaN for a single one.
    """
    from scipy.stats import t

    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    mean = float(finite.mean())
    if finite.size < 2:
        return mean, math.nan
    sem = float(finite.std(ddof=1)) / math.sqrt(finite.size)
    return mean, float(t.ppf(0.975, finite.size - 1)) * sem


def summary_label(method: str, model: str, tuning: str) -> str:
    """``method (model) (tuning)``, leaving out an empty model and the tuning ``none``.

    >>> summary_label("gaussian", "", "oracle"), summary_label("n2n-mse", "unet-w16", "none")
    ('gaussian (oracle)', 'n2n-mse (unet-w16)')
    """
    label = method + (f" ({model})" if model else "")
    return label + (f" ({tuning})" if tuning != "none" else "")


def summarize(results) -> list[SummaryRow]:
    """Paper-form summary: one row per method x model x tuning x noise level.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (:data:`RESULT_COLUMNS`); only ``method`` and ``psnr_db`` are required,
        the other summarised columns default to empty / NaN.

    Returns
    -------
    list of SummaryRow
        In order of first appearance in ``results``; means over finite values only.
    """
    frame = results.copy()
    for column, default in _DEFAULTS.items():
        if column not in frame:
            frame[column] = default
    frame["model"] = frame["model"].fillna("").astype(str)
    frame["tuning"] = frame["tuning"].fillna("none").astype(str)
    keys = ["method", "model", "tuning", "noise_level"]
    rows: list[SummaryRow] = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        method, model, tuning, noise_level = key
        psnr_db, psnr_half = mean_ci95(group["psnr_db"].to_numpy(dtype=float))
        ssim, ssim_half = mean_ci95(group["ssim"].to_numpy(dtype=float))
        rows.append(
            SummaryRow(
                label=summary_label(str(method), model, tuning),
                method=str(method),
                model=model,
                tuning=tuning,
                noise_level=float(noise_level),
                n=int(np.isfinite(group["psnr_db"].to_numpy(dtype=float)).sum()),
                psnr_db=psnr_db,
                psnr_ci95_db=psnr_half,
                ssim=ssim,
                ssim_ci95=ssim_half,
                psnr_hu_window_db=mean_ci95(group["psnr_hu_window_db"].to_numpy(dtype=float))[0],
            )
        )
    return rows
