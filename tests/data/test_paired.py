"""Paired differences with a cluster bootstrap over objects: pairing by image whatever the row
order, seeds averaged first, zero for a method against itself, honest width for clustered data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.paired import PairedDifference, paired_difference, paired_table
from lowdose.data.statistics import cluster_bootstrap_ci95


def _rows(method, values, *, tuning="none", model="", seed=-1, objects=None):
    return pd.DataFrame(
        {
            "method": method,
            "model": model,
            "tuning": tuning,
            "image_index": np.arange(len(values)),
            "object_id": objects
            if objects is not None
            else [f"o{i // 2}" for i in range(len(values))],
            "noise_level": 0.1,
            "psnr_db": values,
            "seed": seed,
        }
    )


def test_a_method_against_itself_is_exactly_zero_with_zero_width():
    frame = _rows("noisy", np.linspace(20, 30, 8))
    d = paired_difference(frame, "noisy", "noisy")
    assert (d.mean_db, d.ci_low_db, d.ci_high_db) == (0.0, 0.0, 0.0)
    assert (d.n_images, d.n_objects, d.n_seeds) == (8, 4, 1)


def test_images_pair_by_index_whatever_the_row_order():
    noisy = _rows("noisy", [20.0, 25.0, 30.0, 35.0])
    median = _rows("median", [21.0, 27.0, 33.0, 39.0], tuning="oracle")  # +1, +2, +3, +4
    shuffled = pd.concat([noisy, median.iloc[::-1]]).sample(frac=1.0, random_state=0)
    d = paired_difference(shuffled, "median (oracle)", "noisy")
    assert d.mean_db == pytest.approx(2.5)
    assert d.ci_low_db <= 2.5 <= d.ci_high_db
    assert isinstance(d, PairedDifference) and d.metric == "psnr_db"


def test_seeds_are_averaged_per_image_before_differencing():
    noisy = _rows("noisy", [20.0, 20.0, 20.0, 20.0])
    seeds = [
        _rows("n2n-mse", v, model="unet", seed=s) for s, v in ((1, [22.0] * 4), (2, [26.0] * 4))
    ]
    d = paired_difference(pd.concat([noisy, *seeds]), "n2n-mse (unet)", "noisy")
    assert d.mean_db == pytest.approx(4.0) and d.n_images == 4 and d.n_seeds == 2
    assert d.ci_low_db == pytest.approx(4.0) and d.ci_high_db == pytest.approx(4.0)


def test_one_object_has_no_interval_and_unknown_labels_raise():
    noisy = _rows("noisy", [20.0, 21.0], objects=["a", "a"])
    frame = pd.concat([noisy, _rows("gaussian", [22.0, 24.0], tuning="blind", objects=["a", "a"])])
    d = paired_difference(frame, "gaussian (blind)", "noisy")
    assert d.mean_db == pytest.approx(2.5) and d.n_objects == 1
    assert math.isnan(d.ci_low_db) and math.isnan(d.ci_high_db)
    with pytest.raises(LowdoseInputError, match="gaussian \\(oracle\\)"):
        paired_difference(frame, "gaussian (oracle)", "noisy")
    with pytest.raises(LowdoseInputError, match="column"):
        paired_difference(frame, "gaussian (blind)", "noisy", metric="lpips")


def test_paired_table_covers_every_other_method_in_order():
    frame = pd.concat(
        [
            _rows("noisy", [20.0, 21.0, 22.0, 23.0]),
            _rows("gaussian", [22.0, 23.0, 24.0, 25.0], tuning="oracle"),
            _rows("gaussian", [21.0, 22.0, 23.0, 24.0], tuning="blind"),
        ]
    )
    table = paired_table(frame, "noisy")
    assert [d.method for d in table] == ["gaussian (oracle)", "gaussian (blind)"]
    assert [d.mean_db for d in table] == pytest.approx([2.0, 1.0])


def _clustered(rng, n_objects=8, per_object=10, object_sd=1.0, image_sd=0.2):
    """Per-image differences sharing an object effect: strongly correlated within objects."""
    effect = rng.normal(0.0, object_sd, n_objects)
    values = np.repeat(effect, per_object) + rng.normal(0.0, image_sd, n_objects * per_object)
    return values, np.repeat(np.arange(n_objects), per_object)


def test_cluster_interval_is_wider_than_an_image_level_one_on_clustered_data():
    values, objects = _clustered(np.random.default_rng(1))
    low, high = cluster_bootstrap_ci95(values, objects)
    naive_low, naive_high = cluster_bootstrap_ci95(values, np.arange(len(values)))
    assert high - low > 2 * (naive_high - naive_low)


def test_cluster_interval_covers_the_true_mean_most_of_the_time():
    rng = np.random.default_rng(2)
    hits = 0
    for replication in range(100):
        values, objects = _clustered(rng)
        low, high = cluster_bootstrap_ci95(values, objects, n_boot=400, seed=replication)
        hits += low <= 0.0 <= high
    # percentile bootstrap with 8 clusters under-covers a little; image-level would be ~30 %
    assert hits >= 80
