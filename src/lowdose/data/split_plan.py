"""Split methods: no object, and no neighbouring slice or pixel, lands in two splits.

Methods (:data:`SPLIT_METHODS`; every builder's ``split_by`` and ``--split-by``):

``patient``
    Every patient in exactly one split (DICOM PatientID, a phantom, an input stack file);
    the objects are shuffled by the builder's ``rng`` (:func:`split_by_object`).
``volume``
    The same over volumes (a DICOM series, an input file).
``slab``
    Inside each patient the images, in the order the builder read them (DICOM position order,
    file order for stacks and simulations), are cut into contiguous slabs train | val | test,
    sized by the fractions (at least one slice each); ``slab_gap`` slices (default
    :data:`SLAB_GAP_SLICES`) are dropped between slabs so neighbouring slices never straddle
    two splits. A slab is an object ``<patient>:slab-<split>``.
``region``
    Every image is cut into equal square tiles on a grid with ``region_gap_px`` pixels (default
    :data:`REGION_GAP_PX`) dropped between tiles; the tiles nearest the image centre go to test,
    the next nearest to val, the rest to train, so val and test form one compact block where the
    object usually is (corners are often air or padding). A tile is one
    dataset image and its own object ``<patient>:img<k>:region-r<row>c<col>``; its origin (row,
    col) in the original image is kept (:attr:`SplitPlan.tile_origin`) so outputs can be put
    back together.
``auto``
    ``patient`` if there are at least as many patients as non-empty splits, else ``slab`` if
    every patient has enough slices for the slabs and their gaps, else ``region``.

Tile side (region): the largest multiple of :data:`TILE_STEP_PX` (>= :data:`MIN_TILE_PX`) whose
grid gives each image at least ``ceil(1 / f_min)`` tiles (``f_min`` the smallest positive
fraction: the smallest split then gets about its share of whole tiles); failing that
:data:`MIN_TILE_PX` if the grid still gives every non-empty split a tile. A 512 x 512 image at
(0.8, 0.1, 0.1) becomes 5 x 5 tiles of 96 px: 20 train, 3 val, 2 test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.splits import (
    SPLIT_METHODS,
    SplitPlan,
    as_str_ids,
    checked_fractions,
    object_counts,
    split_by_object,
)

SLAB_GAP_SLICES = 2
REGION_GAP_PX = 8
MIN_TILE_PX = 64
TILE_STEP_PX = 32  # the U-Net halves an image five times


def plan_split(
    patient_id: Sequence,
    *,
    image_shape: tuple[int, int],
    rng: np.random.Generator,
    method: str = "auto",
    volume_id: Sequence | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    slab_gap: int = SLAB_GAP_SLICES,
    region_gap_px: int = REGION_GAP_PX,
    allow_region: bool = True,
) -> SplitPlan:
    """Plan the split of I input images by ``method`` (see the module docstring).

    Parameters
    ----------
    patient_id : sequence (I,)
        Patient (phantom, input file) of each image; images of one patient in slice order.
    image_shape : (H, W)
        Size of every input image in pixels.
    rng : numpy.random.Generator
        Shuffles the objects (patient, volume); slab and region are deterministic.
    method : {"auto", "patient", "volume", "slab", "region"}
    volume_id : sequence (I,), optional
        Volume (series, file) of each image; default the patient.
    fractions : (train, test) or (train, val, test)
        >= 0, summing to 1: of objects (patient, volume), slices (slab) or tiles (region).
    slab_gap, region_gap_px : int
        Slices dropped between slabs (>= 0); pixels dropped between tiles (>= 8).
    allow_region : bool
        False keeps every image whole (``auto`` never picks region; region raises).

    Raises
    ------
    LowdoseInputError
        Unknown method or bad fractions; too few objects, slices or pixels for the splits (one
        line naming the fix).
    """
    patients = as_str_ids(patient_id)
    frac, names = checked_fractions(fractions)
    if method not in SPLIT_METHODS or (method == "region" and not allow_region):
        usable = [m for m in SPLIT_METHODS if allow_region or m != "region"]
        raise LowdoseInputError(f"--split-by {method!r} is unknown here; use one of {usable}")
    if slab_gap < 0 or region_gap_px < REGION_GAP_PX:
        raise LowdoseInputError(f"split gaps {slab_gap} slices, {region_gap_px} px: use >= 0, >= 8")
    why = ""
    if method == "auto":
        method = _auto_method(patients, image_shape, frac, slab_gap, region_gap_px, allow_region)
        why = f" (auto: {np.unique(patients).size} object(s), {np.count_nonzero(frac)} splits)"
    if method == "slab":
        return _slab_plan(patients, frac, names, slab_gap, why)
    if method == "region":
        return _region_plan(patients, image_shape, frac, names, region_gap_px, why)
    ids = patients if method == "patient" or volume_id is None else as_str_ids(volume_id)
    if np.unique(ids).size < np.count_nonzero(frac):
        raise LowdoseInputError(
            f"--split-by {method}: {np.unique(ids).size} objects cannot fill "
            f"{np.count_nonzero(frac)} non-empty splits; use --split-by slab or region (or auto)"
        )
    split = split_by_object(ids, fractions=fractions, rng=rng)
    note = f"split by {method}{why}: {np.unique(ids).size} objects, each in one split"
    return SplitPlan(method, np.arange(ids.size, dtype=np.int64), ids, split, note=note)


def _auto_method(patients, image_shape, frac, slab_gap, gap_px, allow_region) -> str:
    n_splits = int(np.count_nonzero(frac))
    objects, sizes = np.unique(patients, return_counts=True)
    if objects.size >= n_splits:
        return "patient"
    if sizes.min() >= n_splits + (n_splits - 1) * slab_gap:
        return "slab"
    if allow_region and _tiles(image_shape, MIN_TILE_PX, gap_px) >= n_splits:
        return "region"
    height, width = image_shape
    raise LowdoseInputError(
        f"{objects.size} object(s) of {sizes.min()} slice(s) of {height}x{width} cannot fill "
        f"{n_splits} splits (slabs need {n_splits + (n_splits - 1) * slab_gap} slices, regions "
        f"{n_splits} tiles of {MIN_TILE_PX} px); give more slices or objects, or --fractions 1,0,0"
    )


def _slab_plan(patients, frac, names, gap: int, why: str) -> SplitPlan:
    n_splits = int(np.count_nonzero(frac))
    rows_out, objects_out, splits_out = [], [], []
    _, first = np.unique(patients, return_index=True)
    for patient in patients[np.sort(first)]:
        rows = np.flatnonzero(patients == patient)
        usable = rows.size - (n_splits - 1) * gap
        if usable < n_splits:
            raise LowdoseInputError(
                f"--split-by slab: {patient!r} has {rows.size} slice(s) but {n_splits} slabs with "
                f"gaps of {gap} need {n_splits + (n_splits - 1) * gap}; use --split-by region "
                "or give more slices"
            )
        start = 0
        for name, count in zip(names, object_counts(frac, usable), strict=True):
            if count:  # a split without slices gets no gap either
                rows_out.append(rows[start : start + count])
                objects_out += [f"{patient}:slab-{name}"] * count
                splits_out += [name] * count
                start += count + gap
    index = np.concatenate(rows_out)
    order = np.argsort(index, kind="stable")
    note = (
        f"split by slab{why}: each object's slices cut into contiguous "
        f"{' | '.join(n for n, f in zip(names, frac, strict=True) if f)} slabs, {gap} "
        "slices dropped between slabs"
    )
    return SplitPlan(
        "slab",
        index[order].astype(np.int64),
        np.array(objects_out)[order],
        np.array(splits_out)[order],
        gap=gap,
        note=note,
    )


def tile_side_px(image_shape: tuple[int, int], fractions, *, gap_px: int = REGION_GAP_PX) -> int:
    """The region tile side for ``image_shape`` (the module docstring's rule); raises if none."""
    frac, _ = checked_fractions(fractions)
    n_splits = int(np.count_nonzero(frac))
    want = max(n_splits, math.ceil(1.0 / frac[frac > 0].min() - 1e-9))
    largest = min(image_shape) // TILE_STEP_PX * TILE_STEP_PX
    for side in range(largest, MIN_TILE_PX - 1, -TILE_STEP_PX):
        if _tiles(image_shape, side, gap_px) >= want:
            return side
    side, (height, width) = MIN_TILE_PX, image_shape
    if _tiles(image_shape, side, gap_px) >= n_splits:
        return side
    raise LowdoseInputError(
        f"--split-by region: a {height}x{width} image holds {_tiles(image_shape, side, gap_px)} "
        f"tile(s) of {side} px, {n_splits} splits need {n_splits}; use larger images, "
        "more slices (--split-by slab) or --fractions 1,0,0"
    )


def _tiles(image_shape, side: int, gap_px: int) -> int:
    rows, cols = ((n + gap_px) // (side + gap_px) for n in image_shape)
    return rows * cols


def _region_plan(patients, image_shape, frac, names, gap_px: int, why: str) -> SplitPlan:
    side = tile_side_px(image_shape, frac, gap_px=gap_px)
    n_rows, n_cols = ((n + gap_px) // (side + gap_px) for n in image_shape)
    counts = object_counts(frac, n_rows * n_cols)
    # Test tiles nearest the image centre, then val, then train: the object (body, phantom) is
    # usually central and the corners are air or out-of-field padding, which would make a test
    # region without content. The nearest k tiles to a point form one compact block.
    grid = sorted(
        ((r, c) for r in range(n_rows) for c in range(n_cols)),
        key=lambda rc: ((rc[0] - (n_rows - 1) / 2) ** 2 + (rc[1] - (n_cols - 1) / 2) ** 2, rc),
    )
    labels = np.repeat(np.array(names), counts)[::-1]  # (test, val, train) from the centre out
    index, objects, origin = [], [], []
    seen: dict[str, int] = {}
    for row, patient in enumerate(patients.tolist()):
        k = seen[patient] = seen.get(patient, -1) + 1  # the image's number inside its patient
        index += [row] * len(grid)
        objects += [f"{patient}:img{k}:region-r{r}c{c}" for r, c in grid]
        origin += [(r * (side + gap_px), c * (side + gap_px)) for r, c in grid]
    shares = "/".join(str(c) for c in counts if c)
    note = (
        f"split by region{why}: each image cut into {n_rows}x{n_cols} tiles of {side} px "
        f"({gap_px} px dropped between tiles), {shares} tiles per image, test "
        "nearest the centre"
    )
    origin_px = np.asarray(origin, np.int64).reshape(-1, 2)
    return SplitPlan(
        "region",
        np.asarray(index, np.int64),
        np.array(objects),
        np.tile(labels, patients.size),
        gap=gap_px,
        tile_px=side,
        tile_origin=origin_px,
        note=note,
    )


def source_object(object_id: str) -> str:
    """The patient or phantom a split unit came from: ``P1:slab-val`` -> ``P1``, and
    ``P1:img0:region-r1c2`` -> ``P1`` (tiles and slabs of one object are not independent, so
    statistics over objects cluster them back together).

    >>> source_object("P1:img0:region-r1c2"), source_object("P1:slab-test"), source_object("P1")
    ('P1', 'P1', 'P1')
    """
    text = str(object_id)
    for marker in (":slab-", ":img"):
        head, found, tail = text.rpartition(marker)
        if found and (marker == ":slab-" or ":region-r" in tail):
            return head
    return text
