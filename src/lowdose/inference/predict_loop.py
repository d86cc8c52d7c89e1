"""Many series on one or many devices through Lightning's predict loop, one series at a time.

The units of a denoising job (one DICOM series or one file each,
:mod:`lowdose.inference.work_plan`) are the items of a Lightning predict loop: a
:class:`SeriesDenoiser` reads, denoises and writes one whole unit per ``predict_step`` on the
device Lightning placed it on, and returns nothing, so memory holds one series whatever the number
of series. With ``devices`` > 1 and a distributed ``strategy`` (``ddp`` on GPUs, ``ddp_spawn``
on CPU processes) Lightning gives each process its own share of the units (its predict sampler
never repeats a unit), the same engine ``lowdose train`` uses — no process pool of our own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from lowdose.core.quiet_libraries import quiet_libraries

UnitWork = Callable[[Any, str], None]
"""``work(unit, device)``: read, denoise on ``device`` and write one unit."""


class SeriesDenoiser(L.LightningModule):
    """The network as a Lightning module whose ``predict_step`` processes one unit.

    Parameters
    ----------
    network : torch.nn.Module
        The trained denoiser (moved to the device by Lightning).
    work : UnitWork
        Does the unit's work given the device Lightning chose (picklable for ``ddp_spawn``).
    """

    def __init__(self, network: nn.Module, work: UnitWork, units: Sequence) -> None:
        super().__init__()
        self.network = network
        self.work = work
        self.units = list(units)

    def predict_step(self, position: int, batch_idx: int) -> None:
        # the loader yields positions: Lightning would try to move a unit's fields to the device
        self.work(self.units[int(position)], str(self.device))


def run_units(
    network: nn.Module,
    units: Sequence,
    work: UnitWork,
    *,
    accelerator: str = "cpu",
    devices: int | list[int] = 1,
    strategy: str = "auto",
) -> None:
    """Process every unit once through ``Trainer.predict``.

    Parameters
    ----------
    network : torch.nn.Module
        Held by the module so that Lightning places it (the work uses its own copy per unit).
    units : sequence
        The job's units, in order; each is passed to ``work`` as it is.
    work : UnitWork
        See :class:`SeriesDenoiser`.
    accelerator : str
        ``cpu`` or ``gpu`` (Lightning's names).
    devices : int or list of int
        How many devices, or which GPUs.
    strategy : str
        Lightning strategy: ``auto`` for one device, ``ddp`` / ``ddp_spawn`` for several.
    """
    if not units:
        return
    loader = torch.utils.data.DataLoader(
        _Positions(len(units)), batch_size=None, collate_fn=_as_is, num_workers=0
    )
    with quiet_libraries():  # the hardware banner: denoising is not a training run
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=devices,
            strategy=_strategy(strategy, accelerator),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            inference_mode=True,
        )
    with quiet_libraries(), warnings.catch_warnings():
        # the step writes files and returns nothing on purpose
        warnings.filterwarnings("ignore", message=".*predict returned None.*")
        trainer.predict(
            SeriesDenoiser(network, work, units), dataloaders=loader, return_predictions=False
        )


def _strategy(strategy: str, accelerator: str):
    if strategy in ("ddp", "ddp_spawn") and accelerator == "cpu":
        from lightning.pytorch.strategies import DDPStrategy

        # NCCL is GPU-only: CPU processes talk through gloo
        return DDPStrategy(process_group_backend="gloo", start_method=_start_method(strategy))
    return strategy


def _start_method(strategy: str) -> str:
    return "spawn" if strategy == "ddp_spawn" else "popen"


class _Positions(torch.utils.data.Dataset):
    """Unit positions as a map-style dataset (Lightning's predict sampler splits it by rank)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


def _as_is(position: int) -> int:
    """No collation: a position stays a plain int."""
    return position
