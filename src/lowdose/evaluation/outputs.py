"""What an evaluation writes: ``results.csv``/``.parquet``, ``summary.md`` and ``panels.npz``.

``panels.npz`` holds a few evenly spaced test images for the report's figures: ``clean``,
``noisy``, ``index`` (row in the file), ``psnr`` (of the noisy input), ``scale`` (each image's
divisor, for display in HU) and one (K, H, W) float32 array per method name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_path, atomic_write_text
from lowdose.core.metrics import psnr
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.results import summarize
from lowdose.evaluation.methods import MethodOutput
from lowdose.evaluation.testset import TestSet

N_PANEL_IMAGES = 4


class Panels:
    """Collects ``panels.npz``: the chosen test images and one output stack per method name."""

    def __init__(self, test: TestSet) -> None:
        self.keep = np.unique(
            np.linspace(0, len(test.inputs) - 1, N_PANEL_IMAGES).round().astype(int)
        )
        self.arrays: dict[str, np.ndarray] = {
            "clean": test.clean[self.keep],
            "noisy": test.inputs[self.keep],
            "index": test.index[self.keep],
            "psnr": np.atleast_1d(
                psnr(test.clean[self.keep], test.inputs[self.keep], data_range=test.data_range)
            ),
            "scale": test.scale[self.keep],
        }
        self._methods: set[str] = set()

    def add(self, method: MethodOutput) -> None:
        """Keep ``method``'s outputs; for a filter the oracle ones (the paper's), else the first."""
        if method.method == "noisy":
            return
        if method.tuning != "blind" or method.method not in self._methods:
            self.arrays[method.method] = method.outputs[self.keep].astype(np.float32)
            self._methods.add(method.method)


def write_outputs(results, panels: Panels, attrs: DatasetAttrs, out_dir: Path) -> None:
    """Write the four files into ``out_dir`` (created), each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    with atomic_path(out_dir / "results.parquet") as tmp:
        results.to_parquet(tmp, index=False)
    atomic_write_text(out_dir / "summary.md", summary_markdown(results, attrs))
    with atomic_path(out_dir / "panels.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **panels.arrays)


def summary_markdown(results, attrs: DatasetAttrs) -> str:
    """``summary.md``: the paper-form table with SSIM, 95 % CIs and the metric conventions.

    The numbers are :func:`lowdose.data.results.summarize`'s (means over finite values).
    """
    rows = summarize(results)
    first = results.iloc[0]
    has_hu = any(math.isfinite(r["psnr_hu_window_db"]) for r in rows)
    lines = [
        f"# Evaluation: {first['dataset']}",
        "",
        f"Dataset `{first['dataset']}` (split-table sha256 `{first['dataset_sha256'][:16]}`), "
        f"modality {attrs.modality}, noise {attrs.noise_model} at level "
        f"{first['noise_level']:g}; {rows[0]['n']} test images, input PSNR "
        f"{rows[0]['psnr_db']:.2f} dB.",
        "",
        f"PSNR and SSIM on the dataset's scale (scaling rule `{first['scaling_rule']}`, "
        f"data_range {first['data_range']:g}), unclipped outputs; SSIM with a 7x7 uniform "
        "window; 95 % CI: Student-t half-width over images. *oracle*: best setting per image "
        "against its clean image (the paper's protocol; flatters the filters). *blind*: one "
        "setting chosen on the training split only.",
        "",
        "| Method | PSNR (dB) | 95 % CI | SSIM | 95 % CI |" + (" PSNR HU window (dB) |" * has_hu),
        "|---|---:|---:|---:|---:|" + ("---:|" * has_hu),
    ]
    for r in rows:
        hu = f" {r['psnr_hu_window_db']:.2f} |" if has_hu else ""
        lines.append(
            f"| {r['label']} | {r['psnr_db']:.2f} | ±{r['psnr_ci95_db']:.2f} | "
            f"{r['ssim']:.4f} | ±{r['ssim_ci95']:.4f} |{hu}"
        )
    if has_hu:
        lines += [
            "",
            f"HU window {first['hu_window']} HU: both images clipped to it, "
            "data_range = window width.",
        ]
    noisy = results[results["method"] == "noisy"]
    lines += [
        "",
        "Noise variance per image (mean): estimate Var(y1 - y2)/2 = "
        f"{noisy['noise_var_estimate'].mean():.4g}, true Var(y1 - clean) = "
        f"{noisy['noise_var_true'].mean():.4g}.",
        "",
    ]
    return "\n".join(lines)
