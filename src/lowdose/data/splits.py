"""Train/val/test splits by object: one phantom or patient never lands in two splits.

:func:`split_by_object` shuffles whole objects into the splits; :class:`SplitPlan` is what every
dataset builder writes: which input image (or tile of it) goes to which split as which object.
The methods that make plans (patient, volume, slab, region, auto) live in
:mod:`lowdose.data.split_plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError

SPLITS = ("train", "val", "test")
SPLIT_METHODS = ("auto", "patient", "volume", "slab", "region")


@dataclass(frozen=True)
class SplitPlan:
    """Which input images (or tiles of them) go to which split, as which object.

    Attributes
    ----------
    method : {"patient", "volume", "slab", "region"}
        The method used (``auto`` resolved).
    source_index : ndarray (K,) int64, non-decreasing
        Input image of each output image (slab gaps are absent; a region image repeats).
    object_id, split : ndarray (K,) str
        Per output image; no object spans two splits.
    gap : int
        Dropped between slabs (slices) or tiles (pixels); 0 for patient and volume.
    tile_px : int
        Tile side in pixels (region), else 0.
    tile_origin : ndarray (K, 2) int64 or None
        (row, col) of each tile's top-left pixel in its input image (region), else None.
    note : str
        One line for people: the method, why it was chosen, what was cut.
    """

    method: str
    source_index: np.ndarray
    object_id: np.ndarray
    split: np.ndarray
    gap: int = 0
    tile_px: int = 0
    tile_origin: np.ndarray | None = None
    note: str = ""

    def first_row(self, source_row: int) -> int:
        """The first output row that comes from input row ``source_row`` or a later one."""
        return int(np.searchsorted(self.source_index, source_row, side="left"))

    def take(self, images, *, first_source_row: int = 0) -> np.ndarray:
        """The output images of a block of input images (a new array; the input is unchanged).

        Parameters
        ----------
        images : array_like (B, ..., H, W)
            Input rows ``first_source_row .. first_source_row + B - 1`` (e.g. noisy (B, N, H, W),
            clean (B, H, W)).

        Returns
        -------
        ndarray (K_b, ..., H', W')
            The output rows from that block, in output order (rows
            ``first_row(first_source_row)`` on); H' = W' = ``tile_px`` for region.
        """
        array = np.asarray(images)
        start = self.first_row(first_source_row)
        stop = self.first_row(first_source_row + len(array))
        local = self.source_index[start:stop] - first_source_row
        if self.tile_origin is None:
            return array[local]
        side = self.tile_px
        origins = self.tile_origin[start:stop]
        tiles = [
            array[i, ..., r : r + side, c : c + side]
            for i, (r, c) in zip(local, origins, strict=True)
        ]
        if not tiles:
            return np.empty((0, *array.shape[1:-2], side, side), array.dtype)
        return np.stack(tiles)

    def output_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        """(H', W') of an output image: the tile for region, else the input's."""
        return (self.tile_px, self.tile_px) if self.tile_origin is not None else tuple(image_shape)

    def per_image(self, values) -> np.ndarray:
        """Per-input-image values (I, ...) -> per-output-image values (K, ...)."""
        return np.asarray(values)[self.source_index]

    def to_attrs(self) -> dict[str, str | int]:
        """What the dataset file records: ``split_by``, ``split_gap`` (+ unit), tile, note."""
        unit = {"slab": "slices", "region": "pixels"}.get(self.method, "none")
        return {
            "split_by": self.method,
            "split_gap": int(self.gap),
            "split_gap_unit": unit,
            "split_tile_px": int(self.tile_px),
            "split_note": self.note,
        }


def split_by_object(object_id: Sequence, *, fractions=(0.8, 0.2), rng: np.random.Generator):
    """Assign every image a split so that no object (phantom, patient) spans two splits.

    Parameters
    ----------
    object_id : sequence (I,)
        Object of each image.
    fractions : (train, test) or (train, val, test)
        Fractions of *objects* per split, >= 0, summing to 1. Counts are rounded by largest
        remainder; a split with a positive fraction gets at least one object.
    rng : numpy.random.Generator
        Shuffles the objects.

    Returns
    -------
    ndarray (I,) str
        ``"train"``, ``"val"`` or ``"test"`` per image.
    """
    ids = as_str_ids(object_id)
    frac, names = checked_fractions(fractions)
    objects = np.unique(ids)
    if objects.size < np.count_nonzero(frac):
        raise LowdoseInputError(
            f"{objects.size} objects cannot fill {np.count_nonzero(frac)} non-empty splits"
        )
    counts = object_counts(frac, objects.size)
    order = rng.permutation(objects.size)
    labels = np.repeat(np.array(names), counts)
    split_of = dict(zip(objects[order].tolist(), labels.tolist(), strict=True))
    return np.array([split_of[v] for v in ids.tolist()])


def as_str_ids(values) -> np.ndarray:
    """Per-image ids (any sequence or array) as a flat (I,) str array."""
    return np.array([str(v) for v in np.asarray(values).ravel()])


def checked_fractions(fractions) -> tuple[np.ndarray, tuple[str, ...]]:
    """(fractions as float64, split names) for 2 or 3 values >= 0 summing to 1; else raises."""
    frac = np.asarray(fractions, dtype=np.float64)
    if len(fractions) not in (2, 3) or np.any(~np.isfinite(frac) | (frac < 0)):
        raise LowdoseInputError(f"fractions {fractions!r}: pass 2 or 3 values >= 0")
    if abs(frac.sum() - 1.0) > 1e-6:
        raise LowdoseInputError(f"fractions {fractions!r} sum to {frac.sum():.6g}; make them 1")
    return frac, ("train", "test") if len(fractions) == 2 else SPLITS


def object_counts(frac: np.ndarray, n_objects: int) -> np.ndarray:
    """Objects per split: largest remainder, at least one for every positive fraction."""
    exact = frac * n_objects
    counts = np.maximum(np.floor(exact).astype(int), (frac > 0).astype(int))
    while counts.sum() > n_objects:  # the minimum of one took objects from a big split
        counts[np.argmax(counts - (frac > 0))] -= 1
    while counts.sum() < n_objects:
        counts[np.argmax(exact - counts)] += 1
    return counts


def check_split_table(object_id, split, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-image ``object_id`` and ``split``; return them as (I,) str arrays.

    Raises unless both have one entry per image, every split is one of :data:`SPLITS` and no
    object spans two splits; ``where`` (a file name) opens the message.
    """
    ids = np.array([str(v) for v in np.asarray(object_id).ravel()], dtype=str)
    splits = np.array([str(v) for v in np.asarray(split).ravel()], dtype=str)
    if ids.size == 0 or ids.shape != splits.shape:
        raise LowdoseInputError(
            f"{where}: object_id ({ids.size}) and split ({splits.size}) need one entry per image"
        )
    unknown = sorted(set(splits.tolist()) - set(SPLITS))
    if unknown:
        raise LowdoseInputError(f"{where}: split values {unknown} are unknown; use {SPLITS}")
    pairs = np.unique(np.stack([ids, splits], axis=1), axis=0)  # (unique (object, split), 2)
    objects, counts = np.unique(pairs[:, 0], return_counts=True)
    if np.any(counts > 1):
        name = str(objects[np.argmax(counts > 1)])
        used = pairs[pairs[:, 0] == name, 1].tolist()
        raise LowdoseInputError(f"{where}: object {name!r} spans splits {used}; split by object")
    return ids, splits
