"""X-ray projections as instruments write them, read into one :class:`ProjectionScan`.

The layout is detected from the path:

* ``"data-exchange"``: an HDF5 file with ``/exchange/data`` (:mod:`lowdose.io.data_exchange`:
  flats, darks and ``theta`` from the standard keys when present);
* ``"tiff-stack"``: a folder of TIFF projections with ``flat*``/``dark*`` frames and
  ``angles.txt``/``angles.npy`` (:mod:`lowdose.io.tiff_stack`); also one multi-frame TIFF of
  projections ``(n_angles, rows, cols)`` given with ``flat=`` (a 3-D TIFF without ``flat=`` is
  read as a sinogram stack, lowdose's order ``(slices, n_angles, n_det)``);
* ``"sinogram"``: a ``.mat``, ``.npy``, TIFF or other HDF5 sinogram
  (:mod:`lowdose.io.sinogram_file`), held as ``(n_angles, slices, n_det)``.

What the file holds (``values``): ``"counts"`` when flats are present or the stored dtype is an
integer with values above 1; otherwise ``"line-integrals"`` (float data taken as already
normalised and log-corrected, like the ``.mat`` sinograms of ``shared/data/projections``).
Counts become line integrals in :func:`lowdose.physics.flat_field.line_integrals`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.data_exchange import is_data_exchange, read_data_exchange
from lowdose.io.scan_parts import ScanParts
from lowdose.io.sinogram import parse_angles, read_stored_array
from lowdose.io.sinogram_file import read_sinogram_file
from lowdose.io.tiff_stack import TIFF_SUFFIXES, natural_key, read_tiff_frames, read_tiff_stack

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".cxi")
SINOGRAM_SUFFIXES = (".mat", ".npy", *TIFF_SUFFIXES, *HDF5_SUFFIXES)


@dataclass(frozen=True, eq=False)
class ProjectionScan:
    """One scan as read: projections, reference frames, angles, and what was found.

    Attributes
    ----------
    projections : ndarray (n_angles, rows, cols) float32
        Values as stored (counts or line integrals); a sinogram file gives rows = slices.
    flats : ndarray (n_flats, rows or 1, cols) float32 or None
        Open-beam frames, all of them in file order (a single sinogram's flat given per view
        arrives as ``n_angles`` one-row frames).
    darks : ndarray (n_darks, rows or 1, cols) float32 or None
        Beam-off frames, all of them (before and after the scan) in file order.
    angles_deg : ndarray (n_angles,) float64 or None
        View angles in degrees; None when neither the file nor ``angles=`` gives them.
    source : Path
        The file or folder read.
    layout : str
        ``"data-exchange"``, ``"tiff-stack"`` or ``"sinogram"``.
    values : str
        ``"counts"`` or ``"line-integrals"`` (module docstring).
    notes : tuple of str
        What was found, one line each.
    """

    projections: np.ndarray
    flats: np.ndarray | None
    darks: np.ndarray | None
    angles_deg: np.ndarray | None
    source: Path
    layout: str
    values: str
    notes: tuple[str, ...]


def read_projections(
    path: str | os.PathLike, *, dataset_key: str | None = None, flat=None, dark=None, angles=None
) -> ProjectionScan:
    """Read a scan in any supported layout (module docstring).

    Parameters
    ----------
    path : str or PathLike
        A Data Exchange ``.h5``, a TIFF-stack folder, a multi-frame TIFF (with ``flat``) or a
        ``.mat``/``.npy``/``.tif``/``.h5`` sinogram.
    dataset_key : str, optional
        The HDF5 dataset or ``.mat`` variable holding the projections or sinogram.
    flat, dark : path, str or array_like, optional
        Reference frames replacing the file's own: a TIFF (any number of frames), ``.npy``,
        ``.h5`` (its only dataset), ``FILE.h5:KEY``, a folder of TIFF frames, or an array. For a
        sinogram: ``(n_det,)``, or ``(n_angles, n_det)`` per view of a single sinogram.
    angles : str, path or array_like, optional
        ``START:STOP[:N]`` degrees or a file (:func:`lowdose.io.sinogram.parse_angles`), only
        for files that carry no angles.

    Returns
    -------
    ProjectionScan

    Raises
    ------
    LowdoseInputError
        A missing or unreadable path, frames that do not fit, angles given twice (names
        ``--angles``), an unknown layout.
    """
    path = Path(path)
    parts = _read_layout(path, dataset_key, with_flats=flat is not None)
    for name, spec in (("flat", flat), ("dark", dark)):
        if spec is not None:
            frames, note = _override(spec, name, parts)
            setattr(parts, f"{name}s", frames)
            parts.notes.append(note)
    n_angles = len(parts.projections)
    if angles is not None:
        if parts.angles_deg is not None:
            raise LowdoseInputError(
                f"{path}: the file carries its own angles ({parts.angles_from}); drop --angles"
            )
        parts.angles_deg = parse_angles(angles, n_angles)
        parts.notes.append(f"angles from --angles ({_shown(angles)}), degrees")
    elif parts.angles_deg is None:
        parts.notes.append("no angles in the file: pass --angles START:STOP (degrees) or a file")
    values = _values(parts)
    return ProjectionScan(
        projections=np.asarray(parts.projections, dtype=np.float32),
        flats=None if parts.flats is None else np.asarray(parts.flats, dtype=np.float32),
        darks=None if parts.darks is None else np.asarray(parts.darks, dtype=np.float32),
        angles_deg=None if parts.angles_deg is None else np.asarray(parts.angles_deg, np.float64),
        source=path,
        layout=parts.layout,
        values=values,
        notes=(*parts.notes, _values_note(values, parts)),
    )


def _read_layout(path: Path, dataset_key: str | None, *, with_flats: bool) -> ScanParts:
    if path.is_dir():
        return read_tiff_stack(path)
    if not path.is_file():
        raise LowdoseInputError(f"{path}: no such file or folder; check the path")
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES and is_data_exchange(path):
        return read_data_exchange(path, dataset_key=dataset_key)
    if suffix in TIFF_SUFFIXES and with_flats:
        frames = read_stored_array(path)
        if frames.ndim == 3:
            parts = ScanParts("tiff-stack", frames)
            n, rows, cols = frames.shape
            parts.notes.append(
                f"multi-frame TIFF: {n} projections {rows} x {cols} ({frames.dtype}); no angles "
                "in the file"
            )
            return parts
    if suffix in SINOGRAM_SUFFIXES:
        return read_sinogram_file(path, dataset_key=dataset_key)
    raise LowdoseInputError(
        f"{path}: unknown scan format {suffix!r}; pass a Data Exchange .h5, a TIFF-stack folder "
        "or a .mat/.npy/.tif/.h5 sinogram"
    )


def _override(spec, name: str, parts: ScanParts) -> tuple[np.ndarray, str]:
    """Frames from ``flat=``/``dark=``, shaped (n, rows or 1, cols), and one note."""
    if isinstance(spec, str | os.PathLike):
        frames = _frames_from_path(str(spec), name)
        origin = str(spec)
    else:
        frames = np.asarray(spec)
        origin = "an array"
    n_angles, rows, cols = parts.projections.shape
    if frames.ndim == 1:
        frames = frames[None, None]
    elif frames.ndim == 2 and parts.layout == "sinogram" and rows == 1 and len(frames) == n_angles:
        frames = frames[:, None, :]  # one sinogram's field given per view
    elif frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or frames.shape[1] not in (1, rows) or frames.shape[2] != cols:
        raise LowdoseInputError(
            f"{origin}: --{name} frames of shape {np.shape(frames)} do not fit projections of "
            f"{rows} x {cols}; pass frames of that shape (or ({cols},) for every row)"
        )
    own = getattr(parts, f"{name}s")
    replaced = f", replacing the file's {len(own)}" if own is not None else ""
    return frames, f"{name}s from --{name} {origin}: {len(frames)} frame(s){replaced}"


def _frames_from_path(spec: str, name: str) -> np.ndarray:
    """Frames from ``FILE``, ``FILE.h5:KEY`` or a folder of TIFF frames."""
    file_part, _, key = spec.rpartition(":")
    if file_part and Path(file_part).suffix.lower() in HDF5_SUFFIXES and Path(file_part).is_file():
        return read_stored_array(file_part, dataset_key=key)
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES), key=natural_key
        )
        if not files:
            raise LowdoseInputError(f"{path}: no TIFF frames in the --{name} folder")
        return read_tiff_frames(files)
    return read_stored_array(path)


def _values(parts: ScanParts) -> str:
    stored = parts.projections
    if parts.flats is not None:
        return "counts"
    if np.issubdtype(stored.dtype, np.integer) and stored.size and stored.max() > 1:
        return "counts"
    return "line-integrals"


def _values_note(values: str, parts: ScanParts) -> str:
    if values == "line-integrals":
        return (
            f"values: line integrals ({parts.projections.dtype} without flats, taken as "
            "normalised and log-corrected already)"
        )
    if parts.flats is None:
        return (
            f"values: counts ({parts.projections.dtype}) but no flat frames: pass --flat FILE "
            "(and --dark FILE)"
        )
    return f"values: counts ({parts.projections.dtype}), to be corrected with the flats"


def _shown(angles) -> str:
    if isinstance(angles, str | os.PathLike):
        return str(angles)
    values = np.asarray(angles, dtype=float).ravel()
    return f"{values.size} values {values.min():g}..{values.max():g}" if values.size else "empty"
