"""The stage cache of ``lowdose reproduce``: content-hash keys and ``stage.json`` markers.

Each stage folder holds ``stage.json`` = ``{"key": ..., "done": bool}``. A stage whose marker
holds the same key and ``done`` is skipped; one with the same key but not done is a partial run
to resume; a different key moves the old folder aside to ``<name>.stale`` and starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from lowdose.core.atomic import atomic_write_text


def stage_key(*parts) -> str:
    """Short SHA-256 of the JSON form of ``parts`` (configs, upstream keys, file hashes)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_done(folder: Path, key: str) -> bool:
    """True when ``folder/stage.json`` marks a finished stage with this ``key``."""
    marker = folder / "stage.json"
    if not marker.is_file():
        return False
    info = json.loads(marker.read_text())
    return info.get("key") == key and info.get("done", False)


def prepare_stage(folder: Path, key: str) -> bool:
    """Make ``folder`` ready for a stage with ``key``; True when a matching partial run exists."""
    marker = folder / "stage.json"
    if marker.is_file():
        if json.loads(marker.read_text()).get("key") == key:
            return True
        stale = folder.with_name(folder.name + ".stale")
        shutil.rmtree(stale, ignore_errors=True)
        folder.rename(stale)
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps({"key": key, "done": False}))
    return False


def finish_stage(folder: Path, key: str, **extra) -> None:
    """Mark the stage in ``folder`` finished (``extra`` is recorded beside the key)."""
    atomic_write_text(folder / "stage.json", json.dumps({"key": key, "done": True, **extra}))


def inputs_key(paths: list[Path]) -> list:
    """What identifies input files for a stage key: each path with its files' names, sizes and
    modification times (content changes show up there; a folder by the files under it)."""
    entries = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        entries.append([str(path.resolve()), stats])
    return entries
