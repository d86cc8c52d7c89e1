"""Choosing filter parameters: per-image oracle search (the paper's protocol) and blind tuning.

*Oracle* (:func:`tune_oracle`): for every test image the setting with the highest PSNR against
that image's clean reference, as the paper did ("the best setting was determined image by
image"). It uses clean test images, so it flatters the filters; results say ``oracle``.

*Blind* (:func:`tune_blind_pairs`, kind ``"blind"``): one setting per dataset chosen from noisy
training pairs only, no clean image anywhere. With ``y_k = x + n_k`` (independent, zero-mean
noise), ``E|f(y1) - y2|^2 = E|f(y1) - x|^2 + sigma^2``, so per training image ``i``::

    uMSE_i = mean((f(y1_i) - y2_i)^2) - sigma_hat_i^2,   sigma_hat_i^2 = Var(y1_i - y2_i) / 2

(``core.metrics``: ``unbiased_mse``, ``pair_noise_variance_all_pixels``) is an unbiased
estimate of the filter's MSE against the clean image. The search maximises the uPSNR
``psnr_from_mse(mean_i uMSE_i)`` (as ``-mean uMSE``, which orders settings the same and stays
defined when the estimate dips below zero).

*Blind against clean* (:func:`tune_blind` with ``target_kind="clean"``, kind ``"blind-clean"``):
the same search against clean training images. It reads clean data, so it carries its own label
and is never reported as ``blind``.

All run the generic :func:`lowdose.baselines.search.search` with the filter's plan
(:mod:`lowdose.baselines.plans`); the oracle search spreads images over a process pool
(:mod:`lowdose.baselines.oracle_pool`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lowdose.baselines.filters import apply_filter, get_filter
from lowdose.baselines.oracle_pool import oracle_chunk, oracle_in_pool
from lowdose.baselines.plans import resolve_grid, search_plan
from lowdose.baselines.search import search
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import (
    pair_noise_variance_all_pixels,
    psnr_from_mse,
    unbiased_mse,
    upsnr_from_umse,
)
from lowdose.core.progress import Progress, StageCounter
from lowdose.core.validation import checked_choice

#: target_kind -> the kind label of the result: only the clean-free target is ``"blind"``.
BLIND_KINDS = {"second_realisation": "blind", "clean": "blind-clean"}
TARGET_KINDS = tuple(BLIND_KINDS)


@dataclass(frozen=True)
class TuningResult:
    """Per-image oracle tuning of one filter.

    Attributes
    ----------
    filter_name : str
    kind : str
        Always ``"oracle"``.
    best_params : list of dict
        Best setting per image (length I).
    best_psnr_db : ndarray (I,) float64
        PSNR in dB of each image filtered with its best setting, against its clean image.
    table : list of dict
        Every evaluated point: ``{"image": i, "params": {...}, "psnr_db": float}``.
    """

    filter_name: str
    best_params: list[dict]
    best_psnr_db: np.ndarray
    table: list[dict] = field(repr=False)
    kind: str = "oracle"


@dataclass(frozen=True)
class BlindTuning:
    """One setting for a whole dataset, chosen on training images.

    Attributes
    ----------
    filter_name : str
    params : dict
        The chosen setting.
    target_kind : str
        ``"second_realisation"`` (clean-free) or ``"clean"``: what the outputs were compared with.
    train_psnr_db : float
        Raw ``10 log10(data_range**2 / mean MSE)`` against the target at ``params`` (against a
        noisy target it is below the true PSNR by the target's own noise).
    train_upsnr_db : float
        The maximised objective at ``params``: ``psnr_from_mse(mean uMSE)``, an unbiased
        estimate of the training PSNR against the clean images (NaN if the mean uMSE <= 0).
        Equals ``train_psnr_db`` for a clean target.
    n_images : int
        Training images used.
    table : list of dict
        Every evaluated point: ``{"params": {...}, "mean_mse": float, "psnr_db": float,
        "mean_umse": float, "upsnr_db": float}``.
    kind : str
        ``"blind"`` (noisy pairs only) or ``"blind-clean"`` (read clean training images).
    """

    filter_name: str
    params: dict
    target_kind: str
    train_psnr_db: float
    train_upsnr_db: float
    n_images: int
    table: list[dict] = field(repr=False)
    kind: str = "blind"


def check_pair_stacks(noisy: np.ndarray, target: np.ndarray, what: str) -> None:
    """Raise unless ``noisy`` and ``target`` are equal-shaped, non-empty (B, H, W) stacks."""
    if noisy.ndim != 3 or noisy.shape != target.shape or len(noisy) == 0:
        raise LowdoseInputError(
            f"{what}: noisy {noisy.shape} and target {target.shape} must be equal, "
            "non-empty (B, H, W) stacks"
        )


def tune_oracle(
    noisy,
    clean,
    filter_name: str,
    grid: dict | None = None,
    *,
    data_range: float = 1.0,
    refine_steps: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    stage: str = "oracle tuning",
) -> TuningResult:
    """Best setting per image against its clean reference (the paper's protocol, ``oracle``).

    Parameters
    ----------
    noisy, clean : ndarray (I, H, W) float32 or float64
        Filter inputs and their clean references, same scale.
    filter_name : str
        A key of ``lowdose.baselines.filters.FILTERS``.
    grid : dict name -> values, optional
        Replaces the filter's default grid (missing parameters keep their defaults).
    data_range : float
        PSNR data range (1.0 on the paper's scale).
    refine_steps : int, optional
        Golden-section steps per continuous parameter after the grid (0 = grid only);
        default ``lowdose.baselines.plans.REFINE_STEPS`` for the filter, else 6.
    workers : int
        Processes (1 = in this process).
    progress : Progress, optional
        Called ``progress(stage, images_done, n_images)`` with the absolute count: once with 0
        at the start, then as images (in the pool: chunks of images) finish.
    stage : str
        The stage label passed to ``progress``.

    Returns
    -------
    TuningResult
    """
    noisy, clean = np.asarray(noisy), np.asarray(clean)
    check_pair_stacks(noisy, clean, "tune_oracle")
    get_filter(filter_name)  # unknown names fail here, naming the valid ones
    grid = resolve_grid(filter_name, grid)
    args = (filter_name, grid, search_plan(filter_name, refine_steps), data_range)
    counter = StageCounter(progress, stage, len(noisy))
    counter.advance(0)
    if workers <= 1:
        results = []
        for image, reference in zip(noisy, clean, strict=True):
            results += oracle_chunk(image[None], reference[None], *args)
            counter.advance(1)
    else:
        results = oracle_in_pool(noisy, clean, args, workers, counter)
    table = [
        {"image": i, "params": params, "psnr_db": value}
        for i, (_, _, evaluated) in enumerate(results)
        for params, value in evaluated
    ]
    return TuningResult(
        filter_name=filter_name,
        best_params=[best for best, _, _ in results],
        best_psnr_db=np.array([value for _, value, _ in results], dtype=np.float64),
        table=table,
    )


def _evenly_spaced(stacks: tuple[np.ndarray, ...], max_images: int | None):
    """At most ``max_images`` images, evenly spaced, of each (I, H, W) stack (same indices)."""
    if max_images is None or len(stacks[0]) <= max_images:
        return stacks
    keep = np.linspace(0, len(stacks[0]) - 1, max_images).round().astype(int)
    return tuple(stack[keep] for stack in stacks)


def _blind_search(first, target, noise_variance, filter_name, grid, target_kind, options):
    """Minimise the mean uMSE of ``f(first)`` against ``target`` (``noise_variance`` (I,))."""
    data_range, refine_steps, threads = options
    get_filter(filter_name)  # unknown names fail here, naming the valid ones
    grid = resolve_grid(filter_name, grid)
    mean_variance = float(np.mean(noise_variance))

    def objective(params: dict) -> float:
        out = apply_filter(first, filter_name, params, threads=threads)
        return -float(np.mean(unbiased_mse(target, out, noise_variance=noise_variance)))

    best, value, evaluated = search(objective, grid, **search_plan(filter_name, refine_steps))
    table = []
    for params, negative_umse in evaluated:
        mean_mse = mean_variance - negative_umse
        table.append(
            {
                "params": params,
                "mean_mse": mean_mse,
                "psnr_db": psnr_from_mse(mean_mse, data_range=data_range),
                "mean_umse": -negative_umse,
                "upsnr_db": upsnr_from_umse(-negative_umse, data_range=data_range),
            }
        )
    best_row = next(row for row in table if row["params"] == best)
    return BlindTuning(
        filter_name=filter_name,
        params=best,
        target_kind=target_kind,
        train_psnr_db=best_row["psnr_db"],
        train_upsnr_db=best_row["upsnr_db"],
        n_images=len(first),
        table=table,
        kind=BLIND_KINDS[target_kind],
    )


def tune_blind_pairs(
    train_first,
    train_second,
    filter_name: str,
    grid: dict | None = None,
    *,
    data_range: float = 1.0,
    refine_steps: int | None = None,
    max_images: int | None = 32,
    threads: int = 1,
) -> BlindTuning:
    """One setting for the dataset from noisy training pairs only (kind ``"blind"``).

    Maximises the uPSNR of the module docstring: ``f(train_first)`` against ``train_second``,
    less each pair's noise variance. No clean image is an input.

    Parameters
    ----------
    train_first, train_second : ndarray (I, H, W) float
        Two independent noisy realisations of the same training images, same scale. Never
        test images.
    filter_name, grid, data_range, refine_steps
        As :func:`tune_oracle`.
    max_images : int or None
        Use at most this many training pairs, evenly spaced (None = all).
    threads : int
        Threads that filter the training images (see
        :func:`lowdose.baselines.filters.apply_filter`).

    Returns
    -------
    BlindTuning
        ``kind="blind"``, ``target_kind="second_realisation"``.
    """
    first, second = np.asarray(train_first), np.asarray(train_second)
    check_pair_stacks(first, second, "tune_blind_pairs")
    first, second = _evenly_spaced((first, second), max_images)
    noise_variance = pair_noise_variance_all_pixels(first, second)
    options = (data_range, refine_steps, threads)
    return _blind_search(
        first, second, noise_variance, filter_name, grid, "second_realisation", options
    )


def tune_blind(
    train_noisy,
    train_target,
    filter_name: str,
    grid: dict | None = None,
    *,
    target_kind: str = "second_realisation",
    data_range: float = 1.0,
    refine_steps: int | None = None,
    max_images: int | None = 32,
    threads: int = 1,
) -> BlindTuning:
    """One setting for the dataset, chosen on training images against a target.

    Parameters
    ----------
    train_noisy : ndarray (I, H, W) float
        Training inputs (first noisy realisation). Never test images.
    train_target : ndarray (I, H, W) float
        A second independent realisation of the same images (``"second_realisation"``), or
        their clean images (``"clean"``).
    filter_name, grid, data_range, refine_steps, max_images, threads
        As :func:`tune_blind_pairs`.
    target_kind : {"second_realisation", "clean"}
        ``"second_realisation"`` is :func:`tune_blind_pairs` (kind ``"blind"``); ``"clean"``
        minimises the plain MSE against clean images and is labelled ``"blind-clean"``.

    Returns
    -------
    BlindTuning
    """
    checked_choice(target_kind, "target_kind", TARGET_KINDS)
    options = {"data_range": data_range, "refine_steps": refine_steps, "threads": threads}
    if target_kind == "second_realisation":
        return tune_blind_pairs(
            train_noisy, train_target, filter_name, grid, max_images=max_images, **options
        )
    noisy, clean = np.asarray(train_noisy), np.asarray(train_target)
    check_pair_stacks(noisy, clean, "tune_blind")
    noisy, clean = _evenly_spaced((noisy, clean), max_images)
    return _blind_search(
        noisy, clean, np.zeros(len(noisy)), filter_name, grid, "clean", tuple(options.values())
    )
