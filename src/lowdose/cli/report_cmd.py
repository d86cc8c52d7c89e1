"""``lowdose report RUN_DIR``: saved results -> report.md, self-contained report.html, figures."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import app, check_out_writable, console, user_errors
from lowdose.core.errors import LowdoseInputError
from lowdose.report.build import write_report
from lowdose.report.fit_report import write_fit_report


@app.command()
def report(
    run_dir: Path = typer.Argument(
        ..., help="Run directory with experiment folders (or one experiment folder)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default RUN_DIR/report); figures go to OUT/figures."
    ),
) -> None:
    """Build report.md and a self-contained report.html: tables, sweeps, panels, training.

    A ``lowdose fit`` folder (it holds ``fit.json``) gets its own report back, in place.
    """
    with user_errors():
        if (run_dir / "fit.json").is_file():
            if out is not None:
                raise LowdoseInputError("a fit folder's report is rebuilt in place: drop --out")
            check_out_writable(run_dir / "report.html")
            console.print(f"wrote {write_fit_report(run_dir)}")
            return
        if run_dir.is_dir():  # else write_report says what RUN_DIR should be
            check_out_writable(out or run_dir / "report")
        with console.status("building report"):
            files = write_report(run_dir, out_dir=out)
        console.print(f"wrote {files.markdown}")
        console.print(
            f"wrote {files.html} ({len(files.figures)} figures in {files.html.parent / 'figures'})"
        )
