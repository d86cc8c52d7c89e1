"""The HDF5 dataset file: round trip, layout, atomic writes, validation, splits by object."""

from __future__ import annotations

import math
from dataclasses import replace

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowdose.core.errors import LowdoseInputError
from lowdose.data import dataset as datasets
from lowdose.data import splits
from lowdose.data import writer as dfw
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.splits import check_split_table
from lowdose.physics.noise_levels import achieved_psnr_db

ATTRS = DatasetAttrs(modality="ct", noise_model="gaussian", scaling_rule="dataset_max")


def _arrays(n_images=4, n=2, size=(8, 10), seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 1, (n_images, *size)).astype(np.float32)
    noisy = (clean[:, None] + rng.normal(0, 0.1, (n_images, n, *size))).astype(np.float32)
    object_id = [f"p{i // 2}" for i in range(n_images)]
    split = ["train" if i < 2 else "test" for i in range(n_images)]
    return clean, noisy, object_id, split


def _write(path, **overrides):
    clean, noisy, object_id, split = _arrays()
    kwargs = dict(clean=clean, noisy=noisy, object_id=object_id, split=split, attrs=ATTRS)
    return dfw.write_dataset(path, **{**kwargs, **overrides})


def test_round_trip_layout_and_attributes(tiny_dataset):
    info = datasets.read_info(tiny_dataset)
    assert info.shape == (6, 3, 64, 64) and info.has_clean
    assert info.object_id.tolist() == ["obj0", "obj0", "obj1", "obj1", "obj2", "obj2"]
    attrs = datasets.read_attrs(tiny_dataset)
    required = {
        "modality",
        "noise_model",
        "noise_level",
        "target_psnr_db",
        "achieved_psnr_db",
        "psnr_data_range",
        "scaling_rule",
        "scaling_offset",
        "raw_units",
        "seed",
        "generator",
        "created",
        "n_realisations",
        "description",
    }
    assert required <= set(attrs.to_hdf5())
    assert attrs.n_realisations == 3 and attrs.generator.startswith("lowdose ")
    assert math.isnan(attrs.target_psnr_db) and attrs.psnr_data_range == 1.0
    test = datasets.load_split(tiny_dataset, "test")
    assert test.index.tolist() == [4, 5] and test.noisy.shape == (2, 3, 64, 64)
    assert test.noisy.dtype == np.float32 and test.clean.max() == pytest.approx(1.0)
    everything = [datasets.load_split(tiny_dataset, s) for s in splits.SPLITS]
    clean = np.concatenate([s.clean for s in everything])
    noisy = np.concatenate([s.noisy for s in everything])
    assert attrs.achieved_psnr_db == pytest.approx(achieved_psnr_db(clean, noisy), abs=1e-9)
    with h5py.File(tiny_dataset) as handle:
        assert handle["noisy"].chunks == (1, 1, 64, 64) and handle["clean"].chunks == (1, 64, 64)
        assert handle["noisy"].compression is None  # fast random reads by default
        assert handle["scale"].shape == (6,) and np.all(handle["scale"][()] > 0)


def test_written_values_are_exact_and_compression_is_optional(tmp_path):
    clean, noisy, object_id, split = _arrays()
    path = _write(tmp_path / "packed.h5", compress=True, attrs=replace(ATTRS, seed=42))
    with h5py.File(path) as handle:
        assert handle["noisy"].compression == "gzip" and handle["noisy"].compression_opts == 1
        assert handle["clean"].compression == "gzip"
        assert np.array_equal(handle["noisy"][()], noisy)
        assert np.array_equal(handle["clean"][()], clean)
    assert datasets.read_attrs(path).seed == 42
    train = datasets.load_split(path, "train")
    assert np.array_equal(train.noisy, noisy[:2]) and train.object_id.tolist() == ["p0", "p0"]


def test_measured_data_without_clean(tmp_path):
    path = _write(
        tmp_path / "measured.h5", clean=None, attrs=replace(ATTRS, noise_model="measured")
    )
    split = datasets.load_split(path, "train")
    assert split.clean is None and math.isnan(split.attrs.achieved_psnr_db)


def test_an_exception_while_writing_leaves_no_file_and_keeps_the_old_one(tmp_path):
    clean, noisy, object_id, split = _arrays()
    path = tmp_path / "data.h5"
    with (
        pytest.raises(RuntimeError),
        dfw.dataset_writer(
            path,
            object_id=object_id,
            split=split,
            n_realisations=2,
            image_shape=(8, 10),
            has_clean=True,
            attrs=ATTRS,
        ) as writer,
    ):
        writer.write(0, noisy=noisy[:2], clean=clean[:2])
        raise RuntimeError("killed half way")
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temporary file
    _write(path)
    before = path.read_bytes()
    bad_noisy = noisy.copy()
    bad_noisy[3, 1, 2, 2] = np.nan
    with pytest.raises(LowdoseInputError, match="NaN"):
        _write(path, noisy=bad_noisy)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_block_writer_needs_every_image(tmp_path):
    clean, noisy, object_id, split = _arrays()
    path = tmp_path / "blocks.h5"
    with dfw.dataset_writer(
        path,
        object_id=object_id,
        split=split,
        n_realisations=2,
        image_shape=(8, 10),
        has_clean=True,
        attrs=ATTRS,
    ) as writer:
        writer.write(2, noisy=noisy[2:], clean=clean[2:])
        writer.write(0, noisy=noisy[:2], clean=clean[:2])
    assert np.array_equal(datasets.load_split(path, "test").noisy, noisy[2:])
    with (
        pytest.raises(LowdoseInputError, match="never written"),
        dfw.dataset_writer(
            tmp_path / "short.h5",
            object_id=object_id,
            split=split,
            n_realisations=2,
            image_shape=(8, 10),
            has_clean=True,
            attrs=ATTRS,
        ) as writer,
    ):
        writer.write(0, noisy=noisy[:2], clean=clean[:2])
    assert not (tmp_path / "short.h5").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"noisy": np.zeros((4, 8, 10), np.float32)}, "expected \\(I, N, H, W\\)"),
        ({"clean": np.zeros((4, 8, 11), np.float32)}, "clean has shape"),
        ({"noisy": np.zeros((4, 2, 8, 10), np.int16)}, "dtype int16"),
        ({"clean": np.full((4, 8, 10), np.inf, np.float32)}, "clean contains NaN or Inf"),
        ({"split": ["train", "train", "test", "train"]}, "object 'p1' spans splits"),
        ({"split": ["train", "train", "valid", "valid"]}, "unknown"),
        ({"object_id": ["a", "b", "c"]}, "one entry per image"),
        ({"scale": [1.0, 1.0, 0.0, 1.0]}, "scale"),
        ({"attrs": replace(ATTRS, modality="mri")}, "modality"),
        ({"attrs": {"modality": "ct", "noise_model": "gaussian"}}, "scaling_rule"),
        ({"attrs": ATTRS.with_extra(extra=[1, 2])}, "attribute extra"),
        ({"attrs": replace(ATTRS, psnr_data_range=0.0)}, "psnr_data_range"),
    ],
)
def test_bad_arrays_raise_one_line_naming_the_file(tmp_path, overrides, message):
    path = tmp_path / "bad.h5"
    with pytest.raises(LowdoseInputError, match=message) as caught:
        _write(path, **overrides)
    assert "bad.h5" in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:.*in memory only")
def test_opening_a_missing_corrupt_or_foreign_file_names_file_and_key(tmp_path):
    with pytest.raises(LowdoseInputError, match="missing.h5: no such dataset file"):
        datasets.read_info(tmp_path / "missing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"this is not HDF5" * 100)
    with pytest.raises(LowdoseInputError, match="corrupt.h5: not a readable HDF5"):
        datasets.load_split(corrupt, "train")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["noisy"] = np.zeros((2, 2, 4, 4), np.float32)
        handle["object_id"] = np.array([b"a", b"b"])
    with pytest.raises(LowdoseInputError, match="foreign.h5: no 'split'.*add a 'split' dataset"):
        datasets.read_attrs(foreign)  # 2 images of 2 objects: too few to split in memory
    with h5py.File(foreign, "a") as handle:
        handle["split"] = np.array([b"train", b"test"])  # fixed-length bytes also read
    assert datasets.read_info(foreign).split.tolist() == ["train", "test"]
    with pytest.raises(LowdoseInputError, match="split 'val' is empty"):
        datasets.load_split(foreign, "val")
    with pytest.raises(LowdoseInputError, match="unknown"):
        datasets.load_split(foreign, "validation")


def test_sha256_identifies_the_split_table(tmp_path):
    first = datasets.dataset_sha256(_write(tmp_path / "a.h5"))
    same = datasets.dataset_sha256(_write(tmp_path / "b.h5", compress=True))
    clean, noisy, object_id, split = _arrays()
    swapped = ["test", "test", "train", "train"]
    other = datasets.dataset_sha256(_write(tmp_path / "c.h5", split=swapped))
    assert first == same and first != other and len(first) == 64


@pytest.mark.parametrize(
    ("fractions", "counts"),
    [
        ((0.8, 0.2), {"train": 8, "test": 2}),
        ((0.8, 0.0, 0.2), {"train": 8, "test": 2}),
        ((0.7, 0.1, 0.2), {"train": 7, "val": 1, "test": 2}),
        ((0.9, 0.05, 0.05), {"train": 8, "val": 1, "test": 1}),
    ],
)
def test_split_by_object_counts_objects(fractions, counts):
    object_id = np.repeat([f"phantom{k}" for k in range(10)], 3)  # 10 objects x 3 images
    split = splits.split_by_object(object_id, fractions=fractions, rng=np.random.default_rng(0))
    per_object = {o: set(split[object_id == o]) for o in set(object_id)}
    assert all(len(s) == 1 for s in per_object.values())
    names, objects = np.unique(
        [split[object_id == o][0] for o in sorted(set(object_id))], return_counts=True
    )
    assert dict(zip(names.tolist(), objects.tolist(), strict=True)) == counts


def test_split_by_object_is_seeded_and_validated():
    ids = [f"o{k}" for k in range(20)]
    a = splits.split_by_object(ids, fractions=(0.5, 0.5), rng=np.random.default_rng(1))
    b = splits.split_by_object(ids, fractions=(0.5, 0.5), rng=np.random.default_rng(1))
    c = splits.split_by_object(ids, fractions=(0.5, 0.5), rng=np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(LowdoseInputError, match="sum to"):
        splits.split_by_object(ids, fractions=(0.5, 0.4), rng=np.random.default_rng(0))
    with pytest.raises(LowdoseInputError, match="2 or 3 values"):
        splits.split_by_object(ids, fractions=(1.2, -0.2), rng=np.random.default_rng(0))
    with pytest.raises(LowdoseInputError, match="cannot fill"):
        splits.split_by_object(["x", "x"], fractions=(0.5, 0.5), rng=np.random.default_rng(0))


@settings(max_examples=40, deadline=None)
@given(
    n_objects=st.integers(3, 30),
    repeats=st.lists(st.integers(1, 5), min_size=30, max_size=30),
    train=st.floats(0.05, 0.9),
    val_share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_never_cuts_an_object(n_objects, repeats, train, val_share, seed):
    object_id = np.repeat(np.arange(n_objects), repeats[:n_objects])
    val = (1 - train) * val_share * 0.5
    fractions = (train, val, 1 - train - val)
    split = splits.split_by_object(object_id, fractions=fractions, rng=np.random.default_rng(seed))
    assert split.shape == object_id.shape
    for o in range(n_objects):
        assert len(set(split[object_id == o].tolist())) == 1
    assert {"train", "test"} <= set(split.tolist())  # positive fractions always get an object
    check_split_table(object_id, split, where="hypothesis")  # the writer accepts it


def test_a_killed_build_leaves_nothing_under_the_final_name(tmp_path):
    import signal
    import subprocess
    import sys

    script = f"""
import os, signal, numpy as np
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.writer import dataset_writer
with dataset_writer({str(tmp_path / "killed.h5")!r}, object_id=["a", "b"], split=["train", "test"],
                    n_realisations=2, image_shape=(8, 8), has_clean=False,
                    attrs=DatasetAttrs(modality="ct", noise_model="gaussian",
                                      scaling_rule="dataset_max")) as writer:
    writer.write(0, noisy=np.zeros((1, 2, 8, 8), np.float32))
    os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert not (tmp_path / "killed.h5").exists()
    assert [p.name.startswith(".killed.h5.") for p in tmp_path.iterdir()] == [True]  # temp only


def test_typed_attributes_round_trip_through_a_file(tmp_path):
    given = replace(
        ATTRS,
        noise_level=0.05,
        target_psnr_db=24.44,
        scaling_offset=1024.0,
        raw_units="hu",
        seed=7,
        description="round trip",
    ).with_extra(views=90, hu_window="-1000..1000", fbp=True)
    attrs = datasets.read_attrs(_write(tmp_path / "typed.h5", attrs=given))
    assert isinstance(attrs, DatasetAttrs) and attrs.is_ct_hu
    assert (
        replace(
            attrs,
            achieved_psnr_db=given.achieved_psnr_db,
            n_realisations=0,
            generator="",
            created="",
        )
        == given
    )
    assert attrs.n_realisations == 2 and np.isfinite(attrs.achieved_psnr_db)
    assert dict(attrs.extra) == {"views": 90, "hu_window": "-1000..1000", "fbp": True}
    split = datasets.load_split(tmp_path / "typed.h5", "test")
    assert split.attrs == attrs and split.scale.dtype == np.float64
    assert np.array_equal(split.scale, np.ones(2)) and split.scale.shape == split.index.shape
    scale = [1.0, 2.0, 3.0, 4.0]
    path = _write(tmp_path / "scaled.h5", scale=scale)
    assert datasets.load_split(path, "test").scale.tolist() == [3.0, 4.0]
    assert datasets.read_scale(path).tolist() == scale


@pytest.mark.filterwarnings("ignore:.*in memory only")
def test_a_hand_written_minimal_file_reads_with_defaults(tmp_path):
    path = tmp_path / "minimal.h5"
    with h5py.File(path, "w") as handle:
        handle["noisy"] = np.zeros((2, 2, 4, 4), np.float32)
        handle["object_id"] = np.array([b"a", b"b"])
        handle["split"] = np.array([b"train", b"test"])
        handle.attrs.update(
            {
                "modality": "ct",
                "noise_model": "measured",
                "scaling_rule": "none",
                "scanner": b"ACME 64",
            }
        )
    with pytest.warns(UserWarning, match="minimal.h5: no 'scale': every divisor is 1"):
        attrs = datasets.read_attrs(path)
    assert (attrs.modality, attrs.noise_model, attrs.scaling_rule) == ("ct", "measured", "none")
    assert math.isnan(attrs.noise_level) and math.isnan(attrs.achieved_psnr_db)
    assert attrs.psnr_data_range == 1.0 and attrs.scaling_offset == 0.0 and attrs.seed == -1
    assert attrs.raw_units == "unknown" and not attrs.is_ct_hu
    assert dict(attrs.extra) == {"scanner": "ACME 64"}  # builder-specific keys survive
    assert datasets.load_split(path, "test").scale.tolist() == [1.0]  # no scale stored
    with h5py.File(path, "a") as handle:
        del handle.attrs["modality"], handle.attrs["noise_model"], handle.attrs["scaling_rule"]
    bare = datasets.read_attrs(path)
    assert (bare.modality, bare.noise_model, bare.scaling_rule) == ("xray", "measured", "none")
    with h5py.File(path, "a") as handle:
        handle.attrs["scaling_rule"] = "per_pixel"
    with pytest.raises(LowdoseInputError, match="minimal.h5: attribute scaling_rule='per_pixel'"):
        datasets.read_info(path)
    with h5py.File(path, "a") as handle:
        handle.attrs["scaling_rule"] = "none"
        handle.attrs["noise_level"] = "high"
    with pytest.raises(LowdoseInputError, match="minimal.h5: attribute noise_level='high'"):
        datasets.read_attrs(path)


def test_builder_specific_keys_survive_in_extra(tmp_path):
    legacy = {**ATTRS.to_hdf5(), "views": 90, "pixel_mm_mean": 0.75, "note": "old file"}
    path = _write(tmp_path / "legacy.h5", attrs=legacy)  # a flat mapping, as older code wrote
    attrs = datasets.read_attrs(path)
    assert dict(attrs.extra) == {"views": 90, "pixel_mm_mean": 0.75, "note": "old file"}
    with h5py.File(path) as handle:
        assert handle.attrs["views"] == 90 and handle.attrs["modality"] == "ct"


def test_write_and_summarise_reads_the_file_back(tmp_path):
    import time

    from lowdose.data.build import write_and_summarise

    clean, noisy, object_id, split = _arrays()
    summary = write_and_summarise(
        tmp_path / "s.h5",
        clean=clean,
        noisy=noisy,
        object_id=object_id,
        split=split,
        scale=[2.0, 2.0, 4.0, 4.0],
        attrs=replace(ATTRS, target_psnr_db=20.0),
        started_s=time.perf_counter(),
        details={"note": 1},
    )
    assert summary.shape == (4, 2, 8, 10) and summary.n_realisations == 2
    assert summary.shape_hw == (8, 10) and summary.has_clean and summary.divisor == 4.0
    assert summary.split_counts == {"train": 2, "val": 0, "test": 2}
    assert summary.split_objects == {"train": 1, "val": 0, "test": 1} and summary.n_objects == 2
    assert repr(summary.attrs) == repr(datasets.read_attrs(tmp_path / "s.h5"))  # NaN != NaN
    assert summary.achieved_psnr_db == pytest.approx(achieved_psnr_db(clean, noisy), abs=1e-9)
    text = summary.describe()
    assert "4 images x 2 realisations, 8x10, 2 objects" in text and "(target 20.00)" in text
    assert "val" not in text and summary.details == {"note": 1}


@pytest.mark.filterwarnings("ignore:.*in memory only")
def test_a_file_with_only_noisy_is_split_in_memory_and_never_rewritten(tmp_path):
    path = tmp_path / "by_hand.h5"
    noisy = np.random.default_rng(3).normal(size=(12, 2, 16, 16)).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle["noisy"] = noisy
    before = path.read_bytes()
    with pytest.warns(UserWarning) as caught:
        info = datasets.read_info(path)
    (message,) = [str(w.message) for w in caught]  # one warning naming the file and each key
    assert message.startswith(f"{path}:") and "no 'scale'" in message
    assert "no 'object_id'" in message and "no 'split': split by slab" in message
    assert info.shape == (12, 2, 16, 16)
    parts = {s: datasets.load_split(path, s) for s in splits.SPLITS}
    for name, part in parts.items():
        assert part.noisy.shape[0] >= 1 and np.array_equal(part.noisy, noisy[part.index])
        assert set(part.object_id.tolist()) == {f"by_hand:slab-{name}"}
        assert np.all(part.scale == 1.0) and part.tile_origin is None and part.fov is None
    used = np.concatenate([p.index for p in parts.values()])
    assert used.size == 12 - 4 and len(set(used.tolist())) == used.size  # 2 gaps of 2 slices
    assert parts["train"].index.max() < parts["val"].index.min() <= parts["val"].index.max()
    again = datasets.read_info(path)  # deterministic: the same split every time
    assert np.array_equal(again.split, info.split) and path.read_bytes() == before
    with h5py.File(path, "r") as handle:
        assert set(handle) == {"noisy"}  # nothing was written into the user's file


def test_a_file_with_objects_but_no_split_splits_by_object(tmp_path):
    path = tmp_path / "objects.h5"
    with h5py.File(path, "w") as handle:
        handle["noisy"] = np.zeros((6, 2, 8, 8), np.float32)
        handle["object_id"] = np.array([b"a", b"a", b"b", b"c", b"d", b"e"])
        handle["scale"] = np.ones(6, np.float32)
    with pytest.warns(UserWarning, match="no 'split': split by patient"):
        info = datasets.read_info(path)
    check_split_table(info.object_id, info.split, where="in memory")
    assert set(info.split.tolist()) == set(splits.SPLITS)


def test_tile_origin_and_fov_round_trip(tmp_path):
    clean, noisy, object_id, split = _arrays()
    origin = np.array([[0, 0], [0, 18], [18, 0], [18, 18]])
    fov = np.ones((4, 8, 10), bool)
    fov[:, 0, 0] = False
    path = _write(tmp_path / "tiles.h5", tile_origin=origin, fov=fov)
    test = datasets.load_split(path, "test")
    assert test.tile_origin.tolist() == origin[2:].tolist() and test.tile_origin.dtype == np.int64
    assert test.fov.dtype == bool and np.array_equal(test.fov, fov[2:])
    with pytest.raises(LowdoseInputError, match="tile_origin has shape"):
        _write(tmp_path / "bad.h5", tile_origin=origin[:3])


def test_view_splits_are_recognised_from_a_sinogram_and_from_the_simulator():
    # one idea, two writers: from-sinogram / from-projections say split_views, simulate ct
    # --view-subsets says realisations_are = view_subsets; both select by the raw pair score
    assert not ATTRS.is_view_split
    assert ATTRS.with_extra(split_views=2).is_view_split
    assert ATTRS.with_extra(realisations_are="view_subsets").is_view_split
    assert not ATTRS.with_extra(realisations_are="independent_scans").is_view_split
