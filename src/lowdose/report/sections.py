"""The report's result sections: the overview and the sweep against clean, and their helpers.

Each function takes a loaded ``report.Experiment`` and returns blocks; a missing part gives a
"not run" paragraph instead of failing. The per-method tables are in ``report.method_tables``,
the paired comparisons in ``report.comparisons``, image panels and training curves in
``report.images``, conventions and environment in ``report.context``.
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
    """The paper table this experiment reproduces; None when it has none, or when its noise is
    not the paper's (the sinogram-noise CT experiments are not Tables IV/V)."""
    attrs = experiment.attrs
    return paper_table_for(
        name=experiment.name,
        table_id=experiment.record.paper_table,
        noise_model=attrs.noise_model if attrs is not None else None,
    )


def method_label(method: str, model: str, tuning: str, selection: str = "") -> str:
    """Table label: the paper's name for the method, the model, and how the run was chosen.

    Networks carry their checkpoint selection (``clean-free`` | ``clean-selected``), filters
    their tuning (``oracle`` | ``blind`` | ``blind-clean``).

    >>> method_label("n2n-mse", "unet-w16", "none", "clean-free")
    'Noise2Noise MSE loss · unet-w16 · clean-free'
    """
    label = PAPER_METHOD_NAMES.get(method, method)
    parts = (model, tuning, selection)
    extras = [part for part in parts if part and str(part) not in ("none", "nan")]
    return f"{label} · {' · '.join(extras)}" if extras else label


def row_label(row) -> str:
    """:func:`method_label` of a summary row (a mapping with the SummaryRow keys)."""
    return method_label(row["method"], row["model"], row["tuning"], row.get("selection", ""))


def summary_of(experiment):
    """The experiment's per-method summary (:func:`report.analysis.summary_table`), or None."""
    if experiment.results is None:
        return None
    return summary_table(experiment.results)


def primary_metric(results) -> str:
    """``psnr_db`` when the results have a clean reference (any finite PSNR), else ``upsnr_db``
    (the clean-free pair-based PSNR)."""
    psnr = results["psnr_db"].to_numpy(dtype=float)
    return "psnr_db" if np.isfinite(psnr).any() or "upsnr_db" not in results else "upsnr_db"


_SWEEP_HEADERS = [
    "Curve",
    "Input PSNR range [dB]",
    "Best output [dB] at input",
    "Max gain [dB]",
    "Upper limit of the range [dB input]",
    "All zero-gain crossings [dB input]",
]


def _upper_limit(crossings, gain: np.ndarray) -> str:
    # The range's upper limit is the last place where the gain falls through zero.
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
                _upper_limit(crossings, y - x),
                ", ".join(f"{c.input_psnr_db:.2f} ({c.direction})" for c in crossings) or "—",
            ]
        )
    return curves, rows


def sweep(experiment) -> list:
    """Accuracy range against clean: figure, zero-gain crossings and model-vs-model crossings."""
    paper = paper_of(experiment)
    fig_no = f" (as paper Fig. {paper.sweep_figure})" if paper else ""
    blocks: list = [Heading(3, f"Accuracy range against clean{fig_no}")]
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
        f"{experiment.name}: mean over test images at each noise level; each network swept with "
        "its first training seed's checkpoint. Crosses mark zero gain (the range's upper limit), "
        "diamonds where two models cross, dotted lines the training levels"
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


def as_float(value) -> float:
    """``float(value)``, NaN for anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def overview(experiments) -> list:
    """One row per experiment: baseline, best network, best filter and their difference."""
    rows = []
    for exp in experiments:
        paper = paper_of(exp)
        summary = summary_of(exp)
        if summary is None:
            rows.append([exp.name, paper.table_id if paper else "—", "not run", "", "", "", ""])
            continue
        metric = primary_metric(exp.results)
        nets = summary[summary["method"].map(is_model_method)]
        filt = summary[~summary["method"].map(is_model_method) & (summary["method"] != "noisy")]
        noisy = summary[summary["method"] == "noisy"][metric]
        gap = as_float(nets[metric].max()) - as_float(filt[metric].max())
        rows.append(
            [
                exp.name,
                paper.table_id if paper else "—",
                exp.record.scale or "—",
                fmt_number(noisy.mean() if len(noisy) else math.nan),
                _best(nets, metric),
                _best(filt, metric),
                fmt_number(gap, signed=True),
            ]
        )
    headers = ["Experiment", "Paper table", "Scale", "Noisy [dB]", "Best network [dB]"]
    headers += ["Best filter [dB]", "Network − filter [dB]"]
    caption = (
        "Mean PSNR on each experiment's test set (data_range 1; networks: mean over seeds); "
        "uPSNR (clean-free, pair-based) where a test set has no clean images. '—' in Paper "
        "table: no counterpart in the paper (or noise other than the paper's)."
    )
    return [Heading(2, "Overview"), Table(headers, rows, caption=caption, numeric=(3, 6))]


def _best(part, metric: str) -> str:
    values = part[metric].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return "none evaluated"
    row = part.iloc[int(np.nanargmax(values))]
    return f"{fmt_number(row[metric])} ({row_label(row)})"
