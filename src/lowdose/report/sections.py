"""The report's result sections: the overview, the paper-form table and the validity sweep.

Each function takes a loaded ``report.Experiment`` and returns blocks; a missing part gives a
"not run" paragraph instead of failing. Image panels and training curves are in ``report_images``,
conventions and environment in ``report_context``.
"""

from __future__ import annotations

import math

import numpy as np

from lowdose.report.analysis import (
    curve_crossings,
    is_model_method,
    summary_table,
    sweep_means,
    zero_crossings,
)
from lowdose.report.figures import SweepCurve, sweep_figure
from lowdose.report.html import Figure, Heading, Paragraph, Table
from lowdose.report.paper_numbers import PAPER_METHOD_NAMES, PaperTable, paper_table_for


def fmt_number(value: float, digits: int = 2, *, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (``+`` sign if ``signed``); "—" for None or non-finite."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def not_run(what: str, hint: str) -> Paragraph:
    """The paragraph shown for a part of an experiment that has no saved output."""
    return Paragraph(f"**Not run**: {what}. {hint}", css_class="note")


def paper_of(experiment) -> PaperTable | None:
    """The paper table this experiment reproduces (None when it has none)."""
    return paper_table_for(name=experiment.name, table_id=experiment.record.paper_table)


def method_label(method: str, model: str, tuning: str) -> str:
    """Table label: the paper's name for the method plus the model and the tuning kind."""
    label = PAPER_METHOD_NAMES.get(method, method)
    extras = [part for part in (model, tuning) if part and part not in ("none", "nan")]
    return f"{label} · {' · '.join(extras)}" if extras else label


def _summary(experiment):
    if experiment.results is None:
        return None
    return summary_table(experiment.results)


def _baseline_line(experiment, summary, paper: PaperTable | None) -> Paragraph:
    attrs = experiment.attrs
    target = experiment.record.baseline_target_db
    if not math.isfinite(target) and attrs is not None:
        target = attrs.target_psnr_db
    noisy = summary[summary["method"] == "noisy"]["psnr_db"]
    if len(noisy):
        achieved = float(noisy.mean())
    else:
        achieved = attrs.achieved_psnr_db if attrs else math.nan
    text = (
        f"**Baseline (noisy) PSNR**: target {fmt_number(_float(target))} dB, "
        f"achieved {fmt_number(achieved)} dB"
    )
    if np.isfinite(_float(target)) and np.isfinite(achieved):
        text += f" (difference {fmt_number(achieved - _float(target), signed=True)} dB)"
    if paper is not None:
        text += f"; the paper's test set: {paper.baseline_psnr_db:.2f} dB."
    return Paragraph(text)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def results_table(experiment) -> list:
    """The paper-form table: mean PSNR per method with the paper's number and the difference."""
    paper = paper_of(experiment)
    where = f" (as paper Table {paper.table_id})" if paper else " (no counterpart in the paper)"
    blocks: list = [Heading(3, f"Mean PSNR per method{where}")]
    summary = _summary(experiment)
    if summary is None:
        return blocks + [not_run("no results/results.csv", "Run `lowdose evaluate`.")]
    blocks.append(_baseline_line(experiment, summary, paper))
    groups = list(summary.groupby("noise_level", dropna=False, sort=True))
    for level, part in groups:
        if len(groups) > 1:
            blocks.append(Heading(4, f"Noise level {level:g}"))
        blocks.append(_table_for(part, paper, experiment))
    return blocks


def _table_for(summary, paper: PaperTable | None, experiment) -> Table:
    noisy = summary[summary["method"] == "noisy"]["psnr_db"]
    noisy_db = float(noisy.mean()) if len(noisy) else math.nan
    with_hu = bool(np.isfinite(summary["psnr_hu_window_db"].to_numpy(dtype=float)).any())
    headers = [
        "Tool",
        "n",
        "Mean PSNR [dB]",
        "95 % CI [dB]",
        "Paper [dB]",
        "Ours − paper [dB]",
        "Gain over noisy [dB]",
        "SSIM",
    ] + (["PSNR HU window [dB]"] if with_hu else [])
    rows = []
    for _, row in summary.iterrows():
        method = row["method"]
        if paper is None:
            paper_db = math.nan
        elif method == "noisy":
            paper_db = paper.baseline_psnr_db
        else:
            paper_db = paper.mean_psnr_db.get(method, math.nan)
        cells = [
            method_label(method, row["model"], row["tuning"]),
            str(row["n"]),
            fmt_number(row["psnr_db"]),
            "± " + fmt_number(row["psnr_ci95_db"]) if np.isfinite(row["psnr_ci95_db"]) else "—",
            fmt_number(paper_db),
            fmt_number(row["psnr_db"] - paper_db, signed=True),
            "—" if method == "noisy" else fmt_number(row["psnr_db"] - noisy_db, signed=True),
            fmt_number(row["ssim"], 4),
        ]
        rows.append(cells + ([fmt_number(row["psnr_hu_window_db"])] if with_hu else []))
    caption = f"Paper Table {paper.table_id}: {paper.title}. " if paper else ""
    scale = experiment.record.scale
    caption += (f"Our scale: {scale}. " if scale else "") + (
        "Mean over test images; 95 % CI is the Student-t interval of the mean; '—' where the "
        "paper has no number."
    )
    return Table(headers, rows, caption=caption, numeric=tuple(range(1, len(headers))))


_SWEEP_HEADERS = [
    "Curve",
    "Input PSNR range [dB]",
    "Best output [dB] at input",
    "Max gain [dB]",
    "Upper validity limit [dB input]",
    "All zero-gain crossings [dB input]",
]


def _validity_limit(crossings, gain: np.ndarray) -> str:
    # The upper validity limit is the last place where the gain falls through zero.
    downs = [c.input_psnr_db for c in crossings if c.direction == "down"]
    if downs:
        return f"{max(downs):.2f}"
    if (gain > 0).all():
        return "none (gain > 0 throughout)"
    return "none (gain ≤ 0 throughout)" if (gain <= 0).all() else "none downward"


def _sweep_curves(means) -> tuple[list, list[list[str]]]:

    curves, rows = [], []
    for mean in means:
        x, y = mean.input_psnr_db, mean.output_psnr_db
        crossings = zero_crossings(x, y - x)
        zero_db = tuple(c.input_psnr_db for c in crossings)
        curves.append(SweepCurve(mean.label, x, y, is_model_method(mean.method), zero_db))
        peak = int(np.argmax(y))
        rows.append(
            [
                mean.label,
                f"{x.min():.2f} – {x.max():.2f}",
                f"{y[peak]:.2f} at {x[peak]:.2f}",
                f"{(y - x).max():.2f}",
                _validity_limit(crossings, y - x),
                ", ".join(f"{c.input_psnr_db:.2f} ({c.direction})" for c in crossings) or "—",
            ]
        )
    return curves, rows


def sweep(experiment) -> list:
    """Validity-range sweep: figure, zero-gain crossings and model-vs-model crossings."""
    paper = paper_of(experiment)
    fig_no = f" (as paper Fig. {paper.sweep_figure})" if paper else ""
    blocks: list = [Heading(3, f"Validity range{fig_no}")]
    if experiment.sweep is None or len(experiment.sweep) == 0:
        return blocks + [not_run("no sweep/sweep.csv", "Run `lowdose sweep`.")]

    means = sweep_means(experiment.sweep)
    curves, rows = _sweep_curves(means)
    model_rows, marks = _model_crossings(means)
    trained = sorted({m.trained_at_db for m in means if np.isfinite(m.trained_at_db)})
    paper_range = paper.sweep_input_psnr_db if paper else None
    png = sweep_figure(
        curves, model_crossings=marks, trained_at_db=tuple(trained), paper_range_db=paper_range
    )
    caption = (
        f"{experiment.name}: mean over test images at each noise level. Crosses mark zero gain "
        "(upper validity limit), diamonds where two models cross, dotted lines the training levels"
    )
    if paper_range:
        caption += f", the shaded band the paper's sweep range ({paper_range[0]:.2f}–"
        caption += f"{paper_range[1]:.2f} dB)"
    blocks.append(Figure(png, f"figures/{safe_name(experiment.name)}-sweep.png", caption + "."))
    blocks.append(
        Table(
            _SWEEP_HEADERS,
            rows,
            caption="Crossings by linear interpolation on the mean curve.",
            numeric=(1, 2, 3, 4),
        )
    )
    if model_rows:
        headers = ["Curves", "Input PSNR [dB]", "Output PSNR [dB]", "Higher output above it"]
        caption = "Where model curves cross each other."
        blocks.append(Table(headers, model_rows, caption=caption, numeric=(1, 2)))
    elif sum(is_model_method(m.method) for m in means) > 1:
        blocks.append(Paragraph("The model curves do not cross in the swept range."))
    if paper and paper.sweep_claim:
        blocks.append(Paragraph(f"The paper: {paper.sweep_claim}", css_class="note"))
    return blocks


def _model_crossings(means) -> tuple[list[list[str]], list[tuple[float, float]]]:
    models = [m for m in means if is_model_method(m.method)]
    rows, marks = [], []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            for c in curve_crossings(
                a.input_psnr_db, a.output_psnr_db, b.input_psnr_db, b.output_psnr_db
            ):
                above = a.label if c.direction == "up" else b.label
                rows.append(
                    [f"{a.label} × {b.label}", f"{c.input_psnr_db:.2f}", f"{c.value:.2f}", above]
                )
                marks.append((c.input_psnr_db, c.value))
    return rows, marks


def safe_name(name: str) -> str:
    """``name`` as a file-name stem: anything but letters, digits, ``-`` and ``_`` becomes ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def overview(experiments) -> list:
    """One row per experiment: baseline, best network, best filter and their difference."""
    rows = []
    for exp in experiments:
        paper = paper_of(exp)
        summary = _summary(exp)
        if summary is None:
            rows.append([exp.name, paper.table_id if paper else "—", "not run", "", "", "", ""])
            continue
        nets = summary[summary["method"].map(is_model_method)]
        filt = summary[~summary["method"].map(is_model_method) & (summary["method"] != "noisy")]
        noisy = summary[summary["method"] == "noisy"]["psnr_db"]
        best = [_best(nets), _best(filt)]
        gap = _float(nets["psnr_db"].max()) - _float(filt["psnr_db"].max())
        rows.append(
            [
                exp.name,
                paper.table_id if paper else "—",
                exp.record.scale or "—",
                fmt_number(noisy.mean() if len(noisy) else math.nan),
                best[0],
                best[1],
                fmt_number(gap, signed=True),
            ]
        )
    table = Table(
        [
            "Experiment",
            "Paper table",
            "Scale",
            "Noisy [dB]",
            "Best network [dB]",
            "Best filter [dB]",
            "Network − filter [dB]",
        ],
        rows,
        caption="Mean PSNR on each experiment's test set (data_range 1).",
        numeric=(3, 6),
    )
    return [Heading(2, "Overview"), table]


def _best(part) -> str:
    if not len(part):
        return "none evaluated"
    row = part.loc[part["psnr_db"].idxmax()]
    return (
        f"{fmt_number(row['psnr_db'])} ({method_label(row['method'], row['model'], row['tuning'])})"
    )
