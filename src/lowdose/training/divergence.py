"""Stop a run whose model has diverged: nothing after non-finite outputs can be kept.

A model whose validation outputs are not finite scores -inf dB (:mod:`lowdose.training.module`);
its weights hold NaN or inf, and no later step recovers them (Adam's moments are poisoned too),
so the rest of the budget would be spent for nothing. :class:`StopOnDivergence` stops training
at that validation, in one log line. A *finite* collapse counts too: a score more than
:data:`COLLAPSE_DB` below the best validation so far. Measured: the budget recipe's peak rate
(4e-3, width 16) on the four-dose sinogram CT file went from 51.25 dB (step 4,000) to -104 dB
(step 5,000; training loss 2e-5 -> 3e11) and never came back (benchmarks/builtin_models.py
``--max-steps 12000``); the issue's run that ended at 4.91 dB (an all-zero output on that scale)
fits the same picture. ``best.ckpt`` is untouched: the checkpoint callback ranks
-inf below every finite score, so it keeps the best earlier validation, and ``train``'s
:class:`~lowdose.models.validation_scores.ValidationScores` warns when even that one is below
the noisy input.
"""

from __future__ import annotations

import logging
import math

import lightning as L

log = logging.getLogger("lowdose.training.run")

COLLAPSE_DB = 10.0
"""A validation this far below the best one so far is a collapse (dB)."""


def is_divergence(score: float, best_so_far: float | None) -> bool:
    """-inf (non-finite outputs), or more than :data:`COLLAPSE_DB` below ``best_so_far``.

    A NaN score is not a divergence: a uPSNR whose uMSE is <= 0 is undefined, not bad.

    >>> is_divergence(-math.inf, None), is_divergence(41.0, 52.0), is_divergence(45.0, 52.0)
    (True, True, False)
    """
    if score == -math.inf:
        return True
    return best_so_far is not None and math.isfinite(score) and score < best_so_far - COLLAPSE_DB


class StopOnDivergence(L.Callback):
    """Set ``trainer.should_stop`` when the monitored validation score diverged
    (:func:`is_divergence`)."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.stopped_at: int | None = None
        self.best: float | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        score = float(value)
        if not is_divergence(score, self.best):
            if math.isfinite(score):
                self.best = score if self.best is None else max(self.best, score)
            return
        trainer.should_stop = True
        self.stopped_at = trainer.global_step
        log.warning(
            "step %d: %s %.2f dB (best so far %s): training diverged and is stopped; "
            "best.ckpt keeps the best earlier validation (try a lower --lr)",
            trainer.global_step,
            self.monitor,
            score,
            "none" if self.best is None else f"{self.best:.2f} dB",
        )
