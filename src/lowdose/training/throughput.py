"""The throughput probe of the budgeted recipe: optimiser steps and forward pixels per second.

:func:`measure_throughput` times a few training steps (forward, backward, Adam) and forward passes
of a U-Net on random patches, after warm-up steps, on the threads and device the run will use;
:mod:`lowdose.training.budget` turns the rates into a width and a step count.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.nn import functional as F

from lowdose.models.unet import UNet
from lowdose.training.objectives import OBJECTIVES


@dataclasses.dataclass(frozen=True)
class Throughput:
    """One probed width: optimiser steps/s, forward pixels/s (for validation), probe seconds."""

    steps_per_s: float
    forward_pixels_per_s: float
    seconds: float


Probe = Callable[..., Throughput]


def measure_throughput(
    width: int,
    *,
    mode: str = "n2n",
    patch: int = 64,
    batch_size: int = 16,
    residual: bool = True,
    channels_last: bool = False,
    device: str = "cpu",
    warmup_steps: int = 5,
    min_seconds: float = 2.0,
    max_timed_steps: int = 200,
) -> Throughput:
    """Time training steps and forward passes of a width-``width`` U-Net on random patches.

    Runs on the torch threads set now (``torch.set_num_threads``) and on ``device``; at least
    two timed steps after ``warmup_steps``, then more until ``min_seconds`` (at most
    ``max_timed_steps``). The global RNG is left as it was (the run's seed is not disturbed).
    """
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = UNet(width=width, residual=residual).to(device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 1, patch, patch)
    batch = tuple(
        torch.rand(shape, generator=generator).to(device, memory_format=memory) for _ in range(2)
    )
    objective = partial(OBJECTIVES[mode], distance=F.mse_loss)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        objective(model, batch, generator).backward()
        optimizer.step()

    steps_per_s = _rate(step, warmup_steps, min_seconds, max_timed_steps, device)
    with torch.no_grad():
        forwards_per_s = _rate(lambda: model(batch[0]), 1, min_seconds / 4, 5, device)
    return Throughput(
        steps_per_s, forwards_per_s * batch_size * patch * patch, time.perf_counter() - start
    )


def _rate(call, warmup: int, min_seconds: float, max_calls: int, device: str) -> float:
    """Calls per second of ``call`` after ``warmup`` untimed calls (GPU work waited for)."""
    synchronise = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    for _ in range(warmup):
        call()
    synchronise()
    start, calls = time.perf_counter(), 0
    while calls < 2 or (time.perf_counter() - start < min_seconds and calls < max_calls):
        call()
        synchronise()
        calls += 1
    return calls / (time.perf_counter() - start)
