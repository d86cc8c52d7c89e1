"""Which series a denoising job does, and how it records the finished ones so a rerun resumes.

A job over an archive is a list of units (:class:`lowdose.io.series_index.SeriesFiles`: one DICOM
series or one other image file), in the fixed order of :func:`lowdose.io.series_index.index_input`
over the inputs as given. Three rules make that list safe to split and to interrupt:

- **Shards** (``--shard K/N``): unit ``i`` (0-based, in that order) belongs to shard
  ``i mod N + 1``. N jobs of a SLURM array given the same inputs cover every unit exactly once,
  and the union of their outputs is the output of one job (output UIDs are derived from the
  source and the model, :mod:`lowdose.io.dicom_write`).
- **Staging**: a unit's files are written into ``OUT/.lowdose/partial/<unit id>/`` and moved
  into place only once all of them exist; then its record ``OUT/.lowdose/done/<unit id>.json``
  (files, source, model) is written atomically. A killed job leaves at most a partial folder,
  which the next run removes before it redoes that unit.
- **Skip existing** (``--skip-existing``): a unit whose record exists, names the same model and
  derivation, and whose files all exist is not redone. A record of another model stops the job
  with one line, rather than mixing two models' outputs in one folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.io.series_index import SeriesFiles

STATE_FOLDER = ".lowdose"
"""Hidden folder in the output with the job's records: readers of images skip hidden entries."""


@dataclass(frozen=True)
class Shard:
    """``index`` of ``count`` (1-based, as ``--shard K/N`` and SLURM_ARRAY_TASK_ID say it)."""

    index: int = 1
    count: int = 1

    def takes(self, position: int) -> bool:
        """Whether the unit at 0-based ``position`` of the job's order belongs to this shard."""
        return position % self.count == self.index - 1


def parse_shard(text: str | None) -> Shard:
    """``"K/N"`` -> :class:`Shard`; None -> the whole job. One error line for anything else."""
    if text is None or text == "":
        return Shard()
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise LowdoseInputError(
            f"--shard {text!r}: write K/N with 1 <= K <= N (--shard 2/8: the second of 8 jobs)"
        )
    return Shard(int(match[1]), int(match[2]))


def unit_id(unit: SeriesFiles) -> str:
    """A short stable name for a unit's records (the same in every job over the same inputs)."""
    return hashlib.sha1(unit.key.encode()).hexdigest()[:16]


def output_folder(unit: SeriesFiles, out: Path) -> Path:
    """Where a unit's files go: ``out`` plus the unit's folder relative to its input."""
    return out / unit.relative_folder


def finished(unit: SeriesFiles, out: Path, derivation: str) -> bool:
    """True when ``unit`` was completed into ``out`` by the same model and derivation.

    Raises
    ------
    LowdoseInputError
        The record was written by another model or recipe (one line naming both).
    """
    record_path = _record_path(unit, out)
    if not record_path.exists():
        return False
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return False  # an unreadable record: redo the unit
    if record.get("derivation") != derivation:
        raise LowdoseInputError(
            f"{out}: {unit.files[0].parent} was denoised there with another model or recipe "
            f"({record.get('derivation')!r}); use another --out, or drop --skip-existing to redo it"
        )
    return all((out / name).exists() for name in record.get("files", ()))


def staging_folder(unit: SeriesFiles, out: Path) -> Path:
    """An empty folder for the unit's files (left over from a killed run: emptied first)."""
    folder = out / STATE_FOLDER / "partial" / unit_id(unit)
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def commit(unit: SeriesFiles, staged: list[Path], out: Path, derivation: str) -> list[Path]:
    """Move a unit's staged files into place, then record the unit as finished.

    Parameters
    ----------
    unit : SeriesFiles
        The unit the files belong to.
    staged : list of Path
        Its files, all inside :func:`staging_folder`.
    out : Path
        The job's output folder.
    derivation : str
        The model and recipe (what :func:`finished` compares on a rerun).

    Returns
    -------
    list of Path
        The files at their final places.
    """
    target = output_folder(unit, out)
    target.mkdir(parents=True, exist_ok=True)
    final = []
    for path in staged:
        os.replace(path, target / path.name)  # same file system: a rename, atomic per file
        final.append(target / path.name)
    if staged:
        shutil.rmtree(staged[0].parent, ignore_errors=True)
    record = {
        "source": [str(path) for path in unit.files],
        "series_uid": unit.series_uid,
        "derivation": derivation,
        "files": [path.relative_to(out).as_posix() for path in final],
    }
    with atomic_path(_record_path(unit, out)) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return final


def recorded_files(unit: SeriesFiles, out: Path) -> list[Path]:
    """The files a finished unit's record lists."""
    record = json.loads(_record_path(unit, out).read_text())
    return [out / name for name in record["files"]]


def remove_empty_staging(out: Path) -> None:
    """Remove the staging folder when no unit is left in it (a finished job leaves none)."""
    folder = out / STATE_FOLDER / "partial"
    with contextlib.suppress(OSError):  # not empty (another shard is running) or absent
        folder.rmdir()


def _record_path(unit: SeriesFiles, out: Path) -> Path:
    return out / STATE_FOLDER / "done" / f"{unit_id(unit)}.json"
