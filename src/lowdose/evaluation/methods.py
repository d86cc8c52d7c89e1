"""The methods an evaluation compares, each run over the test inputs: the noisy input itself,
trained models (tiled inference) and filters tuned ``oracle`` (per image against its clean image,
the paper's protocol) or ``blind`` (one setting chosen on the training split; see
:mod:`lowdose.baselines.tuning`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from lowdose.baselines.filters import apply_filter
from lowdose.baselines.tuning import tune_blind, tune_oracle
from lowdose.core.progress import Progress, StageCounter
from lowdose.evaluation.testset import TestSet, blind_training_pair
from lowdose.inference.predict import predict
from lowdose.models.checkpoint import load_model

TUNING_CHOICES = ("oracle", "blind", "both")


@dataclass(frozen=True)
class MethodOutput:
    """One method's outputs on the test inputs.

    Attributes
    ----------
    method : str
        ``noisy``, a model's ``<mode>-<loss>`` or a filter name.
    model : str
        The network's name (``unet-w16-res``), empty for filters and the noisy input.
    tuning : {"none", "oracle", "blind"}
    params : list of dict
        The setting used, one per test image (JSON-serialisable).
    outputs : ndarray (I, H, W) float32
        Unclipped outputs on the dataset's scale.
    """

    method: str
    model: str
    tuning: str
    params: list[dict]
    outputs: np.ndarray


def noisy_method(test: TestSet) -> MethodOutput:
    """The untouched first realisation, the baseline every table starts with."""
    return MethodOutput("noisy", "", "none", [{}] * len(test.inputs), test.inputs)


def model_methods(
    test: TestSet, checkpoints: Sequence, device: str, progress: Progress | None
) -> Iterator[MethodOutput]:
    """Each checkpoint (or run folder) over the test inputs, labelled ``<mode>-<loss>``."""
    for checkpoint in checkpoints:
        model, meta = load_model(checkpoint)
        label = f"{meta.mode}-{meta.loss}"
        outputs = predict(
            model, test.inputs, device=device, progress=_relabelled(progress, label, test)
        )
        params = {"checkpoint": str(checkpoint), "global_step": meta.global_step}
        yield MethodOutput(label, meta.model.name, "none", [params] * len(outputs), outputs)


def _relabelled(progress: Progress | None, stage: str, test: TestSet) -> Progress | None:
    """``progress`` under the label ``stage`` (one bar per model), started at 0."""
    if progress is None:
        return None
    progress(stage, 0, len(test.inputs))
    return lambda _stage, done, total: progress(stage, done, total)


def filter_methods(
    test: TestSet,
    filters: Sequence[str],
    tuning: str,
    *,
    grids: dict,
    workers: int,
    progress: Progress | None,
) -> Iterator[MethodOutput]:
    """Each filter tuned ``oracle`` and/or ``blind`` (``tuning`` one of :data:`TUNING_CHOICES`)."""
    blind_pair = blind_training_pair(test.path) if tuning in ("blind", "both") else None
    for name in filters:
        if tuning in ("oracle", "both"):
            yield _oracle(test, name, grids.get(name), workers, progress)
        if blind_pair is not None:
            yield _blind(test, name, grids.get(name), blind_pair, workers, progress)


def _oracle(test: TestSet, name: str, grid, workers: int, progress) -> MethodOutput:
    result = tune_oracle(
        test.inputs,
        test.clean,
        name,
        grid,
        data_range=test.data_range,
        workers=workers,
        progress=progress,
        stage=f"{name} oracle",
    )
    outputs = apply_filter(test.inputs, name, result.best_params)
    return MethodOutput(name, "", "oracle", result.best_params, outputs)


def _blind(test: TestSet, name: str, grid, blind_pair, workers: int, progress) -> MethodOutput:
    train_noisy, target, target_kind = blind_pair
    counter = StageCounter(progress, f"{name} blind", len(test.inputs))
    counter.advance(0)  # show the stage before the search finishes
    blind = tune_blind(
        train_noisy,
        target,
        name,
        grid,
        target_kind=target_kind,
        data_range=test.data_range,
        threads=workers,
    )
    outputs = apply_filter(test.inputs, name, blind.params, threads=workers)
    counter.advance(len(outputs))
    params = {**blind.params, "tuned_on": f"train:{target_kind}", "n_train": blind.n_images}
    return MethodOutput(name, "", "blind", [params] * len(outputs), outputs)
