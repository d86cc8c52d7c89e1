"""The results schema: the columns of ``results.csv`` and ``sweep.csv``, and their one summary.

``lowdose evaluate`` writes one :class:`ResultRow` per test image x method (docs/interfaces.md,
"Results"); ``lowdose sweep`` one row of :data:`SWEEP_COLUMNS` per method x noise level x image.
:func:`summarize` turns a results table into the paper-form rows (mean, 95 % confidence interval,
SSIM, HU-window PSNR, clean-free uPSNR per method) that both ``summary.md`` and the report show;
paired method-vs-method differences live in :mod:`lowdose.data.paired`.

Means are NaN-aware: taken over the *finite* values of a group (a diverged network's NaN PSNR is
left out, not allowed to turn the mean into NaN), with ``n`` the number of images that entered.
Several training seeds of one network: each image's value is first averaged over the seeds.

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

from lowdose.core.metrics import psnr_from_mse
from lowdose.data.statistics import cluster_bootstrap_ci95, image_seed_means

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
    "seed",
    "selection",
    "upsnr_db",
    "umse",
    "psnr_hu_soft_db",
    "ssim_wang_hu_window",
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
    "n_objects",
    "n_seeds",
    "psnr_sd_seeds_db",
    "upsnr_db",
    "upsnr_ci95_low_db",
    "upsnr_ci95_high_db",
    "psnr_hu_soft_db",
    "ssim_wang_hu_window",
    "selection",
)

# Optional columns a hand-written results table may lack, and the value that stands for them
# (``image_index`` and ``object_id`` default to the row number: every row its own image/object).
_DEFAULTS = {
    "model": "",
    "tuning": "none",
    "noise_level": math.nan,
    "ssim": math.nan,
    "psnr_hu_window_db": math.nan,
    "seed": -1,
    "selection": "",
    "upsnr_db": math.nan,
    "psnr_hu_soft_db": math.nan,
    "ssim_wang_hu_window": math.nan,
    "data_range": 1.0,
}


class ResultRow(TypedDict):
    """One row of ``results.csv``: one test image denoised by one method.

    PSNRs in dB and SSIM on the dataset's scale with ``data_range``, on unclipped outputs
    (``clipped`` is always False); NaN when the file has no clean images. ``psnr_hu_window_db``
    is NaN and ``hu_window`` empty unless the dataset is CT in HU; ``noise_var_estimate``
    (``Var(y1 - y2) / 2``, NaN for N < 2) and ``noise_var_true`` (``Var(y1 - clean)``, NaN
    without clean) are the per-image noise variances on that scale.

    Clean-free: ``umse = mean((f(y1) - y2)^2) - Var(y1 - y2) / 2`` (dataset scale squared; may
    be < 0) and ``upsnr_db`` its PSNR (NaN where ``umse <= 0`` or N < 2). CT in HU only (else
    NaN): ``psnr_hu_soft_db`` in the soft-tissue window -160..240 HU (data_range 400) and
    ``ssim_wang_hu_window`` (Wang et al. 2004 SSIM) in ``hu_window``, data_range its width.
    ``seed`` is the network's training seed (-1 for filters, the noisy input and unknown);
    ``selection`` its checkpoint choice (``clean-free`` | ``clean-selected`` | ``""``).
    """

    dataset: str
    dataset_sha256: str
    image_index: int
    object_id: str
    method: str
    model: str
    tuning: str  # "none" or a kind of lowdose.baselines.tuning_kinds.TUNING_KINDS
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
    seed: int
    selection: str
    upsnr_db: float
    umse: float
    psnr_hu_soft_db: float
    ssim_wang_hu_window: float


class SummaryRow(TypedDict):
    """One method x model x tuning x noise level of a results table (paper Tables III-V).

    Each image's value is first averaged over the group's seeds; ``n`` counts the images with a
    finite PSNR. ``psnr_db`` is the mean over seeds of each seed's mean (= the mean over rows
    when every seed saw the same images), ``psnr_sd_seeds_db`` their sd (NaN for one seed);
    ``*_ci95`` are 95 % Student-t half-widths over images (NaN for n < 2). ``upsnr_db`` is the
    PSNR of the mean uMSE over images (averaged first: the unbiased estimator), with the 95 %
    cluster-bootstrap percentile interval over objects ``upsnr_ci95_low_db``/``_high_db``
    (:func:`lowdose.data.statistics.cluster_bootstrap_ci95`; NaN for one object, ``high`` inf
    where a resampled mean uMSE is <= 0). ``selection`` joins the rows' distinct values.
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
    n_objects: int
    n_seeds: int
    psnr_sd_seeds_db: float
    upsnr_db: float
    upsnr_ci95_low_db: float
    upsnr_ci95_high_db: float
    psnr_hu_soft_db: float
    ssim_wang_hu_window: float
    selection: str


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


def with_defaults(results):
    """A copy of a results table with every summarised column present and a ``label`` column.

    Missing optional columns take their defaults (``seed`` -1, NaN metrics, ...); a missing
    ``image_index`` / ``object_id`` becomes the row number (each row its own image and object);
    a missing ``umse`` is recovered from ``upsnr_db`` and ``data_range`` (NaN where it was <= 0).
    """
    frame = results.reset_index(drop=True).copy()
    for column, default in _DEFAULTS.items():
        if column not in frame:
            frame[column] = default
    for column in ("image_index", "object_id"):
        if column not in frame:
            frame[column] = np.arange(len(frame))
    if "umse" not in frame:
        frame["umse"] = frame["data_range"] ** 2 / 10.0 ** (frame["upsnr_db"] / 10.0)
    for column, default in (("model", ""), ("tuning", "none"), ("selection", "")):
        frame[column] = frame[column].fillna(default).astype(str)
    frame["object_id"] = frame["object_id"].astype(str)
    frame["seed"] = frame["seed"].fillna(-1).astype(int)
    frame["label"] = [
        summary_label(str(m), mo, t)
        for m, mo, t in zip(frame["method"], frame["model"], frame["tuning"], strict=True)
    ]
    return frame


def summarize(results) -> list[SummaryRow]:
    """Paper-form summary: one row per method x model x tuning x noise level.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (:data:`RESULT_COLUMNS`); only ``method`` and ``psnr_db`` are required,
        the other summarised columns default as in :func:`with_defaults`.

    Returns
    -------
    list of SummaryRow
        In order of first appearance in ``results``; means over finite values only.
    """
    frame = with_defaults(results)
    frame["umse_unit"] = frame["umse"] / frame["data_range"] ** 2  # on data_range 1
    keys = ["method", "model", "tuning", "noise_level"]
    return [
        _summary_row(key, group) for key, group in frame.groupby(keys, sort=False, dropna=False)
    ]


_IMAGE_COLUMNS = ["psnr_db", "ssim", "psnr_hu_window_db", "psnr_hu_soft_db", "ssim_wang_hu_window"]


def _summary_row(key, group) -> SummaryRow:
    method, model, tuning, noise_level = key
    images = image_seed_means(group, [*_IMAGE_COLUMNS, "umse_unit"])
    psnr = group["psnr_db"].astype(np.float64)
    seed_means = psnr.where(np.isfinite(psnr)).groupby(group["seed"]).mean().dropna()
    _, psnr_half = mean_ci95(images["psnr_db"])
    ssim, ssim_half = mean_ci95(images["ssim"])
    umse = images["umse_unit"].to_numpy()
    finite = np.isfinite(umse)
    umse_low, umse_high = cluster_bootstrap_ci95(umse[finite], images["object_id"][finite])
    selections = sorted({s for s in group["selection"] if s})
    return SummaryRow(
        label=summary_label(str(method), model, tuning),
        method=str(method),
        model=model,
        tuning=tuning,
        noise_level=float(noise_level),
        n=int(np.isfinite(images["psnr_db"]).sum()),
        psnr_db=float(seed_means.mean()) if len(seed_means) else math.nan,
        psnr_ci95_db=psnr_half,
        ssim=ssim,
        ssim_ci95=ssim_half,
        psnr_hu_window_db=mean_ci95(images["psnr_hu_window_db"])[0],
        n_objects=int(group["object_id"].nunique()),
        n_seeds=int(group["seed"].nunique()),
        psnr_sd_seeds_db=float(seed_means.std(ddof=1)) if len(seed_means) > 1 else math.nan,
        upsnr_db=psnr_from_mse(umse[finite].mean(), data_range=1.0) if finite.any() else math.nan,
        upsnr_ci95_low_db=_bound_db(umse_high),
        upsnr_ci95_high_db=_bound_db(umse_low),
        psnr_hu_soft_db=mean_ci95(images["psnr_hu_soft_db"])[0],
        ssim_wang_hu_window=mean_ci95(images["ssim_wang_hu_window"])[0],
        selection="+".join(selections),
    )


def _bound_db(umse_unit: float) -> float:
    """A uPSNR interval bound from a uMSE bound (data_range 1): inf for uMSE <= 0, NaN stays."""
    if math.isnan(umse_unit):
        return math.nan
    return psnr_from_mse(umse_unit, data_range=1.0) if umse_unit > 0 else math.inf
