"""Small commands: version."""

import typer

from lowdose.cli._app import app


@app.command()
def version() -> None:
    """Print the lowdose version."""
    from lowdose import __version__

    typer.echo(__version__)
