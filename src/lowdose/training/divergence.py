"""Stop a run whose model has diverged: nothing after non-finite outputs can be kept.

A model whose validation outputs are not finite scores -inf dB (:mod:`lowdose.training.module`);
its weights hold NaN or inf, and no later step recovers them (Adam's moments are poisoned too),
so the rest of the budget would be spent for nothing. :class:`StopOnDivergence` stops training
at that validation, in one log line. ``best.ckpt`` is untouched: the checkpoint callback ranks
-inf below every finite score, so it keeps the best earlier validation, and ``train``'s
:class:`~lowdose.models.validation_scores.ValidationScores` warns when even that one is below
the noisy input.
"""

from __future__ import annotations

import logging
import math

import lightning as L

log = logging.getLogger("lowdose.training.run")


class StopOnDivergence(L.Callback):
    """Set ``trainer.should_stop`` when the monitored validation score is -inf (diverged).

    A NaN score is not a divergence: a uPSNR whose uMSE is <= 0 is undefined, not bad.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.stopped_at: int | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or score is None or float(score) != -math.inf:
            return
        trainer.should_stop = True
        self.stopped_at = trainer.global_step
        log.warning(
            "step %d: the model's outputs are not finite (%s -inf dB): training diverged and is "
            "stopped; best.ckpt keeps the best earlier validation (try a lower --lr)",
            trainer.global_step,
            self.monitor,
        )
