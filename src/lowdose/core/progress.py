"""The one progress protocol of lowdose's long functions.

Library code never prints: a long function (dataset builders, filter tuning, evaluation, sweeps,
tiled inference, reproduce) takes ``progress: Progress | None`` and calls it as work finishes;
the command line turns the calls into progress bars (``lowdose.cli._app.stage_progress``), tests
pass a list's ``append``-like recorder, and ``None`` means silence.

``progress(stage, done, total)``: ``stage`` is a short label for people (one bar per label, at
most ~22 characters so a bar fits 80 columns), ``done`` the number of items finished so far in
that stage (absolute, never an increment: a repeated call is harmless; never above ``total``),
``total`` the number the stage will finish. A label may be used again for a second round of the
same work (the evaluation labels each model's bar by its mode and loss, so every training seed's
model of one mode starts it again from 0): a ``done`` below the last one starts a new round, which
the command line shows as a bar of its own (``"n2n-mse (2)"``) rather than counting one round's
items against another's total. :class:`StageCounter` keeps the count for code that finishes items
one chunk at a time.

Free-text status lines (a sweep level's input PSNR, a stage being skipped because its result is
cached) go through a :data:`Log` callable instead.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

Log = Callable[[str], None]
"""One line of status text for people (``print``, or the CLI console's ``print``)."""


class Progress(Protocol):
    """``progress(stage, done, total)``: ``done`` of ``total`` items of ``stage`` are finished."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


ProgressScope = Callable[[], AbstractContextManager["Progress | None"]]
"""A factory of progress scopes: ``with scope() as progress:`` yields a :class:`Progress` (bars
shown while the block runs) or ``None``. The CLI passes ``lowdose.cli._app.stage_progress``;
library code that runs several long stages (``reproduce``) takes one."""


def no_progress() -> AbstractContextManager[None]:
    """The silent :data:`ProgressScope`: yields ``None``."""
    return nullcontext(None)


class StageCounter:
    """Counts finished items of one stage and reports the running total to a :class:`Progress`.

    Parameters
    ----------
    progress
        Where to report; ``None`` makes :meth:`advance` only count.
    stage
        The stage label.
    total
        Items the stage will finish.

    Examples
    --------
    >>> calls = []
    >>> counter = StageCounter(lambda *a: calls.append(a), "filtering", 3)
    >>> counter.advance(2); counter.advance()
    >>> calls
    [('filtering', 2, 3), ('filtering', 3, 3)]
    """

    def __init__(self, progress: Progress | None, stage: str, total: int) -> None:
        self.progress = progress
        self.stage = stage
        self.total = int(total)
        self.done = 0

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more items finished and report the running total."""
        self.done += int(n)
        if self.progress is not None:
            self.progress(self.stage, self.done, self.total)
