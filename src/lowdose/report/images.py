"""The report's picture sections: image panels (paper Figs. 1 and 3) and training curves.

Each function takes a loaded ``report.Experiment`` and returns blocks; a missing part gives a
"not run" paragraph. CT panels are shown in Hounsfield units when the conversion back is known:
the dataset is CT in HU (its attributes) and ``panels.npz`` carries each image's ``scale``
(``hu = scaled * scale - scaling_offset``).
"""

from __future__ import annotations

import math

import numpy as np

from lowdose.core.metrics import psnr_from_mse
from lowdose.report.analysis import FILTER_METHODS, summary_table
from lowdose.report.figures import choose_zoom_box, panel_figure, training_figure
from lowdose.report.html import Figure, Heading, Table
from lowdose.report.sections import fmt_number, not_run, paper_of, safe_name

_PANEL_META_KEYS = ("clean", "noisy", "index", "psnr", "scale")
_MAX_PANEL_ROWS = 2
_TRAINING_HEADERS = [
    "Run",
    "Model",
    "Mode",
    "Loss",
    "Epochs",
    "Selection score",
    "Best score [dB]",
    "Final lr",
    "Wall time [s]",
]


def _psnr_db(clean: np.ndarray, image: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((clean.astype(np.float64) - image.astype(np.float64)) ** 2))
    return psnr_from_mse(mse, data_range=data_range)


def _short(method: str) -> str:
    return method.upper() if method[:3] in ("n2n", "n2c") else method.capitalize()


def _pick(keys: list[str], preferred: str, prefix: str) -> str | None:
    if preferred in keys:
        return preferred
    return next((k for k in keys if k.startswith(prefix)), None)


def _best_filter(experiment, keys: list[str], clean, arrays, data_range) -> str | None:
    filters = [k for k in keys if k in FILTER_METHODS]
    if not filters:
        return None
    if experiment.results is not None:
        summary = summary_table(experiment.results)
        summary = summary[summary["method"].isin(filters)]
        if len(summary):
            return str(summary.loc[summary["psnr_db"].idxmax(), "method"])
    return max(filters, key=lambda k: _psnr_db(clean, arrays[k], data_range))


# CT panels are shown in the soft-tissue window (W 400, L 40), the window of the soft-tissue PSNR
# column, where denoising differences are visible (-1000..1000 HU would wash them out).
_DISPLAY_HU = (-160.0, 240.0)


def _display(experiment, arrays, clean_rows):
    """(transform(image, row) -> display image, vmin, vmax, description of the window)."""
    attrs, scale = experiment.attrs, arrays.get("scale")
    if attrs is not None and attrs.is_ct_hu and scale is not None:
        offset = attrs.scaling_offset
        scales = np.broadcast_to(np.asarray(scale, dtype=np.float64), (len(arrays["clean"]),))
        low, high = _DISPLAY_HU

        def to_hu(image, row):
            return image * scales[row] - offset

        return (
            to_hu,
            low,
            high,
            f"HU window [{low:g}, {high:g}] (W {high - low:g}, L {(low + high) / 2:g})",
        )
    values = np.concatenate([c.ravel() for c in clean_rows])
    low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    return (
        (lambda image, row: image),
        low,
        high,
        (
            f"scaled units (data_range 1), grey window [{low:.3f}, {high:.3f}] = the clean images' "
            "0.5–99.5 percentiles"
        ),
    )


def _panel_arrays(panels: dict) -> tuple[dict, list[str]]:
    """float64 copies as (K, H, W) stacks, and the method keys (arrays shaped like ``clean``)."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in panels.items()}
    shape = arrays["clean"].shape[-2:]
    keys = [k for k in arrays if k not in _PANEL_META_KEYS and arrays[k].shape[-2:] == shape]
    for key in ("clean", "noisy", *keys):
        arrays[key] = arrays[key][None] if arrays[key].ndim == 2 else arrays[key]
    return arrays, keys


def panels(experiment) -> list:
    """Noisy / clean / N2N / N2C / best filter per test image, titled with PSNR, zoomed insets."""
    paper = paper_of(experiment)
    fig_no = {"III": "1", "IV": "3", "V": "3"}.get(paper.table_id, "") if paper else ""
    blocks: list = [Heading(3, "Image panels" + (f" (as paper Fig. {fig_no})" if fig_no else ""))]
    if experiment.panels is None:
        return blocks + [not_run("no results/panels.npz", "Run `lowdose evaluate`.")]

    arrays, keys = _panel_arrays(experiment.panels)
    clean = arrays["clean"]
    data_range = 1.0
    if experiment.results is not None and "data_range" in experiment.results:
        data_range = float(experiment.results["data_range"].dropna().iloc[0])
    firsts = {k: arrays[k][0] for k in keys}
    chosen = [
        _pick(keys, "n2n-mse", "n2n"),
        _pick(keys, "n2c-mse", "n2c"),
        _best_filter(experiment, keys, clean[0], firsts, data_range),
    ]
    n_rows = min(_MAX_PANEL_ROWS, len(clean))
    transform, vmin, vmax, window = _display(experiment, arrays, [clean[i] for i in range(n_rows)])
    rows, boxes = [], []
    for i in range(n_rows):

        def titled(key: str, name: str, i: int = i) -> tuple[str, np.ndarray]:
            psnr = _psnr_db(clean[i], arrays[key][i], data_range)
            return f"{name}\n{psnr:.2f} dB", transform(arrays[key][i], i)

        row = [titled("noisy", "noisy input"), ("clean reference", transform(clean[i], i))]
        rows.append(row + [titled(m, _short(m)) for m in chosen if m is not None])
        boxes.append(choose_zoom_box(clean[i]))
    png = panel_figure(rows, vmin=vmin, vmax=vmax, zoom_boxes=boxes)
    index = arrays.get("index")
    which = ", ".join(str(int(v)) for v in index[:n_rows]) if index is not None else "first"
    caption = (
        f"{experiment.name}: test image(s) {which}. PSNR (data_range {data_range:g}) against the "
        f"clean image in each title; the orange square is magnified in the inset. "
        f"Display: {window}."
    )
    return blocks + [Figure(png, f"figures/{safe_name(experiment.name)}-panels.png", caption)]


def _manifest_field(manifest: dict, *keys: str) -> str:
    for key in keys:
        value = manifest.get(key)
        if isinstance(value, dict):
            value = value.get("name") or (f"unet-w{value['width']}" if "width" in value else None)
        if value not in (None, ""):
            return str(value)
    return "—"


_MONITOR_LABELS = {
    "val_upsnr_db": "uPSNR vs 2nd realisation (clean-free)",
    "val_pair_db": "PSNR vs the other view-split half (clean-free)",
    "val_psnr_db": "PSNR vs clean (clean-selected)",
}


def _monitor(manifest: dict, metrics) -> str:
    """The column that selected best.ckpt: the manifest's ``monitor``, else ``val_psnr_db`` (a
    manifest without ``monitor`` comes from a run selected by it)."""
    monitor = (manifest.get("metrics") or {}).get("monitor")
    return monitor if monitor in metrics else "val_psnr_db"


def _per_epoch(metrics, column: str) -> np.ndarray:
    if column not in metrics:
        return np.full(metrics["epoch"].nunique(), np.nan)
    # Lightning's CSV log has a row per logging step; the epoch's value is its last logged one.
    return metrics.groupby("epoch")[column].last().to_numpy(dtype=float)


def training(experiment) -> list:
    """Validation PSNR and learning rate per epoch for every trained model, plus a summary table."""
    blocks: list = [Heading(3, "Training curves")]
    if not experiment.training:
        return blocks + [not_run("no train/<run>/metrics.csv", "Run `lowdose train`.")]

    curves, rows = {}, []
    for name, (metrics, manifest) in experiment.training.items():
        epoch = np.sort(metrics["epoch"].dropna().unique()).astype(float)
        # The score that chose best.ckpt: val_upsnr_db (clean-free) or val_psnr_db vs clean.
        monitor = _monitor(manifest, metrics)
        val, lr = _per_epoch(metrics, monitor), _per_epoch(metrics, "lr")
        model = _manifest_field(manifest, "model", "model_name")
        curves[f"{name} ({model})" if model != "—" else name] = (epoch, val, lr)
        best = int(np.nanargmax(val)) if np.isfinite(val).any() else None
        wall = float(metrics["elapsed_s"].max()) if "elapsed_s" in metrics else math.nan
        rows.append(
            [
                name,
                model,
                _manifest_field(manifest, "mode"),
                _manifest_field(manifest, "loss"),
                str(len(epoch)),
                _MONITOR_LABELS.get(monitor, monitor),
                f"{val[best]:.2f} (epoch {epoch[best]:g})" if best is not None else "—",
                f"{lr[np.isfinite(lr)][-1]:.2e}" if np.isfinite(lr).any() else "—",
                fmt_number(wall, 1),
            ]
        )
    png = training_figure(curves)
    blocks.append(
        Figure(
            png,
            f"figures/{safe_name(experiment.name)}-training.png",
            f"{experiment.name}: the validation score that selected best.ckpt (clean-free "
            "val_upsnr_db, or val_psnr_db against clean for clean-selected runs; data_range 1) "
            "and the learning rate at the end of each epoch, from each run's metrics.csv.",
        )
    )
    blocks.append(Table(_TRAINING_HEADERS, rows, numeric=(4, 6, 7, 8)))
    return blocks
