"""Reading acquisitions, and pairing the slices of repeated ones (owndata.repeats, .single).

Each input (a DICOM folder or file, a TIFF stack, an ``.npy`` stack, or a folder of TIFF/.npy
files) is one independent noisy acquisition of the same objects. Slices are paired across inputs:

``match="position"`` (DICOM)
    by (PatientID, ImagePositionPatient rounded to 0.01 mm), or by (PatientID, InstanceNumber)
    for files without a position; two slices with one key in one input are an error.
``match="order"``
    by order: the n-th slice of every input (DICOM in :func:`lowdose.io.images.read_ct` order, i.e.
    by patient, study, series, position; stacks by file name, then index in the file).

Geometry tags of paired DICOM slices must agree: PixelSpacing and ImageOrientationPatient within
1e-3, ImagePositionPatient within :data:`POSITION_TOLERANCE_MM`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.images import read_ct

POSITION_TOLERANCE_MM = 0.01
_TAG_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Acquisition:
    """One input read into memory.

    Attributes
    ----------
    path : Path
    values : ndarray (I, H, W) float32
        HU for DICOM, stored values for TIFF / .npy.
    kind : str
        ``"dicom"``, ``"tiff"``, ``"npy"``, ...
    labels : tuple of str
        Per slice, the file (and ``[k]`` frame index for stacks) for error messages.
    object_id : tuple of str
        Per slice: PatientID for DICOM, the stack's file stem otherwise.
    volume_id : tuple of str
        Per slice: SeriesInstanceUID for DICOM, the stack's file stem otherwise.
    keys : tuple
        Per slice, the position match key (DICOM) or None.
    geometry : tuple
        Per slice ``(pixel_spacing, orientation, position)`` tuples of float (DICOM) or None.
    headers : tuple
        DICOM headers (for writing results back), else empty.
    """

    path: Path
    values: np.ndarray
    kind: str
    labels: tuple
    object_id: tuple
    keys: tuple
    geometry: tuple
    headers: tuple
    volume_id: tuple = ()


def read_acquisition(path: str | os.PathLike, *, skip_bad: bool = False) -> Acquisition:
    """Read one acquisition with :func:`lowdose.io.images.read_ct` (``skip_bad``: unreadable
    files are left out instead of stopping); see :class:`Acquisition`."""

    path = Path(path)
    stack = read_ct(path, skip_bad=skip_bad)
    if stack.kind != "dicom":
        labels = tuple(f"{info.source}[{info.frame}]" for info in stack.slices)
        objects = tuple(Path(info.source).stem for info in stack.slices)
        none = (None,) * len(labels)
        return Acquisition(path, stack.hu, stack.kind, labels, objects, none, none, (), objects)
    labels, keys, geometry = [], [], []
    for info, header in zip(stack.slices, stack.headers, strict=True):
        labels.append(str(info.source) + (f"[{info.frame}]" if info.frame else ""))
        geometry.append(_geometry(header))
        position = geometry[-1][2]
        where = tuple(round(v, 2) for v in position) if position else info.instance_number
        keys.append((info.patient_id, where, info.frame))
    objects = tuple(info.patient_id for info in stack.slices)
    return Acquisition(
        path,
        stack.hu,
        "dicom",
        tuple(labels),
        objects,
        tuple(keys),
        tuple(geometry),
        tuple(stack.headers),
        tuple(info.series_uid for info in stack.slices),
    )


def _geometry(header) -> tuple:
    def floats(name: str) -> tuple[float, ...]:
        value = header.get(name)
        return tuple(float(v) for v in value) if value else ()

    return floats("PixelSpacing"), floats("ImageOrientationPatient"), floats("ImagePositionPatient")


def match_indices(
    acquisitions: list[Acquisition], match: Literal["position", "order"]
) -> np.ndarray:
    """Rows of each acquisition that show the same slice.

    Returns
    -------
    ndarray (I, N) int64
        ``out[i, n]`` is the row in acquisition ``n`` of pair ``i``; rows follow acquisition 0.

    Raises
    ------
    LowdoseInputError
        Unknown ``match``; a position key used twice in one input; a slice without a partner;
        different slice counts under ``match="order"``. The message names the files.
    """
    if match not in ("position", "order"):
        raise LowdoseInputError(f"match={match!r} is unknown; use 'position' or 'order'")
    first = acquisitions[0]
    if match == "order" or first.kind != "dicom":
        counts = [len(a.labels) for a in acquisitions]
        for other in acquisitions[1:]:
            if len(other.labels) != len(first.labels):
                raise LowdoseInputError(
                    f"{first.path} has {len(first.labels)} slices but {other.path} has "
                    f"{len(other.labels)}; give both the same slices or use --match position"
                )
        return np.tile(np.arange(counts[0], dtype=np.int64)[:, None], (1, len(acquisitions)))
    lookups = [_key_lookup(a) for a in acquisitions]
    columns = [np.arange(len(first.labels), dtype=np.int64)]
    for other, lookup in zip(acquisitions[1:], lookups[1:], strict=True):
        rows = []
        for key, label in zip(first.keys, first.labels, strict=True):
            if key not in lookup:
                raise LowdoseInputError(
                    f"{label} has no slice at the same patient and position in {other.path}; "
                    "give the same slices in every input or use --match order"
                )
            rows.append(lookup[key])
        if len(lookup) != len(rows):
            extra = sorted(set(lookup) - set(first.keys), key=str)[0]
            raise LowdoseInputError(
                f"{other.labels[lookup[extra]]} has no partner in {first.path}; "
                "give the same slices in every input"
            )
        columns.append(np.asarray(rows, dtype=np.int64))
    return np.stack(columns, axis=1)


def _key_lookup(acquisition: Acquisition) -> dict:
    lookup: dict = {}
    for row, key in enumerate(acquisition.keys):
        if key in lookup:
            raise LowdoseInputError(
                f"{acquisition.labels[lookup[key]]} and {acquisition.labels[row]} sit at the same "
                "patient and position; put each series in its own folder or use --match order"
            )
        lookup[key] = row
    return lookup


def check_geometry(first: Acquisition, row_a: int, other: Acquisition, row_b: int) -> None:
    """Raise unless two paired slices have equal shape and DICOM geometry tags."""
    name_a, name_b = first.labels[row_a], other.labels[row_b]
    shape_a, shape_b = first.values.shape[1:], other.values.shape[1:]
    if shape_a != shape_b:
        raise LowdoseInputError(
            f"{name_a} is {shape_a[0]}x{shape_a[1]} but its partner {name_b} is "
            f"{shape_b[0]}x{shape_b[1]}; repeats must have the same size"
        )
    if first.kind != "dicom" or other.kind != "dicom":
        return
    tags = ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient")
    tolerances = (_TAG_TOLERANCE, _TAG_TOLERANCE, POSITION_TOLERANCE_MM)
    for tag, tol, a, b in zip(
        tags, tolerances, first.geometry[row_a], other.geometry[row_b], strict=True
    ):
        if len(a) != len(b) or (a and np.max(np.abs(np.subtract(a, b))) > tol):
            raise LowdoseInputError(
                f"{name_a} and {name_b} differ in {tag} ({_fmt(a)} vs {_fmt(b)}); "
                "repeats must share the geometry"
            )


def _fmt(values: tuple) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]" if values else "missing"
