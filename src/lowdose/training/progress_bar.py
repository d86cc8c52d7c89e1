"""The training progress bar: one line per epoch, metrics beside the bar, within 80 columns.

Lightning's ``RichProgressBar`` draws every logged metric after the bar (``train_loss_step:
0.066 samples_s: 26.878 val_psnr_db: 7.625 val_upsnr_db: 7.624 train_loss_epoch: 0.118``); at
80 columns that column wraps into a tower of fragments below the bar. :class:`EpochProgressBar`
shows the two numbers a person follows, on the bar's own line::

    Epoch 3/9  ━━━━━━━━━━━━ 40/64 eta 0:00:06 loss 0.0123  uPSNR 31.52 dB

``loss`` is the last step's training loss, the score is the validation metric that selects
``best.ckpt`` (the module's ``monitor``: ``uPSNR`` for ``val_upsnr_db``, ``PSNR`` for
``val_psnr_db``; dB when its name ends in ``_db``), from the last validation. Each finished epoch
stays on screen as one such line (``leave=True``), with its time instead of the ETA. Every
logged metric is still in ``metrics.csv`` and the log lines; this is only what the bar shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import (
    BatchesProcessedColumn,
    CustomBarColumn,
)
from rich import get_console
from rich.progress import ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

SHORT_NAMES = {"val_upsnr_db": "uPSNR", "val_psnr_db": "PSNR", "val_pair_db": "pair PSNR"}
"""How the bar names a monitored metric; others lose their ``val_`` prefix and ``_db`` suffix."""
TEXT_WIDTH = 68
"""Columns of everything but the bar at its widest ("Epoch 99/99", "9999/9999", an ETA, the
metrics with a 9-character loss and a negative PSNR, the gaps between columns)."""


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar with one line per epoch that fits the terminal's width.

    Parameters
    ----------
    leave : bool
        Keep each finished epoch's line on screen (default, as lowdose training always did).
    **kwargs
        Passed to ``lightning.pytorch.callbacks.RichProgressBar`` (``refresh_rate``, ``theme``,
        ``console_kwargs``).
    """

    def __init__(self, *, leave: bool = True, **kwargs) -> None:
        super().__init__(leave=leave, **kwargs)
        self.summary = ""

    def configure_columns(self, trainer: L.Trainer) -> list:
        """Description, bar, batches, ETA and :attr:`summary`; all one line, never wrapped."""
        width = get_console().width  # the console Lightning draws on (console_kwargs apply)
        return [
            TextColumn("[progress.description]{task.description}", table_column=_one_line()),
            CustomBarColumn(
                bar_width=min(30, max(6, width - TEXT_WIDTH)),
                complete_style=self.theme.progress_bar,
                finished_style=self.theme.progress_bar_finished,
                pulse_style=self.theme.progress_bar_pulse,
            ),
            BatchesProcessedColumn(style=self.theme.batch_progress),
            _TimeColumn(style=self.theme.time),
            _SummaryColumn(self, style=self.theme.metrics),
        ]

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        """Keep the bar's :attr:`summary` of the logged metrics; return none for Lightning's
        own metrics column (the one that wraps), which then stays empty."""
        metrics = super().get_metrics(trainer, pl_module)
        self.summary = metrics_summary(metrics, monitor=getattr(pl_module, "monitor", None))
        return {}


def metrics_summary(metrics: Mapping[str, object], *, monitor: str | None) -> str:
    """The bar's text: the last step's loss and the monitored validation score.

    Parameters
    ----------
    metrics : mapping
        Lightning's progress-bar metrics (``train_loss_step``, ``val_upsnr_db`` ...), floats.
    monitor : str or None
        The metric that selects ``best.ckpt``; ``None`` shows the first of :data:`SHORT_NAMES`
        that was logged.

    Examples
    --------
    >>> metrics_summary({"train_loss_step": 0.01234, "val_upsnr_db": 31.518, "samples_s": 27.0},
    ...                 monitor="val_upsnr_db")
    'loss 0.01234  uPSNR 31.52 dB'
    >>> metrics_summary({"train_loss_step": 0.2}, monitor="val_upsnr_db")  # not validated yet
    'loss 0.2'
    """
    parts = []
    loss = metrics.get("train_loss_step", metrics.get("train_loss"))
    if isinstance(loss, int | float):
        parts.append(f"loss {loss:.4g}")
    names = [monitor] if monitor else list(SHORT_NAMES)
    name = next((n for n in names if isinstance(metrics.get(n), int | float)), None)
    if name is not None:
        label = SHORT_NAMES.get(name, name.removeprefix("val_").removesuffix("_db"))
        unit = " dB" if name.endswith("_db") else ""
        parts.append(f"{label} {metrics[name]:.2f}{unit}")
    return "  ".join(parts)


def _one_line() -> Column:
    # Cropped, never wrapped, when a terminal is narrower than the layout above.
    return Column(no_wrap=True, overflow="ellipsis")


class _SummaryColumn(ProgressColumn):
    """The bar's :attr:`EpochProgressBar.summary`, on the training bar's line only."""

    def __init__(self, bar: EpochProgressBar, style) -> None:
        self.bar, self.style = bar, style
        super().__init__(table_column=_one_line())

    def render(self, task: Task) -> Text:
        if task.id != self.bar.train_progress_bar_id:
            return Text("")
        return Text(self.bar.summary, style=self.style)


class _TimeColumn(ProgressColumn):
    """``"eta 0:00:06"`` while an epoch runs, the time it took (``"0:00:17"``) once done."""

    max_refresh = 0.5  # an ETA that changes every frame cannot be read

    def __init__(self, style) -> None:
        self.style = style
        super().__init__(table_column=_one_line())

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text(_clock(task.finished_time), style=self.style)
        return Text(f"eta {_clock(task.time_remaining)}", style=self.style)


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(seconds)))
