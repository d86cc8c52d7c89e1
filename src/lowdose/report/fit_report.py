"""``OUT/report.html`` of ``lowdose fit``, regenerated from the files ``fit`` saved.

Reads ``OUT/fit.json`` (route, mode, options), ``OUT/compare/{scores.csv, choice.json,
images.npz}`` (:mod:`lowdose.evaluation.fit_compare`) and ``OUT/train/metrics.csv``; writes
``OUT/report.html`` (self-contained), ``OUT/report.md`` and ``OUT/figures/*.png``. No clean image
exists here: every score is clean-free, and the report says which.

Any number of methods and any extra numeric columns of ``scores.csv`` are shown; the row of
``choice.json``'s ``preferred`` is highlighted and its ``reason`` printed, and where a clean-free
score column (``upsnr_db``, ``sure_psnr_db``) ranks another method first the report says so in
one line. For CT in HU every noise sd and image is in HU (``hu_divisor`` per image:
``HU = scaled * hu_divisor - 1024``); other data on the dataset scale, the unit named.
``choice.json``'s optional ``flat_region`` (``"body"``, ``"field of view"``) says where the
flat blocks of ``flat_sigma`` lay (:func:`lowdose.evaluation.fit_scores.flat_region`); without
it the report says "anywhere in the image". Panels: :mod:`lowdose.report.fit_panels`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_write_bytes, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.report.fit_panels import input_noise_sd, method_figure, panel_view, to_display
from lowdose.report.html import BulletList, Figure, Heading, Paragraph, Table, to_html, to_markdown

_TITLES = {
    "noisy": "noisy input",
    "network": "network",
    "network-tta": "network, test-time augmentation",
    "network-projections": "network on the projections, then FBP",
    "builtin": "built-in model (no training)",
    "nlm-blind": "NLM (blind, white rule)",
    "bm3d-blind": "BM3D (blind, white rule)",
    "bm3d-psd": "BM3D (noise spectrum)",
    "blend": "built-in model + spectrum BM3D, averaged",
}
_LABELS = {
    "residual_lag1": "residual lag-1 correlation",
    "upsnr_db": "uPSNR [dB]",
    "sure_psnr_db": "SURE PSNR [dB]",
    "pair_psnr_db": "pair PSNR [dB]",
    "edge_width_px": "edge width [px]",
}
#: clean-free estimates of the PSNR against the unknown clean image (higher is better)
SCORE_COLUMNS = ("upsnr_db", "sure_psnr_db")
_ABOUT = {
    "upsnr_db": "uPSNR: 10 log10(1 / uMSE), uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2)/2, an "
    "unbiased estimate of the error against the unknown clean image from the second scan.",
    "sure_psnr_db": "SURE PSNR: the PSNR of Stein's unbiased risk estimate of the error against "
    "the unknown clean image, from the one scan and its estimated noise.",
    "pair_psnr_db": "pair PSNR: 10 log10(1 / mean((f(y1) - y2)^2)), the output against the "
    "second realisation before its noise is subtracted; it ranks methods as uPSNR does and stays "
    "defined for halves of one scan, whose difference also holds their complementary streaks.",
    "edge_width_px": "edge width: the 10-90 % rise, in pixels, of the mean profile across the "
    "input's strongest edges (the same edges for every method); wider means blurrier.",
}

_REGIONS = {  # choice.json's "flat_region": where the comparison let flat blocks lie
    "body": "inside the body (> −500 HU after a 2 px blur; air never counts)",
    "field of view": "inside the field of view",
}


def write_fit_report(out: str | os.PathLike) -> Path:
    """Write ``OUT/report.html`` and ``OUT/report.md``; return the HTML path."""
    out = Path(out)
    try:
        record = json.loads((out / "fit.json").read_text())
        choice = json.loads((out / "compare" / "choice.json").read_text())
        with open(out / "compare" / "scores.csv", newline="") as handle:
            scores = list(csv.DictReader(handle))
        with np.load(out / "compare" / "images.npz") as saved:
            images = {name: saved[name] for name in saved.files}
    except FileNotFoundError as exc:
        raise LowdoseInputError(
            f"{exc.filename} not found: run `lowdose fit ... --out {out}` first"
        ) from None
    blocks = [Heading(1, "lowdose fit: your data, denoised without clean images")]
    plan = record["plan"]
    blocks += [
        Paragraph(
            f"Route **{plan['route']}**, training mode **{plan['mode']}**: {plan['reason']}."
        ),
        BulletList(
            [
                f"inputs: {', '.join(record['inputs'])}",
                f"dataset: {record['dataset']}",
                _model_line(record),
                f"denoised files: {len(record['denoised'])} in {out / 'denoised'}",
            ]
        ),
    ]
    blocks += _score_section(scores, choice)
    blocks += _figures(images, scores, choice)
    curve = _training_lines(out / "train" / "metrics.csv")
    if curve:
        blocks += [Heading(2, "Training"), BulletList(curve)]
    html = to_html(blocks, title="lowdose fit report")
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    written = {out / block.filename for block in blocks if isinstance(block, Figure)}
    for stale in set(figures.glob("fit_*.png")) - written:  # an earlier report's panels
        stale.unlink()
    for block in blocks:
        if isinstance(block, Figure):
            atomic_write_bytes(out / block.filename, block.png)
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def title(method: str) -> str:
    """The display name of a method (its own name when unknown)."""
    return _TITLES.get(method, method)


def _to_hu(choice: dict) -> float | None:
    """Factor from an sd on the dataset scale to HU (CT in HU), else None."""
    divisor = choice.get("hu_divisor")
    # HU = scaled * divisor - 1024, so an sd on the dataset scale times the divisor is in HU
    return float(np.mean(divisor)) if divisor is not None else None


def _score_table(scores: list[dict], choice: dict) -> tuple[list[str], dict[str, list[str]]]:
    """Header and formatted cells per method: the columns of ``scores.csv`` that hold a value."""
    to_hu = _to_hu(choice)
    columns = [
        c
        for c in scores[0]
        if c != "method"
        and (
            c in ("flat_sigma", "residual_lag1")
            or any(math.isfinite(_number(row.get(c))) for row in scores)
        )
    ]
    header = [_LABELS.get(c, c) for c in columns]
    header[columns.index("flat_sigma")] = (
        f"flat-region noise sd [{'HU' if to_hu else 'dataset scale'}]"
    )
    cells = {
        row["method"]: [_cell(c, _number(row.get(c)), to_hu) for c in columns] for row in scores
    }
    return header, cells


def _score_section(scores: list[dict], choice: dict) -> list:
    to_hu = _to_hu(choice)
    unit = "HU" if to_hu else "dataset scale"
    header, cells = _score_table(scores, choice)
    preferred = choice["preferred"]
    mark = {preferred: " (lowdose's choice)"}
    rows = [
        [title(row["method"]) + mark.get(row["method"], ""), *cells[row["method"]]]
        for row in scores
    ]
    chosen = tuple(k for k, row in enumerate(scores) if row["method"] == preferred)
    sigma = np.asarray(choice["sigma"], dtype=float) * (to_hu or 1.0)
    region = _REGIONS.get(choice.get("flat_region"), "anywhere in the image")
    text = (
        f"Scored on {_scored_on(choice)} "
        f"(objects {', '.join(sorted(set(choice['object_id'])))}), realisation 0 "
        f"as input. Noise sd {'in HU' if to_hu else 'on the dataset scale'}"
        + (
            f" (HU = value on the dataset scale x {to_hu:.0f} − 1024); PSNRs in dB with peak 1 "
            f"on the dataset scale = {to_hu:.0f} HU. "
            if to_hu
            else ", PSNRs in dB with peak 1 on that scale. "
        )
        + f"Flat-region sd: the noise left in the flattest 10 % of 16x16 blocks of the input "
        f"{region}, never at a clip floor or ceiling, plane removed per block. Residual lag-1: "
        "correlation of the removed part y - f(y) with itself one pixel away (near 0: only "
        "noise removed; clearly positive: structure removed too)." + _lag1_reference(choice)
    )
    about = [text for column, text in _ABOUT.items() if _LABELS[column] in header]
    filters = (
        f"The filters are blind: noise sd {np.mean(sigma):.4g} {unit} (mean over images) estimated "
        f"from the {'pair' if choice['sigma_source'] == 'pair' else 'single image (Immerkaer)'}"
        ", NLM with h = 0.8 sd, patch 5, distance 6; BM3D (white rule) with sigma_psd = sd."
    )
    if "psd_source" in choice:  # a comparison without the spectrum row has none
        filters += f" BM3D (noise spectrum), {choice['psd_source']}."
    verdict = [
        Paragraph(
            f"**lowdose would use: {title(preferred)}** — {_sd_in_hu(choice['reason'], to_hu)}."
        )
    ]
    verdict += [Paragraph(line) for line in disagreements(scores, preferred)]
    return [
        Heading(2, "Clean-free scores"),
        Paragraph(text + "".join(f" {line}" for line in about)),
        Table(
            ["method", *header], rows, numeric=tuple(range(1, len(header) + 1)), highlight=chosen
        ),
        Paragraph(filters),
        *verdict,
    ]


def disagreements(scores: list[dict], preferred: str) -> list[str]:
    """One line per clean-free score column of ``scores`` that ranks another method first.

    Parameters
    ----------
    scores : list of dict
        The rows of ``scores.csv`` (strings), one per method.
    preferred : str
        ``choice.json``'s ``preferred``.

    Examples
    --------
    >>> rows = [{"method": "a", "upsnr_db": "30.0"}, {"method": "b", "upsnr_db": "31.0"}]
    >>> disagreements(rows, "a")[0].startswith("**By uPSNR b ranks first**")
    True
    >>> disagreements(rows, "b")
    []
    """
    if not any(row["method"] == preferred for row in scores):
        return [f"**{preferred} is not in the table**: the comparison did not score it."]
    lines = []
    for column in SCORE_COLUMNS:
        values = {
            row["method"]: _number(row.get(column)) for row in scores if row["method"] != "noisy"
        }
        values = {method: value for method, value in values.items() if math.isfinite(value)}
        if not values or (len(values) == 1 and preferred in values):
            continue
        label = _LABELS[column].removesuffix(" [dB]")
        if preferred not in values:
            lines.append(
                f"**{title(preferred)} has no {label}**, so that column cannot confirm "
                "the choice; the rule above decided it."
            )
            continue
        best = max(values, key=values.__getitem__)
        margin = values[best] - values[preferred]
        if margin > 0.005:  # the table shows 2 decimals: a tie there is no disagreement
            lines.append(
                f"**By {label} {title(best)} ranks first** ({values[best]:.2f} dB, "
                f"{margin:.2f} dB above {title(preferred)}); the choice follows the rule "
                "stated above, not this column."
            )
    return lines


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _cell(column: str, value: float, to_hu: float | None) -> str:
    if not math.isfinite(value):
        return "—"
    if column == "flat_sigma":
        return f"{value * to_hu:.1f}" if to_hu else f"{value:.4g}"
    if column == "residual_lag1":
        return f"{value:+.3f}"
    return f"{value:.2f}" if column.endswith("_db") else f"{value:.4g}"


def _sd_in_hu(reason: str, to_hu: float | None) -> str:
    """``reason`` with its ``sd <number>`` (dataset scale) restated in HU for CT in HU."""
    if not to_hu:
        return reason
    number = r"\bsd (\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?![\d.]| ?HU)"
    return re.sub(number, lambda m: f"sd {float(m.group(1)) * to_hu:.1f} HU", reason)


def _figures(images: dict[str, np.ndarray], scores: list[dict], choice: dict) -> list:
    preferred = choice["preferred"]
    listed = ["noisy", preferred, *(row["method"] for row in scores), *images]
    order = [name for name in dict.fromkeys(listed) if name in images]
    divisor = choice.get("hu_divisor")
    first_divisor = None if divisor is None else float(divisor[0])
    view = panel_view(
        images, preferred, sigma=input_noise_sd(scores, choice), hu_divisor=first_divisor
    )
    header, cells = _score_table(scores, choice)
    r0, c0, size = view.box
    blocks = [
        Heading(2, "Images"),
        Paragraph(
            f"Test image 1 of {images['noisy'].shape[0]} (object {choice['object_id'][0]}), "
            f"every method at full width in the window {view.window[0]:.4g}..{view.window[1]:.4g}"
            f" {view.unit}. Right: what the method removed (input − output) in ±"
            f"{view.residual_limit:.3g} {view.unit} (3 x the input's flat-region noise sd): "
            "noise only looks like grain without edges; edges of anatomy there were removed "
            "from the image. "
            f"Insets: the {size}x{size} px square at row {r0}, column {c0} (orange; the most "
            "structured in the body), magnified."
        ),
    ]
    for name in order:
        output = None if name == "noisy" else to_display(images[name][0], first_divisor)
        label = title(name) + (" (lowdose's choice)" if name == preferred else "")
        note = "\n".join(f"{h}: {c}" for h, c in zip(header, cells.get(name, []), strict=False))
        png = method_figure(view, output, label, note=note)
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        blocks.append(Figure(png, f"figures/fit_{safe}.png", f"{label}."))
    return blocks


def _training_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("epoch")]
    if not rows:
        return []
    last = rows[-1]
    scores = {k: v for k, v in last.items() if k.startswith("val_") and v not in ("", "nan")}
    text = ", ".join(f"{k} {float(v):.2f}" for k, v in scores.items())
    return [
        f"{len(rows)} logged rows, last step {last.get('step')}, "
        f"{float(last.get('elapsed_s') or 0):.0f} s; last validation: {text or 'none'}"
    ]


def _model_line(record: dict) -> str:
    """Which model denoised: the fit's own training run, or the built-in model (no training)."""
    if record.get("run_dir") is None:
        return f"model: {record.get('checkpoint')} (built-in, no training on these images)"
    budget = record["options"]["budget"]
    return f"training run: {record['run_dir']} (budget {budget}, selection clean-free)"


def _scored_on(choice: dict) -> str:
    """Which images the table scores (``scored_on``; the test split when the file does not say)."""
    count = len(choice["object_id"])
    if choice.get("scored_on", "test split") == "test split":
        return f"{count} test image(s) the network never trained or validated on"
    return f"{count} image(s) evenly spaced over the input, {choice['scored_on']}"


def _lag1_reference(choice: dict) -> str:
    """For correlated input noise, what a residual of noise alone reads (not 0)."""
    lag1 = choice.get("noise_lag1")
    if lag1 is None:
        return ""
    return (
        f" The input noise itself has a lag-1 correlation of {lag1:+.2f} (measured on the "
        "single image when the dataset was built): a residual of noise alone reads about "
        "that, and more than that means structure was removed too."
    )
