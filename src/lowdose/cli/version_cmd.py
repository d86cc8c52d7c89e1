"""``lowdose version``: the installed version."""

import typer

from lowdose import __version__
from lowdose.cli._app import app


@app.command()
def version() -> None:
    """Print the lowdose version."""
    typer.echo(__version__)
