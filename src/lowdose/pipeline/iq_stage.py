"""The image-quality stage of an experiment: its networks and blind filters on the QA phantom.

A CT experiment with ``iq.enabled`` builds the digital QA phantom
(:mod:`lowdose.phantoms.qa_phantom`) through the experiment's own noise (same dose, kernel and
electronic noise; ``iq.realisations`` independent scans at ``iq.size``), then measures noise, HU
bias, CNR, NPS, TTF and detectability of the noisy FBP, each network (its first training seed)
and the blind filters (:func:`lowdose.evaluation.phantom_iq.measure_image_quality`). Results go
to ``<experiment>/iq/`` (``iq.csv``, ``iq_nps.csv``, ``iq_ttf.csv``, ``iq.json``), cached by the
phantom dataset's key and the checkpoints' hashes. Nobody trains on the phantom.
"""

from __future__ import annotations

from pathlib import Path

from lowdose.core.file_hash import file_sha256
from lowdose.core.progress import Log, ProgressScope
from lowdose.evaluation.phantom_iq import measure_image_quality
from lowdose.pipeline.cache import finish_stage, prepare_stage, stage_done, stage_key
from lowdose.pipeline.config import DatasetSpec, ExperimentConfig
from lowdose.pipeline.dataset_stage import build_dataset


def phantom_spec(config: ExperimentConfig) -> DatasetSpec:
    """The experiment's dataset spec with the QA phantom as its source (same noise)."""
    update = {
        "source": "qa-phantom",
        "realisations": config.iq.realisations,
        "size": config.iq.size,
        "view_subsets": None,
    }
    return config.dataset.model_copy(update=update)


def iq_stage(
    config: ExperimentConfig, checkpoints: dict, out_dir: Path, log: Log, bars: ProgressScope
) -> Path | None:
    """Measure image quality on the QA phantom; None when the experiment does not ask for it.

    ``checkpoints`` is :func:`lowdose.pipeline.reproduce.train_models`' mapping; each model's
    first seed is measured.
    """
    if not config.iq.enabled:
        return None
    if config.dataset.kind != "ct" or config.dataset.view_subsets is not None:
        log("iq: needs CT with independent scans (view-subset models are left out)")
        return None
    phantom_path, phantom_key = build_dataset(phantom_spec(config), out_dir, log, bars)
    models = [paths[0] for paths in checkpoints.values() if paths]
    folder = out_dir / "iq"
    hashes = {path.parent.parent.name: file_sha256(path) for path in models}
    key = stage_key("iq-v1", phantom_key, hashes, config.iq.model_dump())
    if stage_done(folder, key):
        log("iq: cached")
        return folder
    prepare_stage(folder, key)
    log(f"iq: {len(models)} models and {','.join(config.iq.filters)} on the QA phantom")
    with bars() as progress:
        measure_image_quality(
            phantom_path,
            models=models,
            filters=config.iq.filters,
            out_dir=folder,
            progress=progress,
        )
    finish_stage(folder, key)
    return folder
