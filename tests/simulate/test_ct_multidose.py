"""Multi-dose sinogram CT files: each slice once per dose, the patient split kept, per-dose
noise and attributes, clean-free Noise2Noise training on the merged file, and refusals."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pandas as pd
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import read_info, read_scale
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct import build_ct_dataset
from lowdose.simulate.ct_multidose import (
    build_multidose_ct_dataset,
    merge_ct_doses,
    read_image_doses,
    single_dose_path,
)

DOSES = (1.0, 0.1, 0.01)  # descending: each tenfold drop of I0 ~ sqrt(10) more noise sd
SLICES = {
    "source": "phantom",
    "size": 32,
    "views": 30,
    "n_phantoms": 3,
    "slices_per_phantom": 2,
    "fractions": (0.34, 0.33, 0.33),
    "split_by": "patient",
}


def arrays(path) -> dict:
    with h5py.File(path, "r") as handle:
        return {key: handle[key][()] for key in handle}


@pytest.fixture(scope="module")
def multidose(tmp_path_factory):
    """(merged summary, [single-dose paths in DOSES order]) of tiny phantom slices."""
    folder = tmp_path_factory.mktemp("multidose")
    summary = build_multidose_ct_dataset(
        folder / "ct.h5", dose_fractions=DOSES, dose_folder=folder / "doses", **SLICES
    )
    return summary, [single_dose_path(folder / "ct.h5", d, folder / "doses") for d in DOSES]


def test_every_slice_appears_once_per_dose_with_that_doses_scans(multidose):
    summary, singles = multidose
    merged = arrays(summary.path)
    n_rows = read_info(singles[0]).shape[0]
    assert summary.shape == (len(DOSES) * n_rows, 2, 32, 32)
    doses = read_image_doses(summary.path)
    for k, path in enumerate(singles):
        one, rows = arrays(path), slice(k * n_rows, (k + 1) * n_rows)
        np.testing.assert_array_equal(merged["noisy"][rows], one["noisy"])
        np.testing.assert_array_equal(merged["clean"][rows], one["clean"])
        np.testing.assert_array_equal(merged["object_id"][rows], one["object_id"])
        np.testing.assert_array_equal(read_scale(summary.path)[rows], read_scale(path))
        photons = read_info(path).attrs.extra["photons_per_ray"]
        assert np.all(doses.photons_per_ray[rows] == photons)
        assert np.all(doses.dose_fraction[rows] == DOSES[k])
    assert summary.details.dose_files == tuple(singles)


def test_a_patient_stays_in_its_one_split_at_every_dose(multidose):
    summary, singles = multidose
    merged, single = read_info(summary.path), read_info(singles[0])
    for patient in np.unique(merged.object_id):
        assert np.unique(merged.split[merged.object_id == patient]).size == 1
        assert np.sum(merged.object_id == patient) == len(DOSES) * np.sum(
            single.object_id == patient
        )
    for split in ("train", "val", "test"):
        in_merged = set(merged.object_id[merged.split == split].tolist())
        assert in_merged == set(single.object_id[single.split == split].tolist()) != set()
        assert summary.split_counts[split] == len(DOSES) * int(np.sum(single.split == split))


def test_lower_dose_means_more_noise_drawn_independently_of_the_other_doses(multidose):
    summary, _ = multidose
    merged, doses = arrays(summary.path), read_image_doses(summary.path)
    residual = merged["noisy"] - merged["clean"][:, None]  # (I, N, H, W) about the noise-free FBP
    sd = [float(np.std(residual[doses.dose_fraction == d])) for d in DOSES]
    ratios = np.array(sd[1:]) / np.array(sd[:-1])
    assert np.all(ratios > 2.0) and np.all(ratios < 4.5), sd  # ~sqrt(10) per tenfold
    first, second = (residual[doses.dose_fraction == d][:, 0].ravel() for d in DOSES[:2])
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.3  # no shared draws between doses


def test_attributes_hold_no_single_level_and_every_doses_own_values(multidose):
    summary, singles = multidose
    attrs, single_attrs = summary.attrs, [read_info(p).attrs for p in singles]
    assert math.isnan(attrs.noise_level) and math.isnan(attrs.target_psnr_db)
    achieved = [a.achieved_psnr_db for a in single_attrs]
    assert min(achieved) < attrs.achieved_psnr_db < max(achieved)
    assert attrs.noise_model == "sinogram" and attrs.is_ct_hu
    extra = attrs.extra
    assert "photons_per_ray" not in extra and "noise_sd_hu" not in extra  # differ per dose
    for key in ("views", "filter_name", "pixel_mm_mean", "data_max", "split_by"):
        assert extra[key] == single_attrs[0].extra[key]  # the geometry and split, kept
    per_dose = json.loads(extra["multi_dose_per_dose"])
    assert [r["dose_fraction"] for r in per_dose] == list(DOSES)
    for record, single in zip(per_dose, single_attrs, strict=True):
        assert record["photons_per_ray"] == single.extra["photons_per_ray"]
        assert record["noise_sd_hu"] == single.extra["noise_sd_hu"]
    assert extra["multi_dose_fractions"] == "1,0.1,0.01"
    assert 0.0 < extra["noise_corr_lag1_col"] < 1.0  # measured again, over every dose


def test_files_made_at_a_photon_count_merge_with_their_equivalent_fraction(tmp_path):
    paths = [
        build_ct_dataset(
            tmp_path / f"i{i0:g}.h5",
            noise="sinogram",
            level=NoiseLevel(photons_per_ray=i0),
            **SLICES,
        ).path
        for i0 in (4e6, 1e6)
    ]
    summary = merge_ct_doses(tmp_path / "merged.h5", paths)
    doses, n_rows = read_image_doses(summary.path), read_info(paths[0]).shape[0]
    for k, path in enumerate(paths):
        extra = read_info(path).attrs.extra
        assert math.isnan(extra["dose_fraction"])  # no fraction was given...
        rows = slice(k * n_rows, (k + 1) * n_rows)  # ... so the I0's equivalent is recorded
        assert np.all(doses.dose_fraction[rows] == extra["dose_fraction_equivalent"])
        assert np.all(doses.photons_per_ray[rows] == extra["photons_per_ray"])


def test_inputs_that_are_not_one_set_of_slices_raise_and_write_nothing(multidose, tmp_path):
    _, singles = multidose
    out = tmp_path / "merged.h5"
    half = NoiseLevel(dose_fraction=0.5)
    other = build_ct_dataset(
        tmp_path / "other.h5", noise="sinogram", level=half, **{**SLICES, "seed": 1}
    ).path
    awgn = build_ct_dataset(tmp_path / "awgn.h5", noise="awgn", **SLICES).path
    cases = [
        ([singles[0], other], "differ"),  # other phantoms: other clean slices
        ([singles[0], awgn], "noise_model 'gaussian'"),
        ([singles[0], singles[0]], "same photons_per_ray"),
        ([singles[0]], "two or more"),
    ]
    for inputs, message in cases:
        with pytest.raises(LowdoseInputError, match=message) as error:
            merge_ct_doses(out, inputs)
        assert "\n" not in str(error.value)
        assert not out.exists()
    for fractions in ((1.0,), (1.0, 1.0), (1.0, -0.5)):
        with pytest.raises(LowdoseInputError, match="dose_fractions"):
            build_multidose_ct_dataset(out, dose_fractions=fractions, **SLICES)
    with pytest.raises(LowdoseInputError, match="level: set by build_multidose_ct_dataset"):
        level = NoiseLevel(target_psnr_db=30.0)
        build_multidose_ct_dataset(out, dose_fractions=DOSES, level=level, **SLICES)
    assert not out.exists()


def test_noise2noise_trains_on_the_merged_file_and_evaluate_reads_it(multidose, tmp_path):
    import torch

    from lowdose.evaluation.evaluate import evaluate
    from lowdose.models.checkpoint import load_model
    from lowdose.training.config import make_train_config
    from lowdose.training.run import train

    torch.set_num_threads(1)
    summary, _ = multidose
    config = make_train_config(
        {
            "data": summary.path,
            "out": tmp_path / "run",
            "mode": "n2n",
            "width": 8,
            "patch": 32,
            "batch_size": 4,
            "samples_per_epoch": 8,
            "epochs": 2,
            "threads": 1,
            "quiet": True,
            "seed": 0,
            "accelerator": "cpu",
        }
    )
    assert config.data.val_reference == "realisation"  # clean-free selection
    result = train(config)
    assert result.global_step == 4 and (tmp_path / "run" / "best.ckpt").is_file()
    assert load_model(tmp_path / "run" / "best.ckpt")[1].selection == "clean-free"
    evaluate(
        summary.path, models=[tmp_path / "run" / "best.ckpt"], filters=[], out_dir=tmp_path / "eval"
    )
    results = pd.read_csv(tmp_path / "eval" / "results.csv")
    n_test = summary.split_counts["test"]
    assert results.groupby("method").size().tolist() == [n_test, n_test]  # noisy and the model
    assert results["noise_level"].isna().all()  # no one level: per image, read_image_doses
    assert np.isfinite(results["psnr_db"]).all()
