"""PairDataset: pair counts, every ordered pair once, crops inside the image, one transform for
input and target, determinism independent of DataLoader workers, the fast in-memory path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import DataLoader

from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import load_split, read_info
from lowdose.training.pairs import PairDataset
from lowdose.training.windows import dihedral, undo_dihedral


@pytest.mark.parametrize("n", [2, 3, 4])
def test_pair_counts(make_tiny_dataset, n):
    path = make_tiny_dataset(f"n{n}.h5", n_realisations=n, size=32)
    for split in ("train", "val", "test"):  # 2 images per split
        assert len(PairDataset(path, split, mode="n2n", patch=16)) == 2 * n * (n - 1)
        assert len(PairDataset(path, split, mode="n2c", patch=16)) == 2 * n


def test_splits_are_disjoint_by_object(tiny_dataset):
    objects = {
        s: set(load_split(tiny_dataset, s).object_id.tolist()) for s in ("train", "val", "test")
    }
    assert objects["train"].isdisjoint(objects["val"] | objects["test"])
    assert objects["val"].isdisjoint(objects["test"])
    rows = {s: {PairDataset(tiny_dataset, s).source(k)[0] for k in range(12)} for s in objects}
    assert rows == {"train": {0, 1}, "val": {2, 3}, "test": {4, 5}}


def test_every_ordered_pair_once_and_never_with_itself(make_tiny_dataset):
    path = make_tiny_dataset(n_realisations=4, size=32)
    noisy = load_split(path, "train").noisy  # (2, 4, 32, 32)
    ds = PairDataset(path, "train", patch=None, augment=False)
    seen = []
    for k in range(len(ds)):
        source, target = (t[0].numpy() for t in ds[k])
        match = [(m, r) for m in range(2) for r in range(4) if np.array_equal(noisy[m, r], source)]
        ((image, i),) = match
        (j,) = [r for r in range(4) if np.array_equal(noisy[image, r], target)]
        seen.append((image, i, j))
    expected = [(m, i, j) for m in range(2) for i in range(4) for j in range(4) if i != j]
    assert sorted(seen) == expected  # each ordered pair exactly once, no (i, i)


def _locate(window: np.ndarray, image: np.ndarray) -> set[tuple[int, int, int]]:
    """All (top, left, transform) with dihedral(image[top:, left:][:p, :p], transform) == window."""
    p = window.shape[0]
    candidates = sliding_window_view(image, (p, p))  # (H-p+1, W-p+1, p, p)
    found = set()
    for transform in range(8):
        undone = undo_dihedral(window, transform)
        for top, left in np.argwhere(candidates[:, :, 0, 0] == undone[0, 0]):  # cheap pre-filter
            if np.array_equal(candidates[top, left], undone):
                found.add((int(top), int(left), transform))
    return found


@pytest.mark.parametrize("mode", ["n2n", "n2c"])
def test_crops_lie_inside_the_image_with_one_transform_for_both(tiny_dataset, mode):
    arrays = load_split(tiny_dataset, "train")
    ds = PairDataset(tiny_dataset, "train", mode=mode, patch=24, augment=True, seed=3)
    transforms, corners = set(), set()
    for epoch in range(36 // len(ds)):  # 36 draws of 8 transforms (fixed seed)
        ds.set_epoch(epoch)
        for k in range(len(ds)):
            source, target = (t.numpy() for t in ds[k])
            assert source.shape == target.shape == (1, 24, 24) and source.dtype == np.float32
            row, i, j = ds.source(k)
            position = int(np.flatnonzero(arrays.index == row)[0])
            reference = arrays.noisy[position, j] if j >= 0 else arrays.clean[position]
            found = _locate(source[0], arrays.noisy[position, i])
            assert found, "input crop is not a window of its realisation"
            assert found & _locate(target[0], reference)  # same window, same transform
            assert ds.augmentation(k) in found
            transforms |= {t for _, _, t in found}
            corners |= {(top, left) for top, left, _ in found}
    assert transforms == set(range(8)) and len(corners) > 20


def test_dihedral_group_and_inverse():
    image = np.arange(12.0).reshape(3, 4)
    outputs = {dihedral(image, t).tobytes() + bytes(dihedral(image, t).shape) for t in range(8)}
    assert len(outputs) == 8  # eight distinct transforms
    for t in range(8):
        assert np.array_equal(undo_dihedral(dihedral(image, t), t), image)


@pytest.mark.parametrize("in_memory", [False, True])
def test_batches_do_not_depend_on_worker_count(tiny_dataset, in_memory):
    ds = PairDataset(tiny_dataset, "train", patch=32, seed=5, in_memory=in_memory)
    ds.set_epoch(2)

    def batches(workers: int):
        loader = DataLoader(ds, batch_size=5, shuffle=False, num_workers=workers)
        return [(a.clone(), b.clone()) for a, b in loader]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 3 and serial[0][0].shape == (5, 1, 32, 32)
    for (a0, b0), (a2, b2) in zip(serial, parallel, strict=True):
        assert torch.equal(a0, a2) and torch.equal(b0, b2)


def test_in_memory_batch_path_equals_per_item_path(tiny_dataset):
    for mode in ("n2n", "n2c"):
        lazy = PairDataset(tiny_dataset, "train", mode=mode, patch=32, seed=9)
        fast = PairDataset(tiny_dataset, "train", mode=mode, patch=32, seed=9, in_memory=True)
        lazy.set_epoch(4)
        fast.set_epoch(4)
        indices = [5, 0, 3, 11 if mode == "n2n" else 1, 2]
        inputs, targets = fast.sample_batch(indices)
        assert inputs.shape == targets.shape == (5, 1, 32, 32) and inputs.dtype == torch.float32
        for b, k in enumerate(indices):
            source, target = lazy[k]
            assert torch.equal(inputs[b], source) and torch.equal(targets[b], target)
            assert torch.equal(fast[k][0], source)
        lazy_inputs, _ = lazy.sample_batch(indices)
        assert torch.equal(lazy_inputs, inputs)


def test_n2c_target_is_the_clean_crop(tiny_dataset):
    arrays = load_split(tiny_dataset, "test")
    ds = PairDataset(tiny_dataset, "test", mode="n2c", patch=16, augment=False, seed=1)
    for k in range(len(ds)):
        source, target = (t[0].numpy() for t in ds[k])
        row, i, j = ds.source(k)
        top, left, transform = ds.augmentation(k)
        assert j == -1 and transform == 0
        position = row - 4  # test rows are 4 and 5
        assert np.array_equal(target, arrays.clean[position, top : top + 16, left : left + 16])
        assert np.array_equal(source, arrays.noisy[position, i, top : top + 16, left : left + 16])


def test_epoch_and_seed_change_the_draws_and_pickling_reopens(tiny_dataset):
    ds = PairDataset(tiny_dataset, "train", patch=16, seed=0)
    first = [ds.augmentation(k) for k in range(len(ds))]
    ds.set_epoch(1)
    assert [ds.augmentation(k) for k in range(len(ds))] != first
    other = PairDataset(tiny_dataset, "train", patch=16, seed=1)
    assert [other.augmentation(k) for k in range(len(ds))] != first
    item = ds[3]  # opens the HDF5 handle
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handle is None and torch.equal(clone[3][0], item[0])
    ds.close()
    assert torch.equal(ds[3][1], item[1])  # reopens after close


def test_whole_non_square_images_keep_their_shape(make_tiny_dataset):
    path = make_tiny_dataset(size=(24, 40))
    ds = PairDataset(path, "val", patch=None, augment=True)
    shapes = {tuple(ds[k][0].shape) for k in range(len(ds))}
    assert shapes == {(1, 24, 40)}
    assert {ds.augmentation(k)[2] for k in range(len(ds))} <= {0, 2, 4, 6}
    inputs, _ = PairDataset(path, "val", patch=None, in_memory=True).sample_batch(range(6))
    assert inputs.shape == (6, 1, 24, 40)


def test_bad_arguments_raise_clear_errors(make_tiny_dataset):
    no_clean = make_tiny_dataset("noclean.h5", with_clean=False, size=32)
    single = make_tiny_dataset("single.h5", n_realisations=1, size=32)
    assert read_info(single).shape[1] == 1
    with pytest.raises(LowdoseInputError, match="'n2c' needs clean"):
        PairDataset(no_clean, "train", mode="n2c")
    with pytest.raises(LowdoseInputError, match="needs >= 2 realisations"):
        PairDataset(single, "train", mode="n2n")
    assert len(PairDataset(single, "train", mode="n2c", patch=32)) == 2
    with pytest.raises(LowdoseInputError, match="patch 64 is larger than the 32x32"):
        PairDataset(no_clean, "train", patch=64)
    for bad in ({"patch": 0}, {"mode": "n2s"}, {"seed": -1}, {"split": "holdout"}):
        with pytest.raises(LowdoseInputError):
            PairDataset(no_clean, **{"split": "train", "patch": 16, **bad})
    ds = PairDataset(no_clean, "train", patch=16)
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(LowdoseInputError, match="epoch"):
        ds.set_epoch(-1)
