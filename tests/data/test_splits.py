"""Splits that never dead-end: patient, volume, slab (with gaps), region (tiles with gaps), auto."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowdose.core.errors import LowdoseInputError
from lowdose.data.split_plan import MIN_TILE_PX, TILE_STEP_PX, plan_split, tile_side_px
from lowdose.data.splits import check_split_table, split_by_object

RNG = np.random.default_rng


def _plan(patient_id, shape=(64, 64), **options):
    return plan_split(patient_id, image_shape=shape, rng=RNG(0), **options)


def _one_line_error(call) -> str:
    with pytest.raises(LowdoseInputError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("patients", "shape", "method"),
    [
        (np.repeat([f"p{k}" for k in range(6)], 4), (64, 64), "patient"),
        (np.repeat(["p0"], 20), (64, 64), "slab"),
        (np.repeat(["p0", "p1"], 12), (64, 64), "slab"),
        (np.array(["img"]), (512, 512), "region"),
        (np.repeat(["a", "b"], 2), (256, 200), "region"),
    ],
)
def test_auto_picks_the_method_and_no_object_spans_two_splits(patients, shape, method):
    plan = _plan(patients, shape)
    assert plan.method == method
    check_split_table(plan.object_id, plan.split, where="plan")  # the writer accepts it
    assert {"train", "val", "test"} == set(plan.split.tolist())
    assert np.all(np.diff(plan.source_index) >= 0) and plan.split.shape == plan.object_id.shape
    assert plan.to_attrs()["split_by"] == method and plan.note.startswith(f"split by {method}")
    assert "auto" in plan.note


def test_one_object_of_20_slices_is_cut_into_contiguous_slabs_with_gaps():
    plan = _plan(["P1"] * 20)
    assert plan.method == "slab" and plan.gap == 2
    rows = {s: plan.source_index[plan.split == s] for s in ("train", "val", "test")}
    for name, index in rows.items():
        assert index.size >= 1 and np.all(np.diff(index) == 1), name  # contiguous
        assert set(plan.object_id[plan.split == name].tolist()) == {f"P1:slab-{name}"}
    assert rows["train"][0] == 0 and rows["test"][-1] == 19  # nothing lost at the ends
    assert rows["val"][0] - rows["train"][-1] == 3 and rows["test"][0] - rows["val"][-1] == 3
    assert plan.source_index.size == 20 - 2 * 2  # only the gaps are dropped
    assert rows["train"].size > rows["val"].size  # sized by the fractions (0.8, 0.1, 0.1)
    assert plan.to_attrs() | {"split_note": ""} == {
        "split_by": "slab",
        "split_gap": 2,
        "split_gap_unit": "slices",
        "split_tile_px": 0,
        "split_note": "",
    }


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    gap=st.integers(0, 4),
    train=st.floats(0.1, 0.9),
    with_val=st.booleans(),
)
def test_slabs_never_share_a_neighbourhood(sizes, gap, train, with_val):
    fractions = (train, (1 - train) / 2, (1 - train) / 2) if with_val else (train, 1 - train)
    patients = np.repeat([f"p{k}" for k in range(len(sizes))], sizes)
    n_splits = len(fractions)
    if min(sizes) < n_splits + (n_splits - 1) * gap:
        message = _one_line_error(
            lambda: _plan(patients, method="slab", slab_gap=gap, fractions=fractions)
        )
        assert "--split-by region" in message
        return
    plan = _plan(patients, method="slab", slab_gap=gap, fractions=fractions)
    check_split_table(plan.object_id, plan.split, where="slab")
    for patient, size in zip(sorted(set(patients)), sizes, strict=True):
        mine = np.char.startswith(plan.object_id, f"{patient}:")
        index, split = plan.source_index[mine], plan.split[mine]
        assert index.size == size - (n_splits - 1) * gap
        changes = np.flatnonzero(split[1:] != split[:-1])
        assert changes.size == n_splits - 1  # one slab per split, in order
        assert np.all(index[changes + 1] - index[changes] == gap + 1)  # exactly the gap between


def test_one_512_image_is_cut_into_tiles_with_gaps_and_compact_test_region():
    image = RNG(1).normal(size=(1, 2, 512, 512)).astype(np.float32)
    before = image.copy()
    plan = _plan(["img3"], (512, 512))
    assert plan.method == "region" and plan.gap == 8
    side = plan.tile_px
    assert side >= MIN_TILE_PX and side % TILE_STEP_PX == 0
    tiles = plan.take(image)  # (K, 2, side, side)
    assert tiles.shape == (plan.split.size, 2, side, side)
    assert np.array_equal(image, before)  # the input is not modified
    boxes = plan.tile_origin
    assert boxes.shape == (plan.split.size, 2) and boxes.min() >= 0 and boxes.max() + side <= 512
    for k, (row, col) in enumerate(boxes):
        assert np.array_equal(tiles[k], image[0, :, row : row + side, col : col + side])
        for other_row, other_col in boxes[k + 1 :]:  # separated by >= the gap on some axis
            assert abs(row - other_row) >= side + 8 or abs(col - other_col) >= side + 8
    labels = plan.split.tolist()
    assert labels == sorted(labels, key=["test", "val", "train"].index)  # centre outwards
    centre = (512 - side) / 2
    distance = np.hypot(*(boxes - centre).T)  # (K,) tile origin to the centred tile's origin
    for inner, outer in (("test", "val"), ("val", "train")):
        assert distance[plan.split == inner].max() <= distance[plan.split == outer].min()
    test_boxes = boxes[plan.split == "test"]  # compact: test tiles are grid neighbours
    assert np.abs(test_boxes[:, None] - test_boxes[None]).max() <= side + 8
    assert plan.object_id[0].startswith("img3:img0:region-r")
    assert (
        plan.to_attrs()["split_tile_px"] == side and plan.to_attrs()["split_gap_unit"] == "pixels"
    )


def test_region_blocks_give_the_same_tiles_as_the_whole_stack():
    images = RNG(2).normal(size=(3, 1, 160, 224)).astype(np.float32)
    plan = _plan(["a", "a", "b"], (160, 224), method="region", fractions=(0.5, 0.5))
    whole = plan.take(images)
    blocks = [plan.take(images[k : k + 1], first_source_row=k) for k in range(3)]
    assert [plan.first_row(k) for k in range(3)] == [0, len(blocks[0]), 2 * len(blocks[0])]
    assert np.array_equal(np.concatenate(blocks), whole)
    assert plan.per_image(np.array([1.0, 2.0, 3.0])).tolist() == sorted(
        plan.per_image(np.array([1.0, 2.0, 3.0])).tolist()
    )
    assert {"a:img0", "a:img1", "b:img0"} == {o.split(":region")[0] for o in plan.object_id}


def test_tile_side_rule():
    assert tile_side_px((512, 512), (0.8, 0.1, 0.1)) == 96  # 5 x 5 >= 10 tiles
    assert tile_side_px((512, 512), (0.5, 0.5)) == 224  # 2 x 2 >= 2 tiles, largest side
    assert tile_side_px((200, 140), (0.8, 0.1, 0.1)) == 64  # only 3 x 2 fit: still 1 per split


def test_patient_and_volume_keep_the_old_split():
    patients = np.repeat(["p0", "p1", "p2", "p3", "p4"], 3)
    volumes = np.array([f"{p}-{k % 2}" for k, p in enumerate(patients)])
    plan = _plan(patients, method="patient")
    old = split_by_object(patients, fractions=(0.8, 0.1, 0.1), rng=RNG(0))
    assert np.array_equal(plan.split, old) and np.array_equal(plan.source_index, np.arange(15))
    by_volume = _plan(patients, method="volume", volume_id=volumes)
    check_split_table(volumes, by_volume.split, where="volume")
    assert by_volume.method == "volume" and by_volume.gap == 0


def test_impossible_splits_name_the_fix():
    message = _one_line_error(lambda: _plan(["one"], (64, 64)))
    assert "--fractions 1,0,0" in message and "64x64" in message
    assert "--split-by region" in _one_line_error(lambda: _plan(["one"], method="slab"))
    assert "slab or region" in _one_line_error(lambda: _plan(["a", "b"], method="patient"))
    assert "1,0,0" in _one_line_error(lambda: _plan(["one"], (100, 100), method="region"))
    assert "unknown" in _one_line_error(lambda: _plan(["one"], method="slice"))
    assert "unknown" in _one_line_error(lambda: _plan(["a"], method="region", allow_region=False))
    single = _plan(["one"], (64, 64), fractions=(1.0, 0.0, 0.0))  # the named fix works
    assert single.method == "patient" and single.split.tolist() == ["train"]
