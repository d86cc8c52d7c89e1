"""Every option an error message suggests exists on the commands that can raise it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer.main

import lowdose.cli

SOURCE = Path(lowdose.cli.__file__).resolve().parents[1]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")

# Modules whose errors reach users through more than one command: the commands that read
# users' files through them. A suggestion made there must work on each of these commands.
REACHED_BY = {
    "io/dicom_read.py": ("denoise", "fit", "dataset from-single", "dataset from-repeats"),
    "io/images.py": ("denoise", "fit", "dataset from-single", "dataset from-repeats"),
    "io/sinogram.py": ("fit", "dataset from-sinogram"),
    "inference/input_units.py": ("denoise", "fit"),
    "data/split_plan.py": ("fit", "dataset from-single", "dataset from-repeats"),
}


def _commands() -> dict[str, set[str]]:
    """``{"denoise": {"--model", ...}, "dataset from-single": {...}, ...}``."""
    found: dict[str, set[str]] = {}

    def walk(command, prefix: str) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}".strip())
            return
        found[prefix] = {opt for p in command.params for opt in getattr(p, "opts", ())}

    walk(typer.main.get_command(lowdose.cli.app), "")
    return found


def _suggestions() -> dict[str, set[str]]:
    """``{module: {"--skip-bad", ...}}`` from every ``raise LowdoseInputError(...)`` text."""
    found: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            call = node.exc if isinstance(node, ast.Raise) else None
            if not (
                isinstance(call, ast.Call) and getattr(call.func, "id", "") == "LowdoseInputError"
            ):
                continue
            texts = [n.value for n in ast.walk(call) if isinstance(n, ast.Constant)]
            options = {m for t in texts if isinstance(t, str) for m in OPTION.findall(t)}
            if options:
                found.setdefault(path.relative_to(SOURCE).as_posix(), set()).update(options)
    return found


def test_the_scan_finds_the_suggestions_it_is_for():
    suggestions = _suggestions()
    assert "--skip-bad" in suggestions["io/dicom_read.py"]
    assert "--dataset-key" in suggestions["io/sinogram.py"]
    assert "--units" in suggestions["inference/input_units.py"]


def test_every_suggested_option_exists_on_some_command():
    every = set().union(*_commands().values())
    missing = {
        f"{module}: {option}"
        for module, options in _suggestions().items()
        for option in options
        if option not in every
    }
    assert not missing


@pytest.mark.parametrize("module", sorted(REACHED_BY))
def test_suggestions_of_shared_readers_exist_on_every_command_that_reaches_them(module):
    commands = _commands()
    suggested = _suggestions().get(module, set())
    missing = {
        f"{command}: {option}"
        for command in REACHED_BY[module]
        for option in suggested
        if command not in commands or option not in commands[command]
    }
    assert not missing
