"""The typer application objects and the error boundary every command goes through."""

from __future__ import annotations

import collections
import contextlib
import errno
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import rich.progress
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column
from rich.text import Text

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.core.quiet_libraries import quiet_libraries

app = typer.Typer(
    help="lowdose: train and compare X-ray/CT denoisers without clean data (Noise2Noise).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
simulate_app = typer.Typer(help="Build HDF5 datasets: clean images and N noisy realisations.")
dataset_app = typer.Typer(help="Build HDF5 datasets from your own noisy data (no clean images).")
app.add_typer(simulate_app, name="simulate")
app.add_typer(dataset_app, name="dataset")

console = Console(stderr=True)

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# Kernel filesystems: creating a file there fails with ENOENT (/proc) or EPERM (/sys), even as root.
_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"))
STAGE_WIDTH = 22
"""Columns of a stage label in :func:`stage_progress` (see :mod:`lowdose.core.progress`)."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Run a command: bad input becomes one red line and a non-zero exit, never a traceback.

    ``LowdoseInputError`` exits 1 with its message. An ``OSError`` exits 1 with a line that names
    the file and what to do (:func:`os_error_line`), or 2 for a full disk. The line is never
    wrapped, whatever the terminal's width. While the command runs, third-party announcements
    and deprecation warnings are muted
    (:func:`lowdose.core.quiet_libraries.quiet_libraries`).
    """
    try:
        with quiet_libraries():
            yield
    except LowdoseInputError as exc:
        raise _fail(str(exc), code=1) from None
    except OSError as exc:
        line, code = os_error_line(exc)
        raise _fail(line, code=code) from None


def warn_line(line: str) -> None:
    """Print one yellow ``warning:`` line, markup escaped and never wrapped."""
    console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def _fail(message: str, *, code: int) -> typer.Exit:
    # A message from a library may span lines; the error stays one line (and is not markup).
    line = " ".join(message.split())
    console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def os_error_line(exc: OSError) -> tuple[str, int]:
    """The one-line message and exit code for an ``OSError`` that reached the command line.

    Parameters
    ----------
    exc : OSError
        With ``errno`` and ``filename`` as the OS set them (``filename2``, the target of a
        rename, is preferred: :func:`lowdose.core.atomic.atomic_path` renames onto the output).

    Returns
    -------
    line : str
        ``"disk full while writing OUT: ..."`` (exit code 2); ``"cannot write OUT: read-only
        location; choose another --out"`` for permission errors and for paths under ``/proc`` or
        ``/sys`` (where nothing can be created); ``"cannot read IN: permission denied; ..."``;
        ``"PATH: no such file or folder; check the path"``; otherwise ``"PATH: <the OS's
        reason>"``.
    code : int
        2 for a full disk, else 1.
    """
    name = exc.filename2 or exc.filename
    path = Path(os.fsdecode(name)) if name is not None else None
    if exc.errno in _DISK_FULL:
        where = path or "the output"
        return (
            f"disk full while writing {where}: free space or choose another --out; nothing "
            "partial was kept",
            2,
        )
    reason = exc.strerror or str(exc)
    if path is None:
        return reason, 1
    if exc.errno in _DENIED and path.is_file() and not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied; make it readable or pass another file", 1
    if exc.errno in _DENIED or (exc.errno == errno.ENOENT and _on_pseudo_filesystem(path)):
        # A hidden name is a writer's temporary file or folder (mkstemp, mkdtemp) beside the
        # output: the folder it could not be made in is what the user can change.
        where = path.parent if path.name.startswith(".") else path
        return f"cannot write {where}: read-only location; choose another --out", 1
    if exc.errno == errno.ENOENT:
        return f"{path}: no such file or folder; check the path", 1
    return f"{path}: {reason}", 1


def _on_pseudo_filesystem(path: Path) -> bool:
    # Elsewhere a folder that cannot be made fails with EACCES or EROFS; ENOENT is a missing input.
    return any(path.absolute().is_relative_to(root) for root in _PSEUDO_FILESYSTEMS)


def check_out_writable(path: str | os.PathLike, option: str = "--out") -> None:
    """Raise unless files can be created at ``path``, before any long work starts.

    Parameters
    ----------
    path
        An output file or folder, existing or not.
    option
        The option that named it, for the message (``"--out"``).

    Raises
    ------
    LowdoseInputError
        ``"cannot write PATH: read-only location; choose another --out"`` (or the OS's reason):
        a temporary file in the nearest existing folder (removed at once) could not be created.
    """
    target = Path(path)
    folder = next(p for p in (target.absolute(), *target.absolute().parents) if p.exists())
    if not folder.is_dir():
        if folder != target.absolute():  # nothing can be made below a file
            raise LowdoseInputError(
                f"cannot write {target}: {folder} is a file; choose another {option}"
            )
        folder = folder.parent  # an existing output file, to be replaced
    try:
        handle, probe = tempfile.mkstemp(prefix=".lowdose-probe-", dir=folder)
    except OSError as exc:
        denied = exc.errno in _DENIED or exc.errno == errno.ENOENT
        reason = "read-only location" if denied else (exc.strerror or str(exc))
        raise LowdoseInputError(
            f"cannot write {target}: {reason}; choose another {option}"
        ) from None
    os.close(handle)
    os.unlink(probe)


def check_positive_options(values: Mapping[str, float | None]) -> None:
    """Raise for the first option (name -> value, ``None``: not given) that is not a finite > 0.

    Examples
    --------
    >>> check_positive_options({"--photons": None, "--size": 64})
    >>> check_positive_options({"--photons": -5.0})
    Traceback (most recent call last):
    ...
    lowdose.core.errors.LowdoseInputError: --photons -5: pass a number > 0
    """
    for option, value in values.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise LowdoseInputError(f"{option} {value:g}: pass a number > 0")


@contextlib.contextmanager
def stage_progress(unit: str = "img") -> Iterator[Progress]:
    """Rich progress bars, one per stage, that fit 80 columns: a :data:`ProgressScope`.

    Yields the :class:`lowdose.core.progress.Progress` callback ``progress(stage, done, total)``
    that the library's long functions take (builders, evaluate, sweep, denoise), so that they
    never print themselves; ``done`` is the number finished so far. Each bar is one line:
    the stage (:data:`STAGE_WIDTH` columns), the bar, ``done/total``, the rate in ``unit`` per
    second and the time left (the time taken, once done). A stage whose count starts again
    (``done`` below its last value: the same label for the next seed's model) gets a bar of its
    own, ``"label (2)"``, so no bar counts one round's items against another round's total.
    Nothing is drawn until the first call.
    """
    bar_width = min(40, max(8, console.width - 67))  # 67 columns: the widest text beside the bar
    columns = (
        rich.progress.TextColumn(
            f"{{task.description:{STAGE_WIDTH}.{STAGE_WIDTH}s}}", table_column=_fixed()
        ),
        rich.progress.BarColumn(bar_width=bar_width),
        rich.progress.MofNCompleteColumn(table_column=_fixed()),
        _RateColumn(unit, table_column=_fixed()),
        _TimeColumn(table_column=_fixed()),
    )
    bars = rich.progress.Progress(*columns, console=console)
    current: dict[str, tuple[rich.progress.TaskID, int]] = {}  # label -> (bar, last done)
    rounds: collections.Counter[str] = collections.Counter()

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in current or done < current[stage][1]:
            rounds[stage] += 1
            suffix = f" ({rounds[stage]})" if rounds[stage] > 1 else ""
            label = stage[: STAGE_WIDTH - len(suffix)] + suffix
            bars.start()  # no-op once started
            current[stage] = (bars.add_task(label, total=total), done)
        task = current[stage][0]
        bars.update(task, completed=done, total=total)
        current[stage] = (task, done)

    try:
        yield progress
    finally:
        if bars.live.is_started:  # rich prints a blank line on stop, drawn or not
            bars.stop()


def _fixed() -> Column:
    # Cropped, never wrapped: a bar is one line even when a terminal is narrower than planned.
    return Column(no_wrap=True, overflow="ellipsis")


class _RateColumn(rich.progress.ProgressColumn):
    """Items per second, e.g. ``"95 img/s"`` (blank until rich has a speed)."""

    def __init__(self, unit: str, table_column: Column | None = None) -> None:
        self.unit = unit
        super().__init__(table_column=table_column)

    def render(self, task: rich.progress.Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("")
        rate = f"{speed:.0f}" if speed >= 10 else f"{speed:.2g}"
        return Text(f"{rate} {self.unit}/s", style="progress.data.speed")


class _TimeColumn(rich.progress.ProgressColumn):
    """``"eta 0:01:02"`` while a stage runs, the time it took (``"0:00:12"``) once it is done."""

    max_refresh = 0.5  # an ETA that changes every frame cannot be read

    def render(self, task: rich.progress.Task) -> Text:
        if task.finished:
            return Text(_clock(task.finished_time), style="progress.elapsed")
        left = task.time_remaining
        return Text(f"eta {_clock(left)}", style="progress.remaining")


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=int(seconds)))


def parse_range(text: str, option: str, example: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` -> (low, high); a malformed value is a one-line error naming the option."""
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise LowdoseInputError(f"{option} {text!r}: write LOW:HIGH, e.g. {example}") from None
    return low, high


def parse_fractions(text: str) -> tuple[float, ...]:
    """``--fractions "0.8,0.1,0.1"`` -> (train, val, test); one error line for anything else."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise LowdoseInputError(f"--fractions {text!r}: use e.g. 0.8,0.1,0.1") from None
