"""``lowdose report``: saved results -> report.md, a self-contained report.html and PNG figures.

Reads only files (never torch): per experiment folder ``experiment.json``, ``results/results.csv``
(or ``.parquet``), ``results/panels.npz``, ``sweep/sweep.csv`` and the training runs'
``metrics.csv`` + ``manifest.json``: ``train/<model>/seed<s>/`` (``lowdose reproduce``, one run
per training seed; named ``<model>/seed<s>``) or ``train/<run>/`` (docs/interfaces.md,
"Results"). Every part but the experiment folder itself is optional: a missing part is reported
as "not run", except ``iq/iq.csv`` (``lowdose iq`` on the QA phantom), whose "Image quality"
section (:mod:`lowdose.report.iq_section`) appears only where it was measured. ``RUN_DIR`` may
hold several experiment folders or be one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_write_bytes
from lowdose.core.errors import LowdoseInputError
from lowdose.core.extras import require_extra
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.experiment_record import ExperimentRecord, read_experiment_record
from lowdose.report import comparisons as report_comparisons
from lowdose.report import context as report_context
from lowdose.report import images as report_images
from lowdose.report import iq_section as report_iq
from lowdose.report import method_tables as report_tables
from lowdose.report import sections as report_sections
from lowdose.report.html import Figure, Heading, Paragraph, to_html, to_markdown

_EXPERIMENT_ORDER = ("xray", "ct24", "ct18", "ct24-sinogram", "ct18-sinogram")
_RESULT_COLUMNS = ("method", "psnr_db")
_SWEEP_COLUMNS = ("method", "noise_level", "input_psnr_db", "output_psnr_db")


@dataclass
class Experiment:
    """Everything saved for one experiment; optional parts are None (or empty) when not run.

    Attributes
    ----------
    name, folder
        Experiment name (``experiment.json`` "name", else the folder name) and its folder.
    record
        ``experiment.json`` (:class:`lowdose.data.experiment_record.ExperimentRecord`; all
        defaults when the file is missing).
    results, sweep
        pandas.DataFrame of ``results.csv`` / ``sweep.csv``, or None.
    panels
        Arrays of ``panels.npz`` (``clean``, ``noisy``, one per method, ``index``), or None.
    training
        Run name -> (metrics DataFrame, manifest dict) for every training run's ``metrics.csv``
        (``<model>/seed<s>`` or ``<run>``; folders moved aside as ``*.stale`` are left out).
    """

    name: str
    folder: Path
    record: ExperimentRecord
    results: object = None
    sweep: object = None
    panels: dict | None = None
    training: dict = field(default_factory=dict)

    @property
    def attrs(self) -> DatasetAttrs | None:
        """The dataset's attributes as recorded in ``experiment.json``, or None."""
        return self.record.dataset_attrs


@dataclass(frozen=True)
class ReportFiles:
    """Where the report went: ``markdown``, ``html`` and the ``figures`` PNG paths."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]


def _is_experiment(folder: Path) -> bool:
    return (folder / "experiment.json").is_file() or (folder / "results").is_dir()


def find_experiments(run_dir: str | os.PathLike) -> list[Path]:
    """Experiment folders in ``run_dir`` (or ``run_dir`` itself), in the paper's order.

    Raises
    ------
    LowdoseInputError
        When ``run_dir`` does not exist or holds no experiment folder.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise LowdoseInputError(f"{root}: not a folder; pass the run directory that holds results")
    if _is_experiment(root):
        return [root]
    found = [p for p in root.iterdir() if p.is_dir() and p.name != "report" and _is_experiment(p)]
    if not found:
        raise LowdoseInputError(
            f"{root}: no experiment results found (expected {root}/<name>/experiment.json or "
            f"<name>/results/); run `lowdose reproduce` or `lowdose evaluate` first"
        )
    rank = {name: i for i, name in enumerate(_EXPERIMENT_ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LowdoseInputError(f"{path}: not valid JSON ({exc}); rewrite or delete it") from None
    if not isinstance(data, dict):
        raise LowdoseInputError(f"{path}: expected a JSON object; rewrite or delete it")
    return data


def _read_table(csv_path: Path, required: tuple[str, ...]):
    import pandas as pd

    parquet = csv_path.with_suffix(".parquet")
    if csv_path.is_file():
        frame = pd.read_csv(csv_path, keep_default_na=True)
    elif parquet.is_file():
        require_extra("parquet", f"reading {parquet} (no {csv_path.name} beside it)")
        frame = pd.read_parquet(parquet)
    else:
        return None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise LowdoseInputError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; rerun the stage that wrote it"
        )
    return frame


def _read_panels(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError) as exc:
        raise LowdoseInputError(
            f"{path}: unreadable npz ({exc}); rerun `lowdose evaluate`"
        ) from None
    if "clean" not in arrays or "noisy" not in arrays:
        raise LowdoseInputError(
            f"{path}: needs 'clean' and 'noisy' arrays; rerun `lowdose evaluate`"
        )
    return arrays


def _training_runs(train_root: Path) -> list[tuple[str, Path]]:
    """(name, folder) of every run: ``<model>/seed<s>`` in seed order, or a flat ``<run>``."""
    if not train_root.is_dir():
        return []
    runs = []
    for model in sorted(p for p in train_root.iterdir() if p.is_dir()):
        if model.name.endswith(".stale"):
            continue
        seeds = [p for p in model.glob("seed*") if p.is_dir() and p.name[4:].isdigit()]
        for run in sorted(seeds, key=lambda p: int(p.name[4:])):
            runs.append((f"{model.name}/{run.name}", run))
        if not seeds:
            runs.append((model.name, model))
    return runs


def load_experiment(folder: str | os.PathLike) -> Experiment:
    """Read one experiment folder; absent optional files give None / empty fields.

    Raises
    ------
    LowdoseInputError
        When a file is present but malformed (names the file).
    """
    folder = Path(folder)
    meta_path = folder / "experiment.json"
    record = read_experiment_record(meta_path) if meta_path.is_file() else ExperimentRecord()
    training = {}
    for name, run in _training_runs(folder / "train"):
        metrics = _read_table(run / "metrics.csv", ("epoch",))
        if metrics is not None:
            manifest_path = run / "manifest.json"
            manifest = _read_json(manifest_path) if manifest_path.is_file() else {}
            training[name] = (metrics, manifest)
    return Experiment(
        name=record.name or folder.name,
        folder=folder,
        record=record,
        results=_read_table(folder / "results" / "results.csv", _RESULT_COLUMNS),
        sweep=_read_table(folder / "sweep" / "sweep.csv", _SWEEP_COLUMNS),
        panels=_read_panels(folder / "results" / "panels.npz"),
        training=training,
    )


def build_blocks(experiments: list[Experiment], *, title: str) -> list:
    """The whole report as blocks (see ``report_html``); figures carry their PNG bytes."""

    blocks: list = [
        Heading(1, title),
        Paragraph(
            "Reproduction of Gnudi et al. (2020), 'Denoising of X-ray projections and CT images "
            "without clean data', from saved results. Regenerate with `lowdose report RUN_DIR`.",
            css_class="note",
        ),
    ]
    blocks += report_sections.overview(experiments)
    for experiment in experiments:
        blocks.append(Heading(2, f"Experiment {experiment.name}", anchor=f"exp-{experiment.name}"))
        blocks += report_tables.results_table(experiment)
        blocks += report_comparisons.paired_comparisons(experiment)
        blocks += report_sections.sweep(experiment)
        blocks += report_iq.image_quality_blocks(experiment.folder / "iq", name=experiment.name)
        blocks += report_images.panels(experiment)
        blocks += report_images.training(experiment)
        blocks += report_context.conventions(experiment)
        blocks += report_context.environment(experiment)
    return blocks


def write_report(
    run_dir: str | os.PathLike, *, out_dir: str | os.PathLike | None = None
) -> ReportFiles:
    """Build report.md, report.html and figures/*.png from the saved results under ``run_dir``.

    Parameters
    ----------
    run_dir
        A run directory holding experiment folders, or one experiment folder.
    out_dir
        Where to write; default ``run_dir/report``. Figures go to ``out_dir/figures``.

    Returns
    -------
    ReportFiles
        Paths written (all atomically).
    """
    root = Path(run_dir)
    experiments = [load_experiment(p) for p in find_experiments(root)]
    out = Path(out_dir) if out_dir is not None else root / "report"
    title = f"lowdose report — {root.resolve().name}"
    blocks = build_blocks(experiments, title=title)
    figure_paths = []
    for block in blocks:
        if isinstance(block, Figure):
            path = out / block.filename
            atomic_write_bytes(path, block.png)
            figure_paths.append(path)
    markdown, html_path = out / "report.md", out / "report.html"
    atomic_write_bytes(markdown, to_markdown(blocks).encode("utf-8"))
    atomic_write_bytes(html_path, to_html(blocks, title=title).encode("utf-8"))
    return ReportFiles(markdown=markdown, html=html_path, figures=tuple(figure_paths))
