"""The methods an evaluation compares, each run over the test inputs: the noisy input itself,
trained models (tiled inference) and filters tuned ``oracle`` (per image against its clean image,
the paper's protocol), ``blind`` (one setting chosen on the training split's two noisy
realisations, no clean image read) or ``blind-clean`` (one setting chosen against the training
split's clean images); see :mod:`lowdose.baselines.tuning`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from lowdose.baselines.filters import apply_filter
from lowdose.baselines.sigma_rule import params_from_sigma
from lowdose.baselines.tuning import tune_blind, tune_oracle
from lowdose.baselines.tuning_kinds import PSD_TUNINGS, parse_tunings
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress, StageCounter
from lowdose.evaluation.spectrum_methods import PSD_FILTERS, spectrum_outputs
from lowdose.evaluation.testset import TestSet, blind_training_pair
from lowdose.inference.predict import predict
from lowdose.inference.self_ensemble import checked_tta
from lowdose.models.checkpoint import load_model

log = logging.getLogger("lowdose.evaluation")


@dataclass(frozen=True)
class MethodOutput:
    """One method's outputs on the test inputs.

    Attributes
    ----------
    method : str
        ``noisy``, a model's ``<mode>-<loss>`` (``<mode>-<loss>-tta8`` for its self-ensemble)
        or a filter name.
    model : str
        The network's name (``unet-w16-res``), empty for filters and the noisy input.
    tuning : {"none", "oracle", "blind", "blind-clean"}
    params : list of dict
        The setting used, one per test image (JSON-serialisable).
    outputs : ndarray (I, H, W) float32
        Unclipped outputs on the dataset's scale.
    seed : int
        The network's training seed; -1 for filters, the noisy input and unknown seeds.
    selection : str
        How the checkpoint was chosen (``CheckpointMeta.selection``); empty otherwise.
    """

    method: str
    model: str
    tuning: str
    params: list[dict]
    outputs: np.ndarray
    seed: int = -1
    selection: str = ""


def noisy_method(test: TestSet) -> MethodOutput:
    """The untouched first realisation, the baseline every table starts with."""
    return MethodOutput("noisy", "", "none", [{}] * len(test.inputs), test.inputs)


def model_methods(
    test: TestSet,
    checkpoints: Sequence,
    device: str,
    progress: Progress | None,
    *,
    tta: int = 1,
) -> Iterator[MethodOutput]:
    """Each checkpoint (or run folder) over the test inputs, labelled ``<mode>-<loss>``.

    With ``tta=8`` each model runs twice: plain, then as the self-ensemble over the 8 dihedral
    transforms (``<mode>-<loss>-tta8``, :mod:`lowdose.inference.self_ensemble`). Every model's
    ``params`` hold ``tta`` and ``seconds_per_image``: the wall time of that run's inference
    over the test scans divided by their number, so a table shows the gain and its cost.
    """
    checked_tta(tta)
    for checkpoint in checkpoints:
        model, meta = load_model(checkpoint)
        base = f"{meta.mode}-{meta.loss}"
        seed = -1 if meta.seed is None else int(meta.seed)
        for views in dict.fromkeys((1, tta)):  # (1,) or (1, 8)
            label = base if views == 1 else f"{base}-tta{views}"
            started = time.perf_counter()
            outputs = _predict_scan(model, test, device, _relabelled(progress, label, test), views)
            seconds = (time.perf_counter() - started) / len(outputs)
            params = {
                "checkpoint": str(checkpoint),
                "global_step": meta.global_step,
                "tta": views,
                "seconds_per_image": round(seconds, 6),
            }
            yield MethodOutput(
                label,
                meta.model.name,
                "none",
                [params] * len(outputs),
                outputs,
                seed,
                meta.selection,
            )


def _predict_scan(
    model, test: TestSet, device: str, progress: Progress | None, tta: int = 1
) -> np.ndarray:
    """(I, H, W) network outputs for the test scans; view subsets are denoised one by one and
    averaged (Noise2Inverse's estimate of the full scan), each with the same ``tta``."""
    if test.view_subsets == 1:
        return predict(model, test.inputs, device=device, tta=tta, progress=progress)
    total = np.zeros(test.inputs.shape, np.float64)
    for k in range(test.view_subsets):
        total += predict(model, test.noisy[:, k], device=device, tta=tta, progress=progress)
    return (total / test.view_subsets).astype(np.float32)


def _relabelled(progress: Progress | None, stage: str, test: TestSet) -> Progress | None:
    """``progress`` under the label ``stage`` (one bar per model), started at 0."""
    if progress is None:
        return None
    progress(stage, 0, len(test.inputs))
    return lambda _stage, done, total: progress(stage, done, total)


def filter_tunings(tuning: str, test: TestSet) -> tuple[str, ...]:
    """The tunings ``tuning`` runs on ``test``; the oracles need clean test images.

    Without them the oracle kinds are dropped with a logged warning, unless nothing else is
    left (then it raises).
    """
    tunings = parse_tunings(tuning)
    oracles = {"oracle", "oracle-psd"}
    if test.clean is not None or not oracles & set(tunings):
        return tunings
    if set(tunings) <= oracles:
        raise LowdoseInputError(
            f"{test.path}: oracle tuning needs clean test images, which the file lacks; "
            "use --tuning blind (or blind-psd, single-psd)"
        )
    log.warning("%s: no clean test images, so the filters are tuned blind only", test.path)
    return tuple(t for t in tunings if t not in oracles)


def filter_methods(
    test: TestSet,
    filters: Sequence[str],
    tuning: str,
    *,
    grids: dict,
    workers: int,
    progress: Progress | None,
) -> Iterator[MethodOutput]:
    """Each filter under each of :func:`filter_tunings` (see :data:`TUNING_CHOICES`).

    Checks the tuning and reads the training pairs at once (bad input fails before any model
    runs); the filters run as the outputs are asked for.
    """
    tunings = filter_tunings(tuning, test) if filters else ()
    if "blind-sigma" in tunings:
        for name in filters:
            params_from_sigma(name, 1.0)  # raises for a filter without a sigma rule
    if set(tunings) & set(PSD_TUNINGS) and not set(filters) & set(PSD_FILTERS):
        raise LowdoseInputError(
            f"tunings {', '.join(t for t in tunings if t in PSD_TUNINGS)} apply to "
            f"{', '.join(PSD_FILTERS)} only; add it to --filters"
        )
    pairs = {t: blind_training_pair(test.path, t) for t in tunings if t in ("blind", "blind-clean")}

    def outputs() -> Iterator[MethodOutput]:
        for name in filters:
            for kind in tunings:
                if kind in PSD_TUNINGS:
                    if name in PSD_FILTERS:  # the other filters have no spectrum model
                        outputs, params = spectrum_outputs(test, kind, progress)
                        yield MethodOutput(name, "", kind, params, outputs)
                elif kind == "oracle":
                    yield _oracle(test, name, grids.get(name), workers, progress)
                elif kind == "blind-sigma":
                    yield _blind_sigma(test, name, workers, progress)
                else:
                    yield _blind(test, name, grids.get(name), kind, pairs[kind], workers, progress)

    return outputs()


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
    outputs, seconds = _timed_filter(test.inputs, name, result.best_params, 1)
    shown = [{**p, "seconds_per_image": seconds} for p in result.best_params]
    return MethodOutput(name, "", "oracle", shown, outputs)


def _blind_sigma(test: TestSet, name: str, workers: int, progress) -> MethodOutput:
    sigma = test.noise_sigma_estimate()
    counter = StageCounter(progress, f"{name} blind-sigma", len(test.inputs))
    counter.advance(0)
    params = [params_from_sigma(name, s) for s in sigma]
    outputs, seconds = _timed_filter(test.inputs, name, params, workers)
    counter.advance(len(outputs))
    sigma_from = "pair" if test.noisy.shape[1] > 1 else "single-image"
    shown = [{**p, "sigma_from": sigma_from, "seconds_per_image": seconds} for p in params]
    return MethodOutput(name, "", "blind-sigma", shown, outputs)


def _blind(
    test: TestSet, name: str, grid, tuning: str, blind_pair, workers: int, progress
) -> MethodOutput:
    train_noisy, target, target_kind = blind_pair
    counter = StageCounter(progress, f"{name} {tuning}", len(test.inputs))
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
    outputs, seconds = _timed_filter(test.inputs, name, blind.params, workers)
    counter.advance(len(outputs))
    params = {
        **blind.params,
        "tuned_on": f"train:{target_kind}",
        "n_train": blind.n_images,
        "seconds_per_image": seconds,
    }
    return MethodOutput(name, "", tuning, [params] * len(outputs), outputs)


def _timed_filter(images: np.ndarray, name: str, params, threads: int) -> tuple[np.ndarray, float]:
    """The filter over the test inputs, and its wall time per image in seconds (4 digits)."""
    started = time.perf_counter()
    outputs = apply_filter(images, name, params, threads=threads)
    return outputs, round((time.perf_counter() - started) / len(images), 4)
