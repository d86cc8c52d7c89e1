"""``--dose-range``: clean-free, seeded, resumable dose augmentation, and its one-line errors."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split
from lowdose.data.writer import write_dataset
from lowdose.training.config import load_train_config, make_train_config
from lowdose.training.datamodule import EpochKeyed, EpochSampler
from lowdose.training.pairs import PairDataset

RANGE = (0.1, 0.5)


def _zeroed_clean_twin(path, twin):
    """A copy of ``path`` whose ``clean`` array is all zeros (nothing else differs)."""
    shutil.copy(path, twin)
    with h5py.File(twin, "r+") as handle:
        handle["clean"][...] = 0.0
    return twin


@pytest.mark.parametrize("mode", ["n2n", "n2v"])
@pytest.mark.parametrize("in_memory", [False, True])
def test_dose_range_samples_never_read_the_clean_array(tiny_dataset, tmp_path, mode, in_memory):
    twin = _zeroed_clean_twin(tiny_dataset, tmp_path / "zeroed.h5")
    batches = []
    for path in (tiny_dataset, twin):
        pairs = PairDataset(
            path, "train", mode=mode, patch=32, seed=4, dose_range=RANGE, in_memory=in_memory
        )
        assert pairs._arrays is None or pairs._arrays.clean is None  # never loaded
        batches.append(pairs.sample_batch(range(len(pairs))))
    (inputs, targets), (twin_inputs, twin_targets) = batches
    assert torch.equal(inputs, twin_inputs) and torch.equal(targets, twin_targets)
    plain = PairDataset(tiny_dataset, "train", mode=mode, patch=32, seed=4)
    assert not torch.equal(plain.sample_batch(range(len(plain)))[0], inputs)  # it did re-noise
    if mode == "n2v":  # one acquisition: the re-noised patch is its own target
        assert torch.equal(inputs, targets)


def test_each_realisation_is_thinned_independently_and_keeps_its_mean(tiny_dataset):
    pairs = PairDataset(
        tiny_dataset,
        "train",
        mode="n2n",
        patch=None,
        augment=False,
        seed=0,
        dose_range=(0.2, 0.2),
        in_memory=True,
    )
    stored = PairDataset(tiny_dataset, "train", mode="n2n", patch=None, augment=False, seed=0)
    inputs, targets = (t.double().numpy() for t in pairs.sample_batch(range(len(pairs))))
    raw_inputs, raw_targets = (t.double().numpy() for t in stored.sample_batch(range(len(pairs))))
    # Var(y_i - y_j) / 2 of a pair grows by 1/p = 5 when both are re-noised independently
    ratio = np.var(inputs - targets) / np.var(raw_inputs - raw_targets)
    assert ratio == pytest.approx(5.0, rel=0.1)
    # the same object: thinning keeps every image's mean
    assert np.mean(inputs) == pytest.approx(np.mean(raw_inputs), rel=0.01)


def test_n2c_re_noises_only_its_input_and_keeps_the_clean_target(tiny_dataset):
    pairs = PairDataset(
        tiny_dataset, "train", mode="n2c", patch=16, augment=False, seed=2, dose_range=RANGE
    )
    clean = load_split(tiny_dataset, "train").clean
    for k in range(len(pairs)):
        top, left, _ = pairs.augmentation(k)
        _, target = pairs[k]
        position = k // len(pairs.pairs)
        expected = clean[position, top : top + 16, left : left + 16]
        assert np.array_equal(target[0].numpy(), expected)


def test_doses_are_log_uniform_in_the_range_and_repeat_after_a_resume(tiny_dataset):
    pairs = PairDataset(tiny_dataset, "train", mode="n2n", patch=32, seed=7, dose_range=RANGE)
    doses = []
    for epoch in range(60):
        pairs.set_epoch(epoch)
        doses += [pairs.dose_fraction(k) for k in range(len(pairs))]
    doses = np.array(doses)
    assert RANGE[0] <= doses.min() and doses.max() <= RANGE[1]
    # log-uniform: the position of log(dose) in the log range is uniform, mean 1/2, sd 1/sqrt(12)
    position = np.log(doses / RANGE[0]) / np.log(RANGE[1] / RANGE[0])
    assert abs(position.mean() - 0.5) < 5 / np.sqrt(12 * len(doses))
    assert abs(np.mean(position < 0.5) - 0.5) < 5 * 0.5 / np.sqrt(len(doses))

    def batches(sampler):
        loader = DataLoader(
            EpochKeyed(pairs), batch_size=4, sampler=sampler, collate_fn=lambda batch: batch
        )
        return [(a.clone(), b.clone()) for a, b in loader]

    full = EpochSampler(len(pairs), 24, seed=7, rank=0, world_size=1)
    full.set_epoch(2)
    uninterrupted = batches(full)
    resumed = EpochSampler(len(pairs), 24, seed=7, rank=0, world_size=1)
    resumed.resume_at(2, 8)  # two batches of 4 were done before the kill
    again = batches(resumed)
    assert len(again) == len(uninterrupted) - 2
    for (a, b), (c, d) in zip(uninterrupted[2:], again, strict=True):
        assert torch.equal(a, c) and torch.equal(b, d)


def test_dose_range_config_from_yaml_and_the_flag(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("data: d.h5\nout: o\ndose_range: [0.05, 1]\n")
    config = load_train_config(config_file)
    assert config.data.dose_range == (0.05, 1.0)
    saved = yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json")))
    assert saved["data"]["dose_range"] == [0.05, 1.0]
    fixed = make_train_config({"data": "d", "out": "o", "dose_range": "0.2:0.2"})
    assert fixed.data.dose_range == (0.2, 0.2)
    assert make_train_config({"data": "d", "out": "o"}).data.dose_range is None
    with pytest.raises(LowdoseInputError, match="dose_range: use LOW:HIGH"):
        make_train_config({"data": "d", "out": "o", "dose_range": [0.5]})


@pytest.mark.parametrize("bad", ["0:1", "0.5:1.5", "0.8:0.2", "a:b", "0.5", "-0.1:0.5"])
def test_bad_dose_ranges_are_one_error_line(bad, tiny_dataset, tmp_path, invoke_cli):
    out = tmp_path / "run"
    result = invoke_cli(
        ["train", "--data", str(tiny_dataset), "--out", str(out), "--dose-range", bad]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "dose_range" in lines[0] and "0 < LOW <= HIGH <= 1" in lines[0]
    assert not out.exists()


def test_dose_range_on_sinogram_noise_is_one_error_line(tmp_path, invoke_cli):
    rng = np.random.default_rng(0)
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="sinogram",
        scaling_rule="dataset_max",
        noise_level=700.0,
        scaling_offset=1024.0,
        raw_units="hu",
    )
    split = ["train"] * 2 + ["val"] * 2 + ["test"] * 2
    data = write_dataset(
        tmp_path / "sino.h5",
        clean=None,
        noisy=rng.random((6, 2, 32, 32)),
        object_id=[f"p{i // 2}" for i in range(6)],
        split=split,
        attrs=attrs,
    )
    out = tmp_path / "run"
    result = invoke_cli(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--dose-range",
            "0.1:1",
            "--patch",
            "32",
            "--width",
            "4",
            "--threads",
            "1",
            "--quiet",
        ]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "sinogram-noise CT" in lines[0] and "--dose-range" in lines[0]
    assert not (out / "config.yaml").exists()


def test_a_short_training_with_dose_range_runs_and_records_it(tiny_dataset, tmp_path, invoke_cli):
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(tiny_dataset),
        "--out",
        str(out),
        "--dose-range",
        "0.1:1",
        "--max-steps",
        "20",
        "--validations",
        "2",
        "--width",
        "4",
        "--patch",
        "32",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--quiet",
        "--accelerator",
        "cpu",
    ]
    result = invoke_cli(args)
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["dose_range"] == [0.1, 1.0]
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == 20
    rows = np.genfromtxt(out / "metrics.csv", delimiter=",", names=True)
    assert list(rows["step"]) == [10, 20] and np.all(np.isfinite(rows["val_upsnr_db"]))
