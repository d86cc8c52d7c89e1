"""The typer application objects and the error boundary every command goes through."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import rich.progress
import typer
from rich.console import Console

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress

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
def stage_progress(unit: str = "img") -> Iterator[Progress]:
    """Rich progress bars, one per stage, with rate and ETA: a :data:`ProgressScope`.

    Yields the :class:`lowdose.core.progress.Progress` callback ``progress(stage, done, total)``
    that the library's long functions take (builders, evaluate, sweep, denoise), so that they
    never print themselves; ``done`` is the number finished so far.
    """
    columns = (
        rich.progress.TextColumn("{task.description:22s}"),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TaskProgressColumn(),
        rich.progress.TextColumn("{task.fields[rate]}"),
        rich.progress.TimeElapsedColumn(),
        rich.progress.TimeRemainingColumn(),
    )
    with rich.progress.Progress(*columns, console=console) as bars:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total, rate="")
            bars.update(tasks[stage], completed=done, total=total)
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
