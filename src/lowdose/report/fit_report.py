"""``OUT/report.html`` of ``lowdose fit``, regenerated from the files ``fit`` saved.

Reads ``OUT/fit.json`` (route, mode, options), ``OUT/compare/{scores.csv, choice.json,
images.npz}`` (:mod:`lowdose.evaluation.fit_compare`) and ``OUT/train/metrics.csv``; writes
``OUT/report.html`` (self-contained), ``OUT/report.md`` and ``OUT/figures/*.png``. No clean image
exists here: every score is clean-free, and the report says which.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_write_bytes, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import HU_SOFT_TISSUE_WINDOW
from lowdose.data.scaling import scaled_to_hu
from lowdose.report.figures import choose_zoom_box, panel_figure
from lowdose.report.html import BulletList, Figure, Heading, Paragraph, Table, to_html, to_markdown

_TITLES = {
    "noisy": "noisy input",
    "network": "network",
    "nlm-blind": "NLM (blind, white rule)",
    "bm3d-blind": "BM3D (blind, white rule)",
    "bm3d-psd": "BM3D (noise spectrum)",
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
        BulletList([f"inputs: {', '.join(record['inputs'])}",
                    f"dataset: {record['dataset']}", f"training run: {record['run_dir']} "
                    f"(budget {record['options']['budget']}, selection clean-free)",
                    f"denoised files: {len(record['denoised'])} in {out / 'denoised'}"]),
    ]  # fmt: skip
    blocks += _score_section(scores, choice)
    blocks += _figures(images, choice)
    curve = _training_lines(out / "train" / "metrics.csv")
    if curve:
        blocks += [Heading(2, "Training"), BulletList(curve)]
    html = to_html(blocks, title="lowdose fit report")
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    for block in blocks:
        if isinstance(block, Figure):
            atomic_write_bytes(out / block.filename, block.png)
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def _score_section(scores: list[dict], choice: dict) -> list:
    has_pairs = any(math.isfinite(float(row["upsnr_db"])) for row in scores)
    divisor = choice.get("hu_divisor")
    # HU = scaled * divisor - 1024, so an sd on the dataset scale times the divisor is in HU
    to_hu = float(np.mean(divisor)) if divisor is not None else None
    header = ["method", "flat-region noise sd" + (" [HU]" if to_hu else ""),
              "residual lag-1 correlation"]  # fmt: skip
    header += ["uPSNR [dB]"] if has_pairs else []
    rows = []
    for row in scores:
        lag, sd = float(row["residual_lag1"]), float(row["flat_sigma"])
        cells = [_TITLES.get(row["method"], row["method"]),
                 f"{sd * to_hu:.1f}" if to_hu else f"{sd:.4g}",
                 "—" if not math.isfinite(lag) else f"{lag:+.3f}"]  # fmt: skip
        if has_pairs:
            cells.append(f"{float(row['upsnr_db']):.2f}")
        rows.append(cells)
    n_images = len(choice["object_id"])
    sigma = np.asarray(choice["sigma"], dtype=float)
    text = (
        f"Scored on {n_images} test image(s) the network never trained or validated on "
        f"(objects {', '.join(sorted(set(choice['object_id'])))}), realisation 0 as input, values "
        "on the dataset scale (data_range 1). Flat-region sd: the noise left in the flattest "
        "10 % of 16x16 blocks of the input (plane removed per block). Residual lag-1: "
        "correlation of the removed part y - f(y) with itself one pixel away (near 0: only "
        "noise removed; clearly positive: structure removed too)."
    )
    if has_pairs:
        text += (" uPSNR: 10 log10(1 / uMSE), uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2)/2, an "
                 "unbiased estimate of the error against the unknown clean image.")  # fmt: skip
    filters = (
        f"The filters are blind: noise sd {np.mean(sigma):.4g} (mean over images) estimated "
        f"from the {'pair' if choice['sigma_source'] == 'pair' else 'single image (Immerkaer)'}"
        ", NLM with h = 0.8 sd, patch 5, distance 6; BM3D (white rule) with sigma_psd = sd."
    )
    if "psd_source" in choice:  # comparisons saved before the spectrum row have none
        filters += f" BM3D (noise spectrum), {choice['psd_source']}."
    return [
        Heading(2, "Clean-free scores"),
        Paragraph(text),
        Table(header, rows),
        Paragraph(filters),
        Paragraph(f"**lowdose would use: {_TITLES.get(choice['preferred'], choice['preferred'])}**"
                  f" — {choice['reason']}."),
    ]  # fmt: skip


def _figures(images: dict[str, np.ndarray], choice: dict) -> list:
    names = [name for name in _TITLES if name in images]
    n_rows = min(2, images["noisy"].shape[0])
    divisor = choice.get("hu_divisor")
    if divisor is not None:  # CT in HU: show HU in the soft-tissue window
        factor = np.asarray(divisor, np.float64)[:, None, None]  # (I, 1, 1)
        images = {name: scaled_to_hu(array, factor) for name, array in images.items()}
        (vmin, vmax), unit = HU_SOFT_TISSUE_WINDOW, "HU"
    else:
        reference = images.get("network", images["noisy"])[:n_rows]
        (vmin, vmax), unit = (float(v) for v in np.percentile(reference, [1, 99])), "dataset scale"
    rows = [[(_TITLES[n], images[n][k]) for n in names] for k in range(n_rows)]
    boxes = [choose_zoom_box(images.get("network", images["noisy"])[k]) for k in range(n_rows)]
    panels = panel_figure(rows, vmin=vmin, vmax=vmax, zoom_boxes=boxes)
    residuals = [(f"{_TITLES[n]}: y - f(y)", images["noisy"][0] - images[n][0])
                 for n in names if n != "noisy"]  # fmt: skip
    limit = float(np.percentile(np.abs(residuals[0][1]), 99)) or 1.0
    residual_png = panel_figure([residuals], vmin=-limit, vmax=limit, zoom_boxes=boxes[:1])
    return [
        Heading(2, "Images"),
        Figure(panels, "figures/fit_panels.png", "Test images: the noisy input and every method's "
               f"output (window {vmin:.4g}..{vmax:.4g}, {unit}), zoomed inset."),
        Figure(residual_png, "figures/fit_residuals.png", "What each method removed (y - f(y)) "
               "from the first image: noise only should look like texture-free grain."),
    ]  # fmt: skip


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
