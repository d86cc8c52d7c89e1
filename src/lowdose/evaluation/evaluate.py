"""Run methods over a dataset's test split and write tidy results (docs/interfaces.md, Results).

Methods: ``noisy`` (the first realisation, untouched), each trained model (tiled inference) and
each filter tuned ``oracle`` (per image against the clean image, the paper's protocol) and/or
``blind`` (one setting chosen on the training split; see :mod:`lowdose.baselines.tuning`).

Metric conventions, written beside every number: PSNR and SSIM (7x7 uniform window) on the
dataset's scale with ``data_range`` = the file's ``psnr_data_range`` (1.0 on the paper's
scaling), on *unclipped* outputs. For CT stored in HU, also PSNR in a named HU window: both
images are converted back (``hu = scaled * scale - scaling_offset``) and clipped to the window,
and ``data_range`` is the window width.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.baselines.filters import get_filter
from lowdose.baselines.tuning import apply_filter, tune_blind, tune_oracle
from lowdose.core.atomic import atomic_path, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, ssim
from lowdose.data.dataset import dataset_sha256, load_split
from lowdose.inference.predict import predict
from lowdose.training.run import load_model

TUNING_CHOICES = ("oracle", "blind", "both")
DEFAULT_HU_WINDOW = (-1000.0, 1000.0)
N_PANEL_IMAGES = 4
# (stage label, images just finished, images in the stage) -> None; the CLI draws bars from it.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class _Method:
    method: str
    model: str
    tuning: str
    params: list[dict]  # one setting per test image
    outputs: np.ndarray  # (I, H, W) float32, unclipped


@dataclass(frozen=True)
class _TestSet:
    path: Path
    clean: np.ndarray  # (I, H, W)
    noisy: np.ndarray  # (I, N, H, W)
    object_id: np.ndarray
    index: np.ndarray
    scale: np.ndarray  # (I,) divisor per image
    attrs: dict

    @property
    def inputs(self) -> np.ndarray:
        return self.noisy[:, 0]

    @property
    def data_range(self) -> float:
        return float(self.attrs.get("psnr_data_range", 1.0))

    @property
    def is_ct_hu(self) -> bool:
        return self.attrs.get("modality") == "ct" and self.attrs.get("raw_units") == "hu"


def _read_test(data_path: Path) -> _TestSet:
    import h5py

    split = load_split(data_path, "test")
    if split.clean is None:
        raise LowdoseInputError(
            f"{data_path}: no clean images, so PSNR cannot be measured; evaluate a dataset "
            "with 'clean' (simulated data) or use `lowdose denoise` for your own data"
        )
    with h5py.File(data_path, "r") as handle:
        scale = np.asarray(handle["scale"][:], dtype=np.float64)[split.index]
    return _TestSet(
        data_path, split.clean, split.noisy, split.object_id, split.index, scale, split.attrs
    )


def _blind_training_pair(data_path: Path) -> tuple[np.ndarray, np.ndarray, str]:

    train = load_split(data_path, "train")
    if train.clean is not None:
        return train.noisy[:, 0], train.clean, "clean"
    if train.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{data_path}: blind tuning needs clean training images or N >= 2 realisations; "
            "use --tuning oracle"
        )
    return train.noisy[:, 0], train.noisy[:, 1], "second_realisation"


def _model_methods(test: _TestSet, models: Sequence, device: str, progress: Progress | None):

    for checkpoint in models:
        model, meta = load_model(checkpoint)
        label = f"{meta['mode']}-{meta['loss']}"
        done = _stage_callback(progress, label, len(test.inputs))
        outputs = predict(model, test.inputs, device=device, on_image_done=done)
        params = {"checkpoint": str(checkpoint), "global_step": meta.get("global_step")}
        yield _Method(label, meta["model"]["name"], "none", [params] * len(outputs), outputs)


def _filter_methods(
    test: _TestSet, filters, tuning: str, *, grids: dict, workers: int, progress: Progress | None
) -> Iterator[_Method]:
    blind_pair = _blind_training_pair(test.path) if tuning in ("blind", "both") else None
    for name in filters:
        if tuning in ("oracle", "both"):
            done = _stage_callback(progress, f"{name} oracle", len(test.inputs))
            result = tune_oracle(
                test.inputs,
                test.clean,
                name,
                grids.get(name),
                data_range=test.data_range,
                workers=workers,
                progress=done,
            )
            outputs = apply_filter(test.inputs, name, result.best_params)
            yield _Method(name, "", "oracle", result.best_params, outputs)
        if blind_pair is not None:
            train_noisy, target, target_kind = blind_pair
            done = _stage_callback(progress, f"{name} blind", len(test.inputs))
            blind = tune_blind(
                train_noisy,
                target,
                name,
                grids.get(name),
                target_kind=target_kind,
                data_range=test.data_range,
                threads=workers,
            )
            outputs = apply_filter(test.inputs, name, blind.params, threads=workers)
            if done is not None:
                done(len(outputs))
            params = {**blind.params, "tuned_on": f"train:{target_kind}", "n_train": blind.n_images}
            yield _Method(name, "", "blind", [params] * len(outputs), outputs)


def _stage_callback(progress: Progress | None, label: str, total: int):
    if progress is None:
        return None
    progress(label, 0, total)
    return lambda advance: progress(label, advance, total)


def _hu_window_psnr(test: _TestSet, outputs: np.ndarray, window) -> np.ndarray:
    low, high = window
    offset = float(test.attrs.get("scaling_offset", 0.0))
    factor = test.scale[:, None, None]
    reference = np.clip(test.clean * factor - offset, low, high)
    estimate = np.clip(outputs.astype(np.float64) * factor - offset, low, high)
    return psnr(reference, estimate, data_range=high - low)


def _noise_variances(test: _TestSet) -> tuple[np.ndarray, np.ndarray]:
    """Per image: Var(y1 - y2) / 2 (needs N >= 2, else NaN) and the true Var(y1 - clean)."""
    first = test.noisy[:, 0].astype(np.float64)
    true = np.var(first - test.clean, axis=(1, 2))
    if test.noisy.shape[1] < 2:
        return np.full(len(first), math.nan), true
    return np.var(first - test.noisy[:, 1], axis=(1, 2)) / 2.0, true


def _rows(test: _TestSet, method: _Method, hu_window, context: dict) -> list[dict]:
    psnr_db = psnr(test.clean, method.outputs, data_range=test.data_range)
    ssim_values = ssim(test.clean, method.outputs, data_range=test.data_range)
    hu_db = (
        _hu_window_psnr(test, method.outputs, hu_window)
        if test.is_ct_hu
        else np.full(len(psnr_db), math.nan)
    )
    return [
        {
            **context["head"],
            "image_index": int(test.index[i]),
            "object_id": str(test.object_id[i]),
            "method": method.method,
            "model": method.model,
            "tuning": method.tuning,
            "params": json.dumps(method.params[i], sort_keys=True),
            **context["level"],
            "input_psnr_db": float(context["input_psnr_db"][i]),
            "psnr_db": float(psnr_db[i]),
            "ssim": float(ssim_values[i]),
            "psnr_hu_window_db": float(hu_db[i]),
            **context["tail"],
            "noise_var_estimate": float(context["noise_var"][0][i]),
            "noise_var_true": float(context["noise_var"][1][i]),
        }
        for i in range(len(psnr_db))
    ]


def _context(test: _TestSet, hu_window) -> dict:

    return {
        "head": {"dataset": test.path.stem, "dataset_sha256": dataset_sha256(test.path)},
        "level": {"noise_level": float(test.attrs.get("noise_level", math.nan))},
        "input_psnr_db": psnr(test.clean, test.inputs, data_range=test.data_range),
        "tail": {
            "hu_window": f"{hu_window[0]:g}..{hu_window[1]:g}" if test.is_ct_hu else "",
            "data_range": test.data_range,
            "scaling_rule": str(test.attrs.get("scaling_rule", "")),
            "clipped": False,
        },
        "noise_var": _noise_variances(test),
    }


def evaluate(
    data_path,
    *,
    models: Sequence = (),
    filters: Sequence[str] = ("gaussian", "median", "bilateral"),
    tuning: str = "both",
    out_dir,
    hu_window: tuple[float, float] | None = None,
    workers: int = 1,
    grids: dict[str, dict] | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
):
    """Evaluate noisy input, models and tuned filters on the test split; write the results.

    Parameters
    ----------
    data_path : path
        Dataset file (docs/interfaces.md) with ``clean`` and a ``test`` split (and a ``train``
        split for blind tuning).
    models : sequence of paths
        Checkpoints (or run folders holding ``best.ckpt``); may be empty.
    filters : sequence of str
        Names from ``lowdose.baselines.filters.FILTERS``.
    tuning : {"oracle", "blind", "both"}
    out_dir : path
        Receives ``results.csv``, ``results.parquet``, ``summary.md`` and ``panels.npz``.
    hu_window : (low_hu, high_hu), optional
        HU window for CT datasets in HU (default -1000..1000); ignored otherwise.
    workers : int
        Processes for the oracle search.
    grids : dict filter name -> {parameter: values}, optional
        Search grids replacing the filters' defaults (``lowdose.baselines.filters.FILTERS``).
    device : str
        Torch device for the models (``"cpu"``, ``"cuda"``).
    progress : callable(stage, advance, total), optional

    Returns
    -------
    pandas.DataFrame
        One row per test image x method (x the file's one noise level).
    """
    import pandas as pd

    if tuning not in TUNING_CHOICES:
        raise LowdoseInputError(f"tuning {tuning!r}; use one of {', '.join(TUNING_CHOICES)}")
    for name in filters:
        get_filter(name)
    hu_window = tuple(float(v) for v in (hu_window or DEFAULT_HU_WINDOW))
    if not hu_window[1] > hu_window[0]:
        raise LowdoseInputError(f"HU window {hu_window}: the upper bound must exceed the lower")
    test = _read_test(Path(data_path))
    context = _context(test, hu_window)
    noisy = _Method("noisy", "", "none", [{}] * len(test.inputs), test.inputs)
    methods = itertools.chain(
        [noisy],
        _model_methods(test, models, device, progress),
        _filter_methods(
            test, filters, tuning, grids=grids or {}, workers=workers, progress=progress
        ),
    )
    rows, panels = [], _panel_base(test)
    for method in methods:  # one method's outputs in memory at a time
        rows += _rows(test, method, hu_window, context)
        # One panel array per method name: for filters the oracle output (the paper's).
        if method.method != "noisy" and (method.tuning != "blind" or method.method not in panels):
            panels[method.method] = method.outputs[panels["index_in_split"]].astype(np.float32)
    results = pd.DataFrame(rows)
    _write_outputs(results, panels, test.attrs, Path(out_dir))
    return results


def _panel_base(test: _TestSet) -> dict:
    keep = np.unique(np.linspace(0, len(test.inputs) - 1, N_PANEL_IMAGES).round().astype(int))
    return {
        "index_in_split": keep,
        "clean": test.clean[keep],
        "noisy": test.inputs[keep],
        "index": test.index[keep],
        "psnr": psnr(test.clean[keep], test.inputs[keep], data_range=test.data_range),
        "scale": test.scale[keep],
    }


def _write_outputs(results, panels: dict, attrs: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    with atomic_path(out_dir / "results.parquet") as tmp:
        results.to_parquet(tmp, index=False)
    atomic_write_text(out_dir / "summary.md", summary_markdown(results, attrs))
    arrays = {k: v for k, v in panels.items() if k != "index_in_split"}
    with atomic_path(out_dir / "panels.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def summarize(results) -> list[dict]:
    """Paper-form summary rows (Tables III-V): one per method x model x tuning x noise level.

    Parameters
    ----------
    results : pandas.DataFrame
        The tidy table returned by :func:`evaluate`.

    Returns
    -------
    list of dict
        Keys ``label, method, model, tuning, noise_level, n, psnr_db, psnr_ci95_db, ssim,
        ssim_ci95, psnr_hu_window_db``; CI entries are the half-widths of the 95 % Student-t
        interval over images (NaN with one image). Order of first appearance.
    """
    rows = []
    keys = ["method", "model", "tuning", "noise_level"]
    for key, group in results.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key, strict=True))
        label = row["method"] + (f" ({row['model']})" if row["model"] else "")
        label += f" ({row['tuning']})" if row["tuning"] != "none" else ""
        psnr_mean, psnr_half = _mean_ci95(group["psnr_db"].to_numpy(float))
        ssim_mean, ssim_half = _mean_ci95(group["ssim"].to_numpy(float))
        hu = group["psnr_hu_window_db"].to_numpy(float)
        rows.append(
            {
                "label": label,
                **row,
                "n": len(group),
                "psnr_db": psnr_mean,
                "psnr_ci95_db": psnr_half,
                "ssim": ssim_mean,
                "ssim_ci95": ssim_half,
                "psnr_hu_window_db": float(np.mean(hu)) if np.isfinite(hu).all() else math.nan,
            }
        )
    return rows


def _mean_ci95(values: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, float(stats.t.ppf(0.975, len(values) - 1)) * sem


def summary_markdown(results, attrs: dict) -> str:
    """``summary.md``: the paper-form table with SSIM, 95 % CIs and the metric conventions."""
    rows = summarize(results)
    first = results.iloc[0]
    has_hu = any(math.isfinite(r["psnr_hu_window_db"]) for r in rows)
    lines = [
        f"# Evaluation: {first['dataset']}",
        "",
        f"Dataset `{first['dataset']}` (split-table sha256 `{first['dataset_sha256'][:16]}`), "
        f"modality {attrs.get('modality', '?')}, noise {attrs.get('noise_model', '?')} at level "
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
