"""An epoch longer than the split draws every item again with a window of its own."""

import numpy as np
import torch

from lowdose.training.datamodule import EpochKeyed, EpochSampler
from lowdose.training.pairs import PairDataset


def test_a_long_epoch_repeats_items_with_fresh_windows(tiny_dataset):
    pairs = PairDataset(tiny_dataset, "train", patch=16, seed=0, in_memory=True)
    n = len(pairs)
    sampler = EpochSampler(n, 6 * n, seed=0, rank=0, world_size=1)
    draws = [draw for _, draw in sampler]
    assert sorted(draws) == list(range(6 * n))  # six passes, every draw once
    assert [pairs.checked_draw(d) for d in draws] == [(d % n, d // n) for d in draws]
    for k in range(n):  # the six draws of item k: its pair, six (almost surely) different windows
        windows = {pairs.augmentation(k + r * n) for r in range(6)}
        assert len(windows) >= 5
        assert len({pairs.source(k + r * n) for r in range(6)}) == 1


def test_the_first_pass_keeps_the_draws_of_a_short_epoch(tiny_dataset):
    # runs whose epoch fits the split (r = 0) draw exactly what they drew before repeats existed
    pairs = PairDataset(tiny_dataset, "train", patch=16, seed=3, in_memory=True)
    for k in range(len(pairs)):
        rng = np.random.default_rng([3, 0, k])
        top = int(rng.integers(0, pairs.image_shape[0] - 16 + 1))
        left = int(rng.integers(0, pairs.image_shape[1] - 16 + 1))
        assert pairs.augmentation(k)[:2] == (top, left)


def test_batches_of_repeats_equal_their_items_drawn_one_by_one(tiny_dataset):
    pairs = PairDataset(tiny_dataset, "train", patch=16, seed=1, in_memory=True)
    keyed = EpochKeyed(pairs)
    keys = [(2, d) for d in (0, len(pairs) + 1, 3 * len(pairs) + 2)]
    inputs, targets = keyed.__getitems__(keys)
    for b, key in enumerate(keys):
        single_input, single_target = keyed[key]
        assert torch.equal(inputs[b], single_input) and torch.equal(targets[b], single_target)
