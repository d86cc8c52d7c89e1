"""An exponential moving average (EMA) of the network weights, validated and saved in their place.

With ``ema_decay`` set (``lowdose train --ema-decay 0.999``; the budgeted recipe sets it) the
trainer keeps ``theta_ema <- d_t theta_ema + (1 - d_t) theta`` after every optimiser step, with
the warm-up ``d_t = min(ema_decay, (1 + t) / (10 + t))`` (t = averaged steps so far) so the
average is not anchored to the random initial weights in a short run. Lightning's
:class:`~lightning.pytorch.callbacks.WeightAveraging` swaps the average in for every validation
and writes it into each checkpoint's ``state_dict`` (the raw weights go to
``current_model_state``), so ``best.ckpt`` selection, ``lowdose denoise`` and evaluation all use
the averaged weights, and a resumed run restores both.

Why: at the learning rates that train fastest per CPU-second the raw Adam iterate jitters around
the minimum; its running average denoises better than any single iterate at no extra training
cost (measured in docs/results.md, "The CPU-budgeted recipe, measured per CPU-second").
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging


def ema_average(decay: float):
    """``avg_fn`` for :class:`torch.optim.swa_utils.AveragedModel`: EMA with a 10-step warm-up."""

    def average(averaged: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor):
        step_decay = min(decay, (1.0 + float(n_averaged)) / (10.0 + float(n_averaged)))
        return averaged + (current - averaged) * (1.0 - step_decay)

    return average


class EMAWeights(WeightAveraging):
    """:class:`WeightAveraging` with :func:`ema_average` (buffers too: the U-Net has none)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        super().__init__(avg_fn=ema_average(decay), use_buffers=True)
        self.decay = decay
