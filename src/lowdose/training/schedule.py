"""The step plan of a cosine run: its epochs, its learning rate, and the rule that re-plans it.

A run with ``max_steps`` takes epochs of equal length that end exactly at ``max_steps``
(:func:`lowdose.training.config.steps_between_validations`), and its rate follows
:func:`cosine_lr`. A ``--budget`` run plans ``max_steps`` from a throughput probe before
training (:mod:`lowdose.training.budget`), but the probe's rate is not the loop's: runs planned
from probes of 2.5-5.5 steps/s ran at 5.2-5.7 and trained 50-101 % of their budget. So the loop
re-plans itself from its own measured rate (:mod:`lowdose.training.replan`, rule
:func:`replan_steps`), at epoch ends, where a run has just validated and may change course.

A plan is a list of **segments** ``(start_step, steps_per_epoch, max_steps)``: from
``start_step`` on, the run takes epochs of ``steps_per_epoch`` steps and anneals to
``max_steps``. A plan never re-planned is one segment ``(0, L, max_steps)``; a re-plan at the
epoch end at step ``s`` appends ``(s, L', T')`` (and ``T' = s``: stop now). Only the last
segment's ``max_steps`` is reached; ``config.yaml`` keeps every segment (``step_plan``), so a
rerun or a resume repeats the same epochs and rates bit for bit.

The cosine's **progress** (0 when warm-up ends, 1 at ``max_steps``) is piecewise linear in the
step: each segment continues from the progress the previous one had reached at its start and
runs linearly to 1 at its own ``max_steps``. The rate is therefore continuous across a re-plan
(no jump; only the pace of the annealing changes), the cosine still ends at ``lr *
final_fraction`` on the last step, and a plan of one segment gives exactly the classic cosine.

Why re-plan in steps rather than schedule by elapsed time: a schedule in steps is a function of
the step alone, so a resume repeats it exactly, a rerun from ``config.yaml`` reproduces the run
on any machine, and the last epoch still ends on a validation of the final (annealed) weights;
a schedule in seconds would tie the weights to the load of the machine during the run. What
steps give up (a load that arrives inside the last epoch is only caught at its end) the
``max_time`` guard bounds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

Segment = tuple[int, int, int]
"""``(start_step, steps_per_epoch, max_steps)`` of one stretch of a plan."""

REPLAN_SAFETY = 0.97  # of the time left: the measured rate already includes data and logging


def cosine_lr(
    step: int,
    *,
    lr: float,
    warmup_steps: int,
    max_steps: int,
    final_fraction: float,
    segments: Sequence[Segment] | None = None,
) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then cosine annealing.

    ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps`` (the plateau recipe's warm-up);
    afterwards ``lr_end + (lr - lr_end) * (1 + cos(pi * t)) / 2`` with ``lr_end = lr *
    final_fraction`` and ``t = (step - warmup_steps) / (max_steps - warmup_steps)`` clipped to
    [0, 1], so the rate is ``lr`` when warm-up ends and exactly ``lr_end`` at ``max_steps`` (the
    last step taken, ``max_steps - 1``, is a hair above it). With re-planned ``segments``, ``t``
    is :func:`progress` of the plan (``max_steps`` is then its last segment's).

    >>> cosine_lr(5, lr=1e-3, warmup_steps=0, max_steps=10, final_fraction=0.01)
    0.000505
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = progress(step, warmup_steps, segments or [(0, 1, max_steps)])
    final = lr * final_fraction
    return final + (lr - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def progress(step: int, warmup_steps: int, segments: Sequence[Segment]) -> float:
    """The cosine's progress in [0, 1] at ``step``: piecewise linear over the plan's segments.

    >>> progress(50, 0, [(0, 10, 100)]), progress(50, 0, [(0, 10, 100), (40, 20, 200)])
    (0.5, 0.4375)
    """
    reached = 0.0
    for index, (start, _, total) in enumerate(segments):
        anchor = max(start, warmup_steps)
        end = segments[index + 1][0] if index + 1 < len(segments) else None
        if end is None or step < end:
            return _linear(step, anchor, reached, total)
        reached = _linear(end, anchor, reached, total)
    return reached  # no segment (not reached: callers pass at least one)


def _linear(step: int, anchor: int, reached: float, total: int) -> float:
    """From ``reached`` at ``anchor`` linearly to 1 at ``total``, clipped to [reached, 1]."""
    if step <= anchor:
        return reached
    return min(1.0, reached + (1.0 - reached) * (step - anchor) / max(1, total - anchor))


def epoch_steps(segments: Sequence[Segment]) -> list[int]:
    """Steps of every epoch of the plan, in order (their sum is the last ``max_steps``).

    >>> epoch_steps([(0, 10, 120), (30, 25, 130)])
    [10, 10, 10, 25, 25, 25, 25]
    """
    lengths: list[int] = []
    for index, (start, per_epoch, total) in enumerate(segments):
        end = segments[index + 1][0] if index + 1 < len(segments) else total
        lengths += [per_epoch] * ((end - start) // per_epoch)
    return lengths


def check_plan(segments: Sequence[Segment]) -> None:
    """Raise ``ValueError`` (one line) unless every segment starts at an epoch end of the last.

    The first starts at step 0; each has ``steps_per_epoch >= 1`` and ``max_steps - start_step``
    a multiple of it (``max_steps == start_step`` only for the last: a stop); the next starts
    after it, at one of its epoch ends, before its ``max_steps``.
    """
    if not segments or segments[0][0] != 0:
        raise ValueError("step_plan must start with a segment at step 0")
    for index, (start, per_epoch, total) in enumerate(segments):
        last = index == len(segments) - 1
        if per_epoch < 1 or total < start + (0 if last else 1) or (total - start) % per_epoch:
            raise ValueError(
                f"step_plan segment {index} {[start, per_epoch, total]}: max_steps - "
                "start_step must be a positive multiple of steps_per_epoch"
            )
        if not last:
            following = segments[index + 1][0]
            if not start < following <= total or (following - start) % per_epoch:
                raise ValueError(
                    f"step_plan segment {index + 1} must start at an epoch end "
                    f"of segment {index} (got step {following})"
                )


@dataclasses.dataclass(frozen=True)
class Replan:
    """What :func:`replan_steps` decides: the new total, its epoch length and epoch count."""

    max_steps: int
    steps_per_epoch: int
    epochs: int


def replan_steps(
    *,
    step: int,
    steps_per_s: float,
    time_left_s: float,
    epoch_overhead_s: float,
    validations_left: int,
    safety: float = REPLAN_SAFETY,
) -> Replan:
    """The steps a run at the epoch end ``step`` can still take in ``time_left_s`` seconds.

    Parameters
    ----------
    step
        Optimiser steps done (an epoch end).
    steps_per_s
        The training loop's measured rate (data, logging and progress included).
    time_left_s
        Seconds until the budget ends, less what follows the last epoch (final checkpoints,
        the validity range, the manifest).
    epoch_overhead_s
        Seconds each further epoch costs beyond its steps: its validation, checkpoint writes and
        the start of the next epoch.
    validations_left
        Epochs wanted for the rest (each ends with a validation); fewer when time is short.

    Returns
    -------
    Replan
        ``max_steps = step + epochs * steps_per_epoch``, the largest that fits
        ``(max_steps - step) / steps_per_s + epochs * epoch_overhead_s <= safety * time_left_s``
        with the most epochs up to ``validations_left``; ``Replan(step, 1, 0)`` (stop now)
        when not even one step and one validation fit.

    >>> replan_steps(step=100, steps_per_s=5.0, time_left_s=100.0, epoch_overhead_s=1.0,
    ...              validations_left=4)
    Replan(max_steps=564, steps_per_epoch=116, epochs=4)
    """
    usable_s = safety * time_left_s
    for epochs in range(max(1, validations_left), 0, -1):
        steps = math.floor(steps_per_s * (usable_s - epochs * epoch_overhead_s))
        if steps >= epochs:
            per_epoch = steps // epochs
            return Replan(step + epochs * per_epoch, per_epoch, epochs)
    return Replan(step, 1, 0)


def with_segment(segments: Sequence[Segment], segment: Segment) -> list[Segment]:
    """``segments`` with ``segment`` appended (replacing any that start at or after it)."""
    kept = [old for old in segments if old[0] < segment[0]]
    return [*kept, segment]
