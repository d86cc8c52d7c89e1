"""The HDF5 dataset file: layout, validation on open, reading one split (lazily or whole).

One file per dataset (docs/interfaces.md): ``noisy`` (I, N, H, W) float32, optional ``clean``
(I, H, W) float32, ``object_id`` and ``split`` (I,) strings, ``scale`` (I,) float32, and
provenance attributes (:class:`lowdose.data.attributes.DatasetAttrs`). Image data are chunked one
image per chunk, so a reader touches only the images it needs: training streams a file larger than
RAM through :class:`lowdose.training.pairs.PairDataset`.

Optional keys: ``tile_origin`` (I, 2) int, where each image sat in the image it was cut from
(region splits), and ``fov`` (I, H, W) uint8, 1 inside the scanner's field of view.

A file written by hand needs only ``noisy``. Whatever else it lacks is supplied in memory and
never written into the file, with one warning naming the file: no ``scale`` means every divisor
is 1; no ``object_id`` means the file is one object; no ``split`` is computed deterministically
(:func:`lowdose.data.split_plan.plan_split`, method ``auto`` with seed 0, images kept whole:
patient if there are enough objects, else slab; rows in the gaps between slabs get the split
:data:`GAP_SPLIT`, which no reader asks for).

Writing lives in :mod:`lowdose.data.writer`, splitting in :mod:`lowdose.data.splits`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.split_plan import plan_split
from lowdose.data.splits import SPLITS

GAP_SPLIT = "gap"
"""In-memory split of a hand-written file's rows that fall in a gap between slabs."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset file holds, read without touching the image data.

    Attributes
    ----------
    path : pathlib.Path
    shape : tuple of int
        ``(I, N, H, W)`` of ``noisy``.
    has_clean : bool
    object_id, split : ndarray (I,) str
    attrs : DatasetAttrs
        Provenance and scaling attributes, validated.
    """

    path: Path
    shape: tuple[int, int, int, int]
    has_clean: bool
    object_id: np.ndarray
    split: np.ndarray
    attrs: DatasetAttrs


@dataclass(frozen=True)
class SplitArrays:
    """One split read into memory.

    Attributes
    ----------
    clean : ndarray (I_s, H, W) float32 or None
        None when the file has no clean images.
    noisy : ndarray (I_s, N, H, W) float32
    object_id : ndarray (I_s,) str
    index : ndarray (I_s,) int64
        Row of each image in the file.
    attrs : DatasetAttrs
    scale : ndarray (I_s,) float64
        Each image's divisor: ``scaled = (raw + attrs.scaling_offset) / scale`` (ones when the
        file stores none).
    tile_origin : ndarray (I_s, 2) int64 or None
        (row, col) of each image in the image it was cut from; None when the file has none.
    fov : ndarray (I_s, H, W) bool or None
        True inside the scanner's field of view; None when the file has none.
    """

    clean: np.ndarray | None
    noisy: np.ndarray
    object_id: np.ndarray
    index: np.ndarray
    attrs: DatasetAttrs
    scale: np.ndarray
    tile_origin: np.ndarray | None = None
    fov: np.ndarray | None = None


def read_info(path: str | os.PathLike) -> DatasetInfo:
    """Read and validate a dataset file's layout, ids, splits and attributes (no image data).

    Raises
    ------
    LowdoseInputError
        Missing file, not HDF5, a missing key, inconsistent shapes or a known attribute with an
        invalid value; the message names both.
    """
    path = Path(path)
    with open_dataset(path) as handle:
        return _info(handle, path)


def read_attrs(path: str | os.PathLike) -> DatasetAttrs:
    """Provenance and scaling attributes of a dataset file, validated."""
    return read_info(path).attrs


def read_scale(path: str | os.PathLike) -> np.ndarray:
    """Every image's divisor ``scale`` (I,) float64 (ones when the file stores none)."""
    path = Path(path)
    with open_dataset(path) as handle:
        info = _info(handle, path)
        return _scale(handle, np.arange(info.shape[0]))


def dataset_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the split table: every image's ``object_id`` and ``split`` in order.

    Identifies which images a manifest's train/val/test were; image data are not hashed.
    """
    info = read_info(path)
    digest = hashlib.sha256(b"lowdose-split-table-v1\n")
    for object_id, split in zip(info.object_id, info.split, strict=True):
        digest.update(f"{object_id}\x00{split}\n".encode())
    return digest.hexdigest()


def load_split(path: str | os.PathLike, split: str, *, with_clean: bool = True) -> SplitArrays:
    """Read one split (``"train"``, ``"val"`` or ``"test"``) into memory.

    ``with_clean=False`` never reads the ``clean`` array (``SplitArrays.clean`` is None): the
    clean-free methods (Noise2Noise validation, blind tuning) read the file this way, so no clean
    image can reach them even when the file has one.
    """
    path = Path(path)
    with open_dataset(path) as handle:
        info = _info(handle, path)
        index = split_index(info, split)
        noisy = _read_rows(handle["noisy"], index)
        read_clean = with_clean and info.has_clean
        clean = _read_rows(handle["clean"], index) if read_clean else None
        scale = _scale(handle, index)
        has_origin = "tile_origin" in handle
        origin = handle["tile_origin"][()][index].astype(np.int64) if has_origin else None
        fov = _read_rows(handle["fov"], index).astype(bool) if "fov" in handle else None
    return SplitArrays(clean, noisy, info.object_id[index], index, info.attrs, scale, origin, fov)


def split_index(info: DatasetInfo, split: str) -> np.ndarray:
    """Rows (int64, increasing) of ``split`` in the file; raises if the split is empty."""
    if split not in SPLITS:
        raise LowdoseInputError(f"split {split!r} is unknown; use one of {', '.join(SPLITS)}")
    index = np.flatnonzero(info.split == split).astype(np.int64)
    if index.size == 0:
        present = ", ".join(sorted(set(info.split.tolist())))
        raise LowdoseInputError(f"{info.path}: split {split!r} is empty; it has {present}")
    return index


@contextlib.contextmanager
def open_dataset(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a dataset file read-only; a missing or non-HDF5 file raises LowdoseInputError."""
    path = Path(path)
    if not path.is_file():
        raise LowdoseInputError(f"{path}: no such dataset file; check the path")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise LowdoseInputError(
            f"{path}: not a readable HDF5 dataset ({error}); rebuild it"
        ) from None
    with handle:
        yield handle


def _info(handle: h5py.File, path: Path) -> DatasetInfo:
    if "noisy" not in handle:
        raise LowdoseInputError(f"{path}: missing dataset 'noisy' (I, N, H, W); not a dataset file")
    shape = handle["noisy"].shape
    if len(shape) != 4:
        raise LowdoseInputError(f"{path}: 'noisy' has shape {shape}; expected (I, N, H, W)")
    has_clean = "clean" in handle
    if has_clean and handle["clean"].shape != (shape[0], *shape[2:]):
        raise LowdoseInputError(
            f"{path}: 'clean' has shape {handle['clean'].shape}; expected {(shape[0], *shape[2:])}"
        )
    notes = [] if "scale" in handle else ["no 'scale': every divisor is 1"]
    if "object_id" in handle:
        ids = _strings(handle["object_id"])
    else:
        ids = np.full(shape[0], path.stem)
        notes.append(f"no 'object_id': the file is one object {path.stem!r}")
    splits = _strings(handle["split"]) if "split" in handle else np.empty(0, dtype=str)
    if "split" not in handle and ids.shape == (shape[0],):
        ids, splits, note = _computed_split(ids, shape, path)
        notes.append(f"no 'split': {note}")
    if ids.shape != (shape[0],) or splits.shape != (shape[0],):
        raise LowdoseInputError(f"{path}: 'object_id'/'split' do not have {shape[0]} entries")
    if notes:  # issued from this line: the warnings registry shows each file's text once
        warnings.warn(f"{path}: {'; '.join(notes)} (in memory only)", UserWarning, stacklevel=1)
    attrs = DatasetAttrs.from_hdf5(handle.attrs, where=str(path))
    return DatasetInfo(path, tuple(int(v) for v in shape), has_clean, ids, splits, attrs)


def _computed_split(ids: np.ndarray, shape: tuple, path: Path):
    """(object_id, split, note) of a file without ``split``: auto, seed 0, images kept whole."""
    try:
        plan = plan_split(
            ids, image_shape=shape[2:], rng=np.random.default_rng(0), allow_region=False
        )
    except LowdoseInputError:
        raise LowdoseInputError(
            f"{path}: no 'split', and {shape[0]} images of {np.unique(ids).size} object(s) are too "
            "few to split by object or slab; add a 'split' dataset (train/val/test per image)"
        ) from None
    ids_out, splits = ids.astype(object), np.full(ids.shape, GAP_SPLIT, dtype=object)
    ids_out[plan.source_index], splits[plan.source_index] = plan.object_id, plan.split
    return ids_out.astype(str), splits.astype(str), plan.note


def _scale(handle: h5py.File, index: np.ndarray) -> np.ndarray:
    """``scale`` of rows ``index`` as float64; ones for a hand-written file without it."""
    if "scale" not in handle:
        return np.ones(index.size)
    return np.asarray(handle["scale"][()], dtype=np.float64)[index]


def _read_rows(dataset: h5py.Dataset, index: np.ndarray) -> np.ndarray:
    """Read increasing rows in contiguous runs (one slice per run, no per-row fancy indexing)."""
    out = np.empty((index.size, *dataset.shape[1:]), dtype=np.float32)
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    position = 0
    for run in np.split(index, breaks):
        out[position : position + run.size] = dataset[run[0] : run[-1] + 1]
        position += run.size
    return out


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    values = dataset[()]
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)
