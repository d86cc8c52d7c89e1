"""What an evaluation writes: ``results.csv``/``.parquet``, ``summary.md`` and ``panels.npz``.

``panels.npz`` holds a few evenly spaced test images for the report's figures: ``clean`` (left
out when the file has no clean images), ``noisy``, ``index`` (row in the file), ``psnr`` (of the
noisy input; NaN without clean), ``scale`` (each image's divisor, for display in HU) and one
(K, H, W) float32 array per method name.

``results.parquet`` needs pyarrow, the ``parquet`` extra (:mod:`lowdose.core.extras`); without it
only ``results.csv`` is written (it holds the same table, and the report reads it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_path, atomic_write_text
from lowdose.core.extras import extra_installed
from lowdose.core.metrics import psnr
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.paired import paired_table
from lowdose.data.results import SummaryRow, summarize
from lowdose.evaluation.methods import MethodOutput
from lowdose.evaluation.testset import TestSet

N_PANEL_IMAGES = 4


class Panels:
    """Collects ``panels.npz``: the chosen test images and one output stack per method name."""

    def __init__(self, test: TestSet) -> None:
        self.keep = np.unique(
            np.linspace(0, len(test.inputs) - 1, N_PANEL_IMAGES).round().astype(int)
        )
        noisy = test.inputs[self.keep]
        self.arrays: dict[str, np.ndarray] = {"noisy": noisy, "index": test.index[self.keep]}
        if test.clean is not None:
            clean = test.clean[self.keep]
            self.arrays["clean"] = clean
            self.arrays["psnr"] = np.atleast_1d(psnr(clean, noisy, data_range=test.data_range))
        else:
            self.arrays["psnr"] = np.full(len(self.keep), math.nan)
        self.arrays["scale"] = test.scale[self.keep]
        self._methods: set[str] = set()

    def add(self, method: MethodOutput) -> None:
        """Keep ``method``'s outputs; for a filter the oracle ones (the paper's), else the first."""
        if method.method == "noisy":
            return
        if method.tuning == "oracle" or method.method not in self._methods:
            self.arrays[method.method] = method.outputs[self.keep].astype(np.float32)
            self._methods.add(method.method)


def write_outputs(
    results, panels: Panels, attrs: DatasetAttrs, out_dir: Path, *, clean_read: bool = True
) -> None:
    """Write the four files into ``out_dir`` (created), each atomically.

    ``clean_read`` False says in ``summary.md`` that no clean image was read. Without the
    ``parquet`` extra ``results.parquet`` is left out (``results.csv`` holds the same table).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    if extra_installed("parquet"):
        with atomic_path(out_dir / "results.parquet") as tmp:
            results.to_parquet(tmp, index=False)
    atomic_write_text(
        out_dir / "summary.md", summary_markdown(results, attrs, clean_read=clean_read)
    )
    with atomic_path(out_dir / "panels.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **panels.arrays)


def _num(value: float, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; ``n/a`` for NaN."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _interval(low: float, high: float) -> str:
    return "n/a (one object)" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def summary_markdown(results, attrs: DatasetAttrs, *, clean_read: bool = True) -> str:
    """``summary.md``: the paper-form table with SSIM, uPSNR, 95 % CIs, paired differences to
    the noisy input and the metric conventions.

    The numbers are :func:`lowdose.data.results.summarize`'s and
    :func:`lowdose.data.paired.paired_table`'s (means over finite values).
    """
    rows = summarize(results)
    first = results.iloc[0]
    noisy_row = next((r for r in rows if r["label"] == "noisy"), rows[0])
    lines = [
        f"# Evaluation: {first['dataset']}",
        "",
        f"Dataset `{first['dataset']}` (split-table sha256 `{first['dataset_sha256'][:16]}`), "
        f"modality {attrs.modality}, noise {attrs.noise_model} at level "
        f"{first['noise_level']:g}; {results['image_index'].nunique()} test images of "
        f"{noisy_row['n_objects']} objects, input PSNR {_num(noisy_row['psnr_db'])} dB, "
        f"input uPSNR {_num(noisy_row['upsnr_db'])} dB.",
        "",
    ]
    if clean_read:
        lines += [
            f"PSNR and SSIM against the clean images on the dataset's scale (scaling rule "
            f"`{first['scaling_rule']}`, data_range {first['data_range']:g}), unclipped "
            "outputs; SSIM with a 7x7 uniform window; 95 % CI: Student-t half-width over "
            "images. *oracle*: best setting per image against its clean image (the paper's "
            "protocol; flatters the filters).",
            "",
        ]
    lines += [
        "uPSNR (clean-free, every method): uMSE = mean((f(y1) - y2)^2) - Var(y1 - y2)/2 per "
        "image, y1 the input and y2 the image's second realisation; uMSE averaged over images, "
        f"then 10 log10(data_range^2 / uMSE) with data_range {first['data_range']:g}. 95 % CI: "
        "cluster bootstrap over objects (2000 draws, percentile). *blind*: one setting chosen "
        "on the training split's two noisy realisations; *blind-clean*: against its clean "
        "images; *blind-sigma*: no search, strength from each test scan's estimated noise sd. "
        + (
            "Beside PSNR, uPSNR checks the estimator."
            if clean_read
            else "No clean image was read: PSNR, SSIM and oracle tuning are unavailable."
        ),
        "",
        *_main_table(rows, clean_read),
        *_seeds_note(rows),
        *_paired_section(results, "psnr_db" if clean_read else "upsnr_db"),
    ]
    if any(math.isfinite(r["psnr_hu_window_db"]) for r in rows):
        lines += [
            f"HU windows: {first['hu_window']} HU (PSNR and Wang SSIM) and soft tissue "
            "-160..240 HU (PSNR): both images clipped to the window, data_range its width; "
            "Wang SSIM: 11x11 Gaussian window, sigma 1.5 (Wang et al. 2004).",
            "",
        ]
    noisy = results[results["method"] == "noisy"]
    true = f"{noisy['noise_var_true'].mean():.4g}" if clean_read else "n/a (no clean)"
    lines += [
        "Noise variance per image (mean): estimate Var(y1 - y2)/2 = "
        f"{noisy['noise_var_estimate'].mean():.4g}, true Var(y1 - clean) = {true}.",
        "",
    ]
    return "\n".join(lines)


def _main_table(rows: list[SummaryRow], clean_read: bool) -> list[str]:
    """The per-method table: PSNR/SSIM (with clean), uPSNR, and the HU columns for CT in HU."""
    has_hu = any(math.isfinite(r["psnr_hu_window_db"]) for r in rows)
    header = "| Method | objects |"
    if clean_read:
        header += " n | PSNR (dB) | 95 % CI | SSIM | 95 % CI |"
    header += " uPSNR (dB) | 95 % CI |"
    if has_hu:
        header += " PSNR HU window (dB) | PSNR soft tissue (dB) | SSIM Wang (HU window) |"
    lines = [header, "|---|" + "---:|" * (header.count("|") - 2)]
    for r in rows:
        cells = [r["label"], str(r["n_objects"])]
        if clean_read:
            cells += [str(r["n"]), _num(r["psnr_db"]), f"±{_num(r['psnr_ci95_db'])}"]
            cells += [_num(r["ssim"], 4), f"±{_num(r['ssim_ci95'], 4)}"]
        cells += [_num(r["upsnr_db"]), _interval(r["upsnr_ci95_low_db"], r["upsnr_ci95_high_db"])]
        if has_hu:
            cells += [_num(r["psnr_hu_window_db"]), _num(r["psnr_hu_soft_db"])]
            cells += [_num(r["ssim_wang_hu_window"], 4)]
        lines.append("| " + " | ".join(cells) + " |")
    note = "n: images with a finite PSNR. " if clean_read else ""
    return [*lines, "", f"{note}objects: distinct object ids (patients, phantoms).", ""]


def _seeds_note(rows: list[SummaryRow]) -> list[str]:
    """One line per network trained with several seeds: mean ± sd over seeds."""
    notes = [
        f"- {r['label']}: {r['n_seeds']} seeds, PSNR {_num(r['psnr_db'])} ± "
        f"{_num(r['psnr_sd_seeds_db'])} dB (mean ± sd over seeds of each seed's mean)"
        for r in rows
        if r["n_seeds"] > 1
    ]
    if not notes:
        return []
    return [
        "Seeds (each image first averaged over seeds; the CIs above are over images):",
        *notes,
        "",
    ]


def _paired_section(results, metric: str) -> list[str]:
    """Each method minus the noisy input, paired per image, cluster-bootstrap 95 % CI."""
    if not (results["method"] == "noisy").any():
        return []
    differences = paired_table(results, "noisy", metric=metric)
    if not differences:
        return []
    name = "PSNR" if metric == "psnr_db" else "uPSNR"
    lines = [
        f"## Paired: method - noisy ({name})",
        "",
        f"Per image {name}(method) - {name}(noisy), averaged over seeds first; 95 % CI: "
        "cluster bootstrap over objects (percentile; n/a with one object). With fewer than 5 "
        "objects the bootstrap has few distinct resamples: its interval shows how those objects "
        "differ and understates the uncertainty for new ones.",
        "",
        "| Method | difference (dB) | 95 % CI | images | objects |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in differences:
        lines.append(
            f"| {d.method} | {_num(d.mean_db)} | {_interval(d.ci_low_db, d.ci_high_db)} | "
            f"{d.n_images} | {d.n_objects} |"
        )
    return [*lines, ""]
