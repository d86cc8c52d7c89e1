"""Reading a folder of TIFF projections with their flat and dark frames.

The layout of Savu's ``image_test`` and of most micro-CT exports: one TIFF per projection (or a
multi-frame TIFF of several), in the folder itself or in one subfolder (``tiffs/``, ``proj/``),
and flat and dark frames recognised by name: a file or subfolder whose name starts with
``flat`` or ``white`` holds flats, one starting with ``dark`` holds darks. Files are ordered by
name with numbers compared as numbers (``raw_2`` before ``raw_10``). Angles come from
``angles.txt`` / ``angles.npy`` (or ``theta.*``) beside the projections, when present.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.scan_parts import ScanParts, angles_in_degrees, matched_to_views
from lowdose.io.sinogram import checked_numeric

TIFF_SUFFIXES = (".tif", ".tiff")
FLAT_PREFIXES = ("flat", "white")
DARK_PREFIXES = ("dark",)
ANGLE_FILES = ("angles.txt", "angles.npy", "angles.csv", "theta.txt", "theta.npy")


def read_tiff_stack(folder: Path) -> ScanParts:
    """The projections, flats, darks and angles of a TIFF-stack folder (rules: module docstring).

    Parameters
    ----------
    folder : Path
        The scan's folder.

    Returns
    -------
    ScanParts
        ``layout="tiff-stack"``, frames in their stored dtype, angles in degrees or None.
    """
    files = _tiffs_under(folder)
    if not files:
        raise LowdoseInputError(
            f"{folder}: no TIFF files in the folder or its subfolders; point at a TIFF stack"
        )
    roles: dict[str, list[Path]] = {"flat": [], "dark": [], "projection": []}
    for path in files:
        roles[_role(path.relative_to(folder))].append(path)
    projection_files = roles["projection"]
    folders = sorted({str(p.parent.relative_to(folder)) for p in projection_files})
    if not projection_files or len(folders) > 1:
        found = ", ".join(folders) if folders else "none (only flat/dark files)"
        raise LowdoseInputError(
            f"{folder}: projections found in {found}; keep one folder of projections (flat*/"
            "dark* files are the reference frames)"
        )
    projections = read_tiff_frames(projection_files)
    shape = projections.shape[1:]
    flats = read_tiff_frames(roles["flat"], shape=shape) if roles["flat"] else None
    darks = read_tiff_frames(roles["dark"], shape=shape) if roles["dark"] else None
    parts = ScanParts("tiff-stack", projections, flats, darks)
    parts.notes.append(
        f"TIFF stack: {len(projections)} projections {shape[0]} x {shape[1]} "
        f"({projections.dtype}) in {_where(projection_files, folder)}, "
        f"{_count(flats, roles['flat'], folder, 'flat')}, "
        f"{_count(darks, roles['dark'], folder, 'dark')}"
    )
    _add_angles(parts, [folder, projection_files[0].parent])
    return parts


def read_tiff_frames(paths: Sequence[Path], *, shape: tuple | None = None) -> np.ndarray:
    """Every frame of the TIFF files, in order: (n_frames, rows, cols) in the stored dtype.

    Parameters
    ----------
    paths : sequence of Path
        TIFF files, each one frame or a multi-frame stack.
    shape : (rows, cols), optional
        The frame shape required (that of the projections).
    """
    import tifffile

    frames = []
    for path in paths:
        try:
            array = checked_numeric(np.asarray(tifffile.imread(path)), path)
        except (OSError, ValueError) as exc:
            if isinstance(exc, LowdoseInputError):
                raise
            raise LowdoseInputError(f"{path}: cannot be read as TIFF ({exc})") from None
        array = array[None] if array.ndim == 2 else array
        expected = shape or (frames[0].shape[1:] if frames else array.shape[1:])
        if array.ndim != 3 or array.shape[1:] != tuple(expected):
            raise LowdoseInputError(
                f"{path}: frames of shape {array.shape[-2:]} where {tuple(expected)} was "
                "expected; every frame of a scan has the detector's shape"
            )
        frames.append(array)
    return np.concatenate(frames) if len(frames) > 1 else frames[0]


def natural_key(path: Path) -> tuple:
    """Sort key comparing the numbers in a name as numbers: ``raw_2`` before ``raw_10``."""
    parts = re.split(r"(\d+)", str(path).lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _tiffs_under(folder: Path) -> list[Path]:
    """TIFF files in ``folder`` and in its direct subfolders (not hidden), naturally sorted."""
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.extend(p for p in entry.iterdir() if _is_tiff(p))
        elif _is_tiff(entry):
            found.append(entry)
    return sorted(found, key=natural_key)


def _is_tiff(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in TIFF_SUFFIXES


def _role(relative: Path) -> str:
    names = [part.lower() for part in relative.parts]
    if any(name.startswith(FLAT_PREFIXES) for name in names):
        return "flat"
    if any(name.startswith(DARK_PREFIXES) for name in names):
        return "dark"
    return "projection"


def _where(files: Sequence[Path], folder: Path) -> str:
    parent = files[0].parent.relative_to(folder)
    place = "the folder" if str(parent) == "." else f"{parent}/"
    span = files[0].name if len(files) == 1 else f"{files[0].name} .. {files[-1].name}"
    return f"{place} ({span})"


def _count(frames, files: Sequence[Path], folder: Path, name: str) -> str:
    if frames is None:
        return f"no {name}s"
    shown = ", ".join(str(p.relative_to(folder)) for p in files[:3])
    more = f", ... ({len(files)} files)" if len(files) > 3 else ""
    return f"{len(frames)} {name}(s) ({shown}{more})"


def _add_angles(parts: ScanParts, folders: Sequence[Path]) -> None:
    """Angles from the first angle file found in ``folders``; none is not an error here."""
    for folder in folders:
        for name in ANGLE_FILES:
            path = folder / name
            if path.is_file():
                values = _angle_values(path)
                angles, how = angles_in_degrees(values, name=path.name, source=path)
                n_views = len(parts.projections)
                parts.angles_deg, trimmed = matched_to_views(
                    angles, n_views, name=path.name, source=path
                )
                parts.angles_from = path.name
                parts.notes.extend(line for line in (how, trimmed) if line)
                return


def _angle_values(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return checked_numeric(np.load(path, allow_pickle=False), path)
    text = path.read_text(encoding="utf-8").replace(",", " ").split()
    try:
        return np.array([float(value) for value in text])
    except ValueError:
        raise LowdoseInputError(f"{path}: angles must be numbers, one per projection") from None
