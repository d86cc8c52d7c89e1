"""Command-line interface: ``lowdose <command>``. The only package that prints for people or exits.

Each command lives in a small module of this package and registers itself on the shared ``app``;
heavy libraries are imported inside the command functions so that ``lowdose --help`` stays fast.
"""

from lowdose.cli import _app
from lowdose.cli._app import app

__all__ = ["app", "_app"]

# Command modules register themselves on import.
from lowdose.cli import commands_core  # noqa: E402,F401
