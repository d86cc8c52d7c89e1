"""The report's "Image quality" section, from the files ``lowdose iq`` wrote (never torch).

Reads ``FOLDER/iq.csv``, ``iq_nps.csv``, ``iq_ttf.csv`` and ``iq.json``
(:mod:`lowdose.evaluation.phantom_iq`) and makes: NPS curves per method (the noisy FBP as the
reference), TTF curves for three rods, a table per method of noise, HU bias, CNR, f50 and d'
(:func:`iq_summary`), d' per disc contrast, and a paragraph of conventions. An experiment folder
with ``iq/iq.csv`` gets the section in ``lowdose report``; ``lowdose iq`` writes it alone
(:func:`write_iq_report`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_write_bytes, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.report.html import Figure, Heading, Paragraph, Table, to_html, to_markdown
from lowdose.report.iq_figures import nps_figure, ttf_figure
from lowdose.report.sections import fmt_number, safe_name

SUMMARY_TTF_HU = (-35.0, 340.0)
"""Rods whose f50 the summary shows: the low-contrast one the d' use, and a bone-like one."""
TTF_FIGURE_HU = (-35.0, 340.0, 990.0)
_REQUIRED = (
    "method",
    "module",
    "insert",
    "nominal_hu",
    "sigma_hu",
    "hu_bias",
    "cnr",
    "f50",
    "nps_peak",
    "nps_mean",
    "dprime_npw",
    "dprime_npwe",
)


@dataclass(frozen=True, eq=False)
class IqResults:
    """The saved tables of one ``lowdose iq`` run (pandas frames; ``nps``/``ttf`` may be None)."""

    folder: Path
    iq: object
    nps: object
    ttf: object
    conventions: dict


def read_iq_results(folder: str | os.PathLike) -> IqResults | None:
    """The tables in ``folder``, or None when it has no ``iq.csv``; malformed files raise."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / "iq.csv").is_file():
        return None
    iq = pd.read_csv(folder / "iq.csv")
    missing = [c for c in _REQUIRED if c not in iq.columns]
    if missing:
        raise LowdoseInputError(
            f"{folder / 'iq.csv'}: missing column(s) {', '.join(missing)}; rerun `lowdose iq`"
        )
    tables = [
        pd.read_csv(folder / n) if (folder / n).is_file() else None
        for n in ("iq_nps.csv", "iq_ttf.csv")
    ]
    conventions = {}
    if (folder / "iq.json").is_file():
        try:
            conventions = json.loads((folder / "iq.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LowdoseInputError(
                f"{folder / 'iq.json'}: not valid JSON ({exc}); rerun `lowdose iq`"
            ) from None
    return IqResults(folder, iq, tables[0], tables[1], conventions)


def _methods(frame) -> list[str]:
    """Methods in the order the table lists them (``noisy`` first, as measured)."""
    return list(dict.fromkeys(frame["method"].tolist()))


def _mean(values) -> float:
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def iq_summary(iq) -> list[dict]:
    """One dict per method: ``method, model, selection``, ``sigma_hu`` (uniform module, all NPS
    ROIs), ``nps_mean``, ``nps_peak`` (cycles/mm), ``mean_abs_bias_hu`` (sensitometry rods),
    ``cnr_m35`` (the -35 HU rod), ``f50_m35``, ``f50_p340`` (cycles/mm), and ``dprime_npw``,
    ``dprime_npwe`` (mean over the low-contrast discs)."""
    rows = []
    for method in _methods(iq):
        mine = iq[iq["method"] == method]
        sens = mine[mine["module"] == "sensitometry"]
        pooled = mine[(mine["module"] == "uniform") & (mine["insert"] == "nps")]
        discs = mine[mine["module"] == "low_contrast"]

        def rod(hu: float, column: str, sens=sens) -> float:
            return _mean(sens.loc[np.isclose(sens["nominal_hu"], hu), column])

        first = mine.iloc[0]
        rows.append(
            {
                "method": method,
                "model": _text(first.get("model")),
                "selection": _text(first.get("selection")),
                "sigma_hu": _mean(pooled["sigma_hu"]),
                "nps_mean": _mean(pooled["nps_mean"]),
                "nps_peak": _mean(pooled["nps_peak"]),
                "mean_abs_bias_hu": _mean(np.abs(sens["hu_bias"])),
                "cnr_m35": rod(SUMMARY_TTF_HU[0], "cnr"),
                "f50_m35": rod(SUMMARY_TTF_HU[0], "f50"),
                "f50_p340": rod(SUMMARY_TTF_HU[1], "f50"),
                "dprime_npw": _mean(discs["dprime_npw"]),
                "dprime_npwe": _mean(discs["dprime_npwe"]),
            }
        )
    return rows


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _summary_table(iq) -> Table:
    headers = [
        "Method",
        "σ uniform [HU]",
        "NPS mean f [1/mm]",
        "NPS peak f [1/mm]",
        "mean |HU bias| [HU]",
        "CNR −35 HU",
        "f50 −35 HU [1/mm]",
        "f50 +340 HU [1/mm]",
        "d′ NPW",
        "d′ NPWE",
    ]
    rows = []
    for r in iq_summary(iq):
        # the selection unless the method's name says it already ("nlm-blind · blind")
        extra = [p for p in (r["model"], r["selection"]) if p and p not in (r["method"], "none")]
        label = " · ".join([r["method"], *(p for p in extra if p not in r["method"])])
        rows.append(
            [
                label,
                fmt_number(r["sigma_hu"]),
                fmt_number(r["nps_mean"], 3),
                fmt_number(r["nps_peak"], 3),
                fmt_number(r["mean_abs_bias_hu"]),
                fmt_number(r["cnr_m35"]),
                fmt_number(r["f50_m35"], 3),
                fmt_number(r["f50_p340"], 3),
                fmt_number(r["dprime_npw"]),
                fmt_number(r["dprime_npwe"]),
            ]
        )
    caption = (
        "σ: ensemble noise sd in the uniform module's NPS ROIs; HU bias: sensitometry rods "
        "against the noise-free FBP; f50: TTF at 50 %; d′: mean over the low-contrast "
        "discs (all diameters and contrasts)."
    )
    return Table(headers, rows, caption=caption, numeric=tuple(range(1, 10)))


def _dprime_table(iq) -> Table | None:
    discs = iq[iq["module"] == "low_contrast"]
    contrasts = sorted({float(v) for v in discs["nominal_hu"].dropna()})
    if not contrasts:
        return None
    rows = []
    for method in _methods(discs):
        mine = discs[discs["method"] == method]
        cells = [method]
        for hu in contrasts:
            at = mine[np.isclose(mine["nominal_hu"], hu)]
            npw, npwe = _mean(at["dprime_npw"]), _mean(at["dprime_npwe"])
            cells.append(f"{fmt_number(npw)} / {fmt_number(npwe)}")
        rows.append(cells)
    headers = ["Method"] + [f"{hu:+g} HU" for hu in contrasts]
    caption = "d′ NPW / NPWE of the low-contrast discs, mean over the disc diameters per contrast."
    return Table(headers, rows, caption=caption, numeric=tuple(range(1, len(headers))))


def _nps_block(nps, prefix: str) -> Figure | None:
    if nps is None or len(nps) == 0:
        return None
    curves = {
        m: (g["frequency_per_mm"].to_numpy(float), g["nps_hu2mm2"].to_numpy(float))
        for m, g in ((m, nps[nps["method"] == m]) for m in _methods(nps))
    }
    caption = (
        "Radial noise power spectrum of the uniform module per method (noisy FBP dashed: "
        "the reference); (b) divides each by its area, so a shift to the left is a "
        "blotchier texture at any noise level."
    )
    return Figure(nps_figure(curves), f"figures/{prefix}iq-nps.png", caption)


def _ttf_block(ttf, pixel_mm: float, prefix: str) -> Figure | None:
    if ttf is None or len(ttf) == 0 or not np.isfinite(pixel_mm):
        return None
    panels = {}
    for hu in TTF_FIGURE_HU:
        at = ttf[np.isclose(ttf["nominal_hu"], hu)]
        if len(at):
            title = f"{at['insert'].iloc[0]} ({hu:+g} HU)"
            panels[title] = {
                m: (g["frequency_per_mm"].to_numpy(float), g["ttf"].to_numpy(float))
                for m in _methods(at)
                for g in [at[at["method"] == m]]
            }
    if not panels:
        return None
    png = ttf_figure(panels, nyquist_per_mm=0.5 / pixel_mm)
    caption = (
        "Task transfer function per method (circular edge on the ensemble mean, TG-233) "
        "for rods of low, bone-like and high contrast, up to the Nyquist frequency; the "
        "dotted line marks 50 % (f50)."
    )
    return Figure(png, f"figures/{prefix}iq-ttf.png", caption)


def conventions_text(conventions: dict) -> str:
    """One paragraph saying how the numbers were measured (from ``iq.json``)."""
    data = conventions.get("dataset_attrs", {}) if conventions else {}
    rois = conventions.get("nps_rois", {}) if conventions else {}
    dprime = conventions.get("dprime", {}) if conventions else {}
    eye = dprime.get("eye_filter", {})
    value = data.get("noise_level")
    value = f"{value:g}" if isinstance(value, int | float) else "?"
    level = f"{data.get('noise_level_name', 'noise level')} {value}"
    return (
        f"Digital QA phantom: {conventions.get('n_realisations', '?')} independent noisy FBP "
        f"realisations of {conventions.get('size_px', '?')} px "
        f"({fmt_number(conventions.get('pixel_mm', float('nan')), 3)} mm pixels) at {level}. "
        "All values in HU, across realisations: σ is the ensemble noise sd (pixel by pixel "
        "across realisations) in an ROI (inserts: 0.6 × the radius); HU bias is the ensemble "
        "mean against the noise-free FBP (the only use of a clean image); CNR against a water "
        "annulus around the insert. TTF by the "
        "circular-edge method on each method's ensemble mean (AAPM TG-233). NPS (ICRU 87) from "
        f"{len(rois.get('names', []))} ROIs of {rois.get('side_px', '?')} px in the uniform "
        "module (output − ensemble mean, plane-detrended). d′ of each low-contrast disc at its "
        f"nominal contrast with the method's TTF of the {dprime.get('ttf_insert', '?')} rod "
        f"({fmt_number(dprime.get('ttf_nominal_hu', float('nan')), 0, signed=True)} HU) and "
        f"its uniform-module NPS; NPWE eye filter n = {eye.get('n', '?')}, peak "
        f"{eye.get('peak_cycles_per_degree', '?')} cycles/degree, viewing distance "
        f"{eye.get('viewing_distance_mm', '?')} mm, display pixel "
        f"{eye.get('display_pixel_mm', '?')} mm. Blind filters take σ from realisations 0 "
        "and 1 only."
    )


def image_quality_blocks(folder: str | os.PathLike, *, level: int = 3, name: str = "") -> list:
    """The "Image quality" section of ``folder`` (a ``lowdose iq`` output); [] without iq.csv.

    Parameters
    ----------
    folder : path
        Holds ``iq.csv`` (+ ``iq_nps.csv``, ``iq_ttf.csv``, ``iq.json``).
    level : int
        Heading level of the section (3 inside an experiment, 2 in the standalone report).
    name : str
        Prefix of the figure files (the experiment's name), so that experiments do not share them.
    """
    results = read_iq_results(folder)
    return [] if results is None else _section(results, level, name)


def _section(results: IqResults, level: int, name: str) -> list:
    iq = results.iq
    prefix = f"{safe_name(name)}-" if name else ""
    pixel_mm = float(results.conventions.get("pixel_mm") or _mean(iq.get("pixel_mm", [])))
    blocks: list = [Heading(level, "Image quality"), _summary_table(iq)]
    dprime = _dprime_table(iq)
    figures = [_nps_block(results.nps, prefix), _ttf_block(results.ttf, pixel_mm, prefix)]
    blocks += [b for b in (dprime, *figures) if b is not None]
    blocks.append(Paragraph(conventions_text(results.conventions), css_class="note"))
    return blocks


def write_iq_report(out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/report.html`` (self-contained), ``report.md`` and ``figures/*.png`` from
    the ``lowdose iq`` tables in ``out_dir``; returns the HTML path."""
    out = Path(out_dir)
    results = read_iq_results(out)
    if results is None:
        raise LowdoseInputError(f"{out / 'iq.csv'} not found: run `lowdose iq ... --out {out}`")
    data = results.conventions.get("data", "")
    title = "lowdose iq: image quality on the digital QA phantom"
    intro = Paragraph(f"Measured from `{data}`; regenerate with `lowdose iq`.", css_class="note")
    blocks = [Heading(1, title), intro, *_section(results, 2, "")]
    for block in blocks:
        if isinstance(block, Figure):
            atomic_write_bytes(out / block.filename, block.png)
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, title=title))
    return out / "report.html"
