"""The typer application objects and the error boundary every command goes through."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import typer
from rich.console import Console

from lowdose.core.errors import LowdoseInputError

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


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad input into one red line and exit code 1 (2 for a full disk), never a traceback."""
    try:
        yield
    except (LowdoseInputError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            console.print(
                f"[bold red]error:[/] disk full while writing {exc.filename or 'output'}: "
                "free space or choose another --out; nothing partial was kept.",
                highlight=False,
            )
            raise typer.Exit(2) from None
        raise


@contextlib.contextmanager
def stage_progress(unit: str = "img", *, absolute: bool = False) -> Iterator:
    """Rich progress bars, one per stage, with rate and ETA.

    Yields ``progress(stage, count, total)``: the callback the library's long functions take
    (evaluate, sweep, dataset builders), so that they never print themselves. ``count`` is the
    number just finished, or with ``absolute`` the number finished so far.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description:22s}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, int] = {}

        def progress(stage: str, count: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total, rate="")
            if absolute:
                bars.update(tasks[stage], completed=count)
            else:
                bars.advance(tasks[stage], count)
            speed = bars.tasks[tasks[stage]].speed
            bars.update(tasks[stage], rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield progress


def parse_range(text: str, option: str, example: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` -> (low, high); a malformed value is a one-line error naming the option."""
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise LowdoseInputError(f"{option} {text!r}: write LOW:HIGH, e.g. {example}") from None
    return low, high
