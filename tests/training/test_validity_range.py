"""The validity range, measured clean-free after training, stored in the checkpoint, and the
``lowdose denoise`` warning for inputs outside it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lowdose.training.validity as validity_module
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.writer import write_dataset
from lowdose.inference.files import denoise_files, input_noise_sigma, validity_warning
from lowdose.models.checkpoint import load_model
from lowdose.models.unet import UNet
from lowdose.training.validity import (
    METHOD,
    METHOD_ACQUIRED_ONLY,
    measure_validity,
    store_validity,
    validity_span,
)

KEYS = ["estimator", "scale", "sigma_low", "sigma_high", "trained_sigma", "levels", "method"]


def _box_blur(size: int, offset: float = 0.0) -> torch.nn.Module:
    """A fixed ``size`` x ``size`` mean filter (plus a constant): a denoiser with no training."""
    conv = torch.nn.Conv2d(1, 1, size, padding=size // 2, padding_mode="reflect")
    with torch.no_grad():
        conv.weight.fill_(1.0 / size**2)
        conv.bias.fill_(offset)
    return conv


def test_identity_has_no_gain_and_the_sigmas_follow_the_dose(tiny_dataset):
    result = measure_validity(torch.nn.Identity(), tiny_dataset, levels=(0.25, 0.5, 0.1))
    assert list(result) == KEYS and result["method"] == METHOD
    assert (result["estimator"], result["scale"]) == ("single_image_noise_sigma", "network")
    fractions = [level["dose_fraction"] for level in result["levels"]]
    assert fractions == [1.0, 0.5, 0.25, 0.1]  # the acquired dose is always measured, first
    assert all(level["gain_db"] == pytest.approx(0.0, abs=1e-9) for level in result["levels"])
    assert (result["sigma_low"], result["sigma_high"]) == (0.0, 0.0)  # the empty range
    # Poisson noise: sigma ~ 1 / sqrt(dose) (the estimator is within a few % of that)
    for level in result["levels"]:
        expected = result["trained_sigma"] / np.sqrt(level["dose_fraction"])
        assert level["sigma"] == pytest.approx(expected, rel=0.05)


def test_a_denoiser_that_helps_everywhere_spans_every_level(tiny_dataset, monkeypatch):
    calls = []
    original = validity_module.load_split

    def spy(path, split, *, with_clean=True):
        calls.append((split, with_clean))
        return original(path, split, with_clean=with_clean)

    monkeypatch.setattr(validity_module, "load_split", spy)
    blur = _box_blur(3).train()
    result = measure_validity(blur, tiny_dataset, seed=3)
    assert calls == [("val", False)]  # clean-free: the clean array is never read
    assert blur.training  # the caller's mode is restored
    gains = [level["gain_db"] for level in result["levels"]]
    sigmas = [level["sigma"] for level in result["levels"]]
    assert all(gain > 3.0 for gain in gains)  # a 3x3 mean: up to 9.5 dB on smooth images
    assert sigmas == sorted(sigmas)
    assert result["sigma_low"] <= result["trained_sigma"] == sigmas[0]
    assert result["sigma_high"] >= sigmas[-1]
    json.dumps(result, allow_nan=False)  # plain values, ready for a manifest
    assert measure_validity(blur, tiny_dataset, seed=3) == result  # seeded


def test_the_range_must_start_at_the_acquired_dose(tiny_dataset):
    # A wide blur with an offset hurts at the acquired dose and helps only far below it: the
    # range is contiguous from the acquired dose, so it is empty.
    result = measure_validity(_box_blur(9, offset=0.03), tiny_dataset, levels=(0.02,))
    first, last = result["levels"]
    assert first["gain_db"] < 0 < last["gain_db"]
    assert (result["sigma_low"], result["sigma_high"]) == (0.0, 0.0)


def test_the_span_stops_at_the_first_level_without_gain():
    rows = [{"gain_db": g} for g in (2.0, 0.5, float("nan"), 4.0)]
    sigmas = [np.array([0.9, 1.1]), np.array([1.5, 1.8]), np.array([3.0]), np.array([5.0])]
    assert validity_span(rows, sigmas) == (0.9, 1.8)
    assert validity_span(rows[:1], sigmas[:1]) == (0.9, 1.1)


def test_sinogram_noise_is_measured_at_the_acquired_dose_only(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.random((6, 1, 32, 32)) * 0.5 + 0.25
    attrs = DatasetAttrs(modality="ct", noise_model="sinogram", scaling_rule="dataset_max",
                         noise_level=700.0)  # fmt: skip
    data = write_dataset(
        tmp_path / "sino.h5", clean=None, noisy=clean + rng.normal(0, 0.05, (6, 2, 32, 32)),
        object_id=[f"p{i // 2}" for i in range(6)], split=["train", "train", "val", "val",
        "test", "test"], attrs=attrs,
    )  # fmt: skip
    result = measure_validity(torch.nn.Identity(), data)
    assert [level["dose_fraction"] for level in result["levels"]] == [1.0]
    assert result["method"] == METHOD_ACQUIRED_ONLY


def _checkpoint(path):
    """A real checkpoint file (Lightning layout) of a tiny U-Net that works on raw values."""
    torch.manual_seed(0)
    network = UNet(width=4)
    hparams = {"model": network.config(), "mode": "n2n", "loss": "mse", "meta": {"seed": 1}}
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": 7}, path)
    return path


VALIDITY = {
    "estimator": "single_image_noise_sigma", "scale": "network", "sigma_low": 0.01,
    "sigma_high": 0.05, "trained_sigma": 0.012, "method": METHOD,
    "levels": [{"dose_fraction": 1.0, "sigma": 0.012, "gain_db": 6.0},
               {"dose_fraction": 0.1, "sigma": 0.04, "gain_db": 2.0}],
}  # fmt: skip


def test_store_validity_adds_the_key_and_keeps_the_rest(tmp_path):
    path = _checkpoint(tmp_path / "run" / "best.ckpt")
    before = torch.load(path, weights_only=True)
    store_validity(path, VALIDITY)
    after = torch.load(path, weights_only=True)
    assert after["hyper_parameters"]["meta"] == {"seed": 1, "validity": VALIDITY}
    assert after["global_step"] == 7 and after["state_dict"].keys() == before["state_dict"].keys()
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    assert [p.name for p in path.parent.iterdir()] == ["best.ckpt"]  # no temporary file left
    _, meta = load_model(path)
    assert meta.validity.sigma_low == 0.01 and meta.validity.sigma_high == 0.05


def _smooth(rng, size=96):
    rows, cols = np.mgrid[:size, :size] / size
    return 0.5 + 0.2 * np.sin(2 * np.pi * rows) * np.cos(2 * np.pi * cols)


def test_denoise_warns_once_per_input_outside_the_range(tmp_path):
    model = _checkpoint(tmp_path / "run" / "best.ckpt")
    store_validity(model, VALIDITY)
    rng = np.random.default_rng(0)
    inputs = {}
    for name, sigma in [("inside", 0.02), ("noisy", 0.2), ("clean", 0.001)]:
        inputs[name] = tmp_path / "in" / f"{name}.npy"
        inputs[name].parent.mkdir(exist_ok=True)
        stack = np.stack([_smooth(rng) + rng.normal(0, sigma, (96, 96)) for _ in range(3)])
        np.save(inputs[name], stack.astype(np.float32))
    lines = []
    written = denoise_files(list(inputs.values()), tmp_path / "out", model, warn=lines.append)
    assert len(written) == 3 and len(lines) == 2
    noisy, clean = lines
    assert noisy.startswith(f"{inputs['noisy']}: estimated noise sigma 0.2")
    assert "validity range 0.01..0.05" in noisy and "--dose-range" in noisy
    assert clean.startswith(f"{inputs['clean']}: ") and "cleaner than" in clean
    assert not any(str(inputs["inside"]) in line for line in lines)
    assert all("\n" not in line for line in lines)


def test_the_input_sigma_is_measured_on_the_network_scale(ct_scaling):
    rng = np.random.default_rng(1)
    hu = np.stack([_smooth(rng) * 1000 - 500 + rng.normal(0, 30, (96, 96)) for _ in range(40)])
    sigma = input_noise_sigma(hu, ct_scaling)  # (HU + 1024) / 3000
    assert sigma == pytest.approx(30 / 3000, rel=0.1)
    empty = type("Range", (), {"sigma_low": 0.0, "sigma_high": 0.0})()
    assert "no gain" in validity_warning("a.npy", sigma, empty)
