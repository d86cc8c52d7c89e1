"""The per-method results table of one experiment: one row per method, model and tuning.

Each table states its conventions in its caption. PSNR and SSIM (7x7 uniform window) use
data_range 1 on the dataset scale; a network's row is the mean over its training seeds of each
seed's mean over test images, ``± sd`` over those per-seed means (the ``Seeds`` column counts
them); the 95 % CI is the Student-t interval over test images, each image first averaged over the
seeds. CT in HU adds the PSNR in the -1000..1000 HU window (data_range 2000) and in the soft-tissue
window -160..240 HU (data_range 400), both images clipped to the window, and Wang et al.'s SSIM
(Gaussian 11x11, sigma 1.5) in the -1000..1000 HU window. uPSNR is the clean-free pair-based PSNR
(data_range 1) with its 95 % cluster-bootstrap interval over objects; it replaces PSNR when the test
set has no clean images and stands beside it otherwise (a check of the estimator). The paper's
numbers and "ours − paper" appear only where the experiment is the paper's (:func:`paper_of`).
"""

from __future__ import annotations

import math

import numpy as np

from lowdose.data.results import with_defaults
from lowdose.report.analysis import is_model_method
from lowdose.report.html import Heading, Paragraph, Table
from lowdose.report.paper_numbers import PaperTable
from lowdose.report.sections import (
    as_float,
    fmt_number,
    not_run,
    paper_of,
    primary_metric,
    row_label,
    summary_of,
)

_SCALE_NAMES = {
    "data_range_1": "data_range 1",
    "hu_window": "HU window -1000..1000, data_range 2000",
}


def results_table(experiment) -> list:
    """The paper-form table(s): the mean per method, with the paper's number where it has one."""
    paper = paper_of(experiment)
    if paper:
        where = f" (as paper Table {paper.table_id})"
    elif experiment.record.paper_table:
        where = " (beyond the paper: its noise is not that of any paper table)"
    else:
        where = " (no counterpart in the paper)"
    summary = summary_of(experiment)
    metric = primary_metric(experiment.results) if summary is not None else "psnr_db"
    name = "PSNR" if metric == "psnr_db" else "uPSNR (no clean images)"
    blocks: list = [Heading(3, f"Mean {name} per method{where}")]
    if summary is None:
        return blocks + [not_run("no results/results.csv", "Run `lowdose evaluate`.")]
    blocks.append(_baseline_line(experiment, summary, paper))
    counts = _image_counts(experiment.results, metric)
    groups = list(summary.groupby("noise_level", dropna=False, sort=True))
    for level, part in groups:
        if len(groups) > 1:
            blocks.append(Heading(4, f"Noise level {level:g}"))
        blocks.append(_table_for(part, paper, experiment, metric, counts))
    return blocks


def _image_counts(results, metric: str) -> dict:
    """(label, noise level) -> test images with a finite ``metric`` (any seed)."""
    frame = with_defaults(results)
    frame = frame[np.isfinite(frame[metric].to_numpy(dtype=float))]
    groups = frame.groupby(["label", "noise_level"], dropna=False)["image_index"].nunique()
    return {(label, _level_key(level)): int(n) for (label, level), n in groups.items()}


def _level_key(level) -> float | None:
    """A noise level as a dict key (NaN, never equal to itself, becomes None)."""
    value = as_float(level)
    return None if math.isnan(value) else value


def target_scale(experiment) -> str:
    """The scale the dataset's target PSNR refers to: ``data_range_1`` or ``hu_window`` (the
    CT builder records it in the dataset's attributes; ``data_range_1`` when not stated)."""
    attrs = experiment.attrs
    scale = str(attrs.extra.get("target_scale", "")) if attrs is not None else ""
    return scale if scale in _SCALE_NAMES else "data_range_1"


def _baseline_line(experiment, summary, paper: PaperTable | None) -> Paragraph:
    """Target and achieved noisy-input PSNR, both on the scale the target refers to."""
    attrs = experiment.attrs
    target = experiment.record.baseline_target_db
    if not math.isfinite(target) and attrs is not None:
        target = attrs.target_psnr_db
    scale = target_scale(experiment)
    column = "psnr_hu_window_db" if scale == "hu_window" else "psnr_db"
    noisy = summary[summary["method"] == "noisy"]
    achieved, where = as_float(noisy[column].mean()) if len(noisy) else math.nan, "test set"
    if not math.isfinite(achieved) and attrs is not None:
        where = "whole dataset"
        achieved = as_float(
            attrs.extra.get("achieved_psnr_hu_window_db")
            if scale == "hu_window"
            else attrs.achieved_psnr_db
        )
    unit = _SCALE_NAMES[scale]
    text = (
        f"**Baseline (noisy) PSNR**: target {fmt_number(as_float(target))} dB ({unit}), "
        f"achieved {fmt_number(achieved)} dB ({unit}, {where})"
    )
    if np.isfinite(as_float(target)) and np.isfinite(achieved):
        text += f" (difference {fmt_number(achieved - as_float(target), signed=True)} dB)"
    if scale == "hu_window" and len(noisy):
        text += f"; on data_range 1: {fmt_number(as_float(noisy['psnr_db'].mean()))} dB"
    if paper is not None:
        text += f"; the paper's test set: {paper.baseline_psnr_db:.2f} dB (data_range 1)"
    return Paragraph(text + ".")


def _columns(summary, paper: PaperTable | None, metric: str) -> list[tuple[str, object]]:
    """(header, cell function of a summary row) for the columns this table has data for."""
    noisy = summary[summary["method"] == "noisy"][metric]
    noisy_db = float(noisy.mean()) if len(noisy) else math.nan

    def gain(row) -> str:
        return "—" if row["method"] == "noisy" else fmt_number(row[metric] - noisy_db, signed=True)

    def has(column: str) -> bool:
        return column in summary and bool(np.isfinite(summary[column].to_numpy(float)).any())

    columns: list[tuple[str, object]] = []
    if paper is not None and metric == "psnr_db":
        columns += [("Paper [dB]", lambda r: fmt_number(_paper_db(paper, r["method"])))]
        columns += [
            (
                "Ours − paper [dB]",
                lambda r: fmt_number(r["psnr_db"] - _paper_db(paper, r["method"]), signed=True),
            )
        ]
    columns += [("Gain over noisy [dB]", gain)]
    if metric == "psnr_db":
        columns += [("SSIM (7×7 uniform)", lambda r: fmt_number(r["ssim"], 4))]
    if metric == "psnr_db" and (has("psnr_hu_window_db") or has("psnr_hu_soft_db")):
        columns += [("PSNR HU −1000..1000 [dB]", lambda r: fmt_number(r["psnr_hu_window_db"]))]
        columns += [("PSNR HU −160..240 [dB]", lambda r: fmt_number(r["psnr_hu_soft_db"]))]
    if metric == "psnr_db" and has("ssim_wang_hu_window"):
        header = "SSIM Wang (Gaussian 11×11, σ 1.5), HU −1000..1000"
        columns += [(header, lambda r: fmt_number(r["ssim_wang_hu_window"], 4))]
    if metric == "psnr_db" and has("upsnr_db"):
        columns += [("uPSNR [dB] (95 % CI)", _upsnr_cell)]
    return columns


def _paper_db(paper: PaperTable, method: str) -> float:
    if method == "noisy":
        return paper.baseline_psnr_db
    return paper.mean_psnr_db.get(method, math.nan)


def _upsnr_cell(row) -> str:
    low, high = as_float(row.get("upsnr_ci95_low_db")), as_float(row.get("upsnr_ci95_high_db"))
    interval = f" [{fmt_number(low)}, {fmt_number(high)}]" if not math.isnan(low) else ""
    return fmt_number(row["upsnr_db"]) + interval


def _mean_cell(row, metric: str) -> str:
    text = fmt_number(row[metric])
    sd = as_float(row.get("psnr_sd_seeds_db"))
    if metric == "psnr_db" and is_model_method(row["method"]) and np.isfinite(sd):
        text += f" ± {sd:.2f}"
    return text


def _ci_cell(row, metric: str) -> str:
    if metric == "upsnr_db":
        low, high = as_float(row.get("upsnr_ci95_low_db")), as_float(row.get("upsnr_ci95_high_db"))
        return f"[{fmt_number(low)}, {fmt_number(high)}]" if not math.isnan(low) else "—"
    half = as_float(row["psnr_ci95_db"])
    return "± " + fmt_number(half) if np.isfinite(half) else "—"


def _table_for(summary, paper: PaperTable | None, experiment, metric: str, counts) -> Table:
    name = "PSNR" if metric == "psnr_db" else "uPSNR"
    headers = ["Tool", "Images / objects", "Seeds", f"Mean {name} [dB] (± sd over seeds)"]
    headers += ["95 % CI [dB]"]
    columns = _columns(summary, paper, metric)
    headers += [header for header, _ in columns]
    rows = []
    for _, row in summary.iterrows():
        n_images = counts.get((row["label"], _level_key(row["noise_level"])), 0)
        cells = [
            row_label(row),
            f"{n_images} / {row.get('n_objects', '—')}",
            str(row["n_seeds"]) if is_model_method(row["method"]) else "—",
            _mean_cell(row, metric),
            _ci_cell(row, metric),
        ]
        rows.append(cells + [cell(row) for _, cell in columns])
    numeric = tuple(range(1, len(headers)))
    return Table(headers, rows, caption=_caption(paper, experiment, metric), numeric=numeric)


def _caption(paper: PaperTable | None, experiment, metric: str) -> str:
    caption = f"Paper Table {paper.table_id}: {paper.title}. " if paper else ""
    scale = experiment.record.scale
    caption += f"Our scale: {scale}. " if scale else ""
    caption += (
        "Mean over test images on the dataset scale (data_range 1); networks: mean over training "
        "seeds of each seed's mean, ± the sd over seeds (one seed: no sd); networks are labelled "
        "clean-free (checkpoint chosen without clean images) or clean-selected, filters by their "
        "tuning. "
    )
    if metric == "psnr_db":
        caption += (
            "95 % CI: Student-t interval over test images (each image averaged over seeds). "
            "HU windows: both images clipped to the window, data_range its width. uPSNR: "
            "pair-based, no clean image used, 95 % cluster-bootstrap interval over objects. "
        )
    else:
        caption += (
            "No clean test images: uPSNR (pair-based unbiased PSNR from two noisy realisations, "
            "data_range 1) with its 95 % cluster-bootstrap percentile interval over objects. "
        )
    return caption + "'—' where there is no number."
