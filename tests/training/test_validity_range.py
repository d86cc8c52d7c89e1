"""The validity range, measured clean-free after training, stored in the checkpoint, and the
``lowdose denoise`` warning for inputs outside it."""

from __future__ import annotations

import json
import math
import re

import h5py
import numpy as np
import pytest
import torch

import lowdose.training.validity as validity_module
from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split
from lowdose.data.scaling import NetworkScaling
from lowdose.data.writer import write_dataset
from lowdose.inference.files import denoise_files
from lowdose.inference.validity_check import input_noise_levels, validity_warnings
from lowdose.models.checkpoint import ValidityRange, load_model
from lowdose.models.unet import UNet
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.training.validity import (
    METHOD,
    METHOD_ACQUIRED_ONLY,
    gain_from_umse,
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


class _Shrink(torch.nn.Module):
    """``x -> a x + (1 - a) c``: shrinks towards a constant; its MSE follows from the clean."""

    def __init__(self, a: float, c: float):
        super().__init__()
        self.a, self.c = a, c

    def forward(self, x):
        return self.a * x + (1 - self.a) * self.c


def _spy_sigmas(monkeypatch) -> list[np.ndarray]:
    """Record the per-image sigma estimates of every level the sweep measures."""
    seen = []
    original = validity_module._sigma_estimates

    def spy(images, inside):
        seen.append(original(images, inside))
        return seen[-1]

    monkeypatch.setattr(validity_module, "_sigma_estimates", spy)
    return seen


def test_identity_has_no_gain_and_the_sigmas_follow_the_dose(tiny_dataset):
    result = measure_validity(torch.nn.Identity(), tiny_dataset, levels=(0.25, 0.5, 0.1))
    assert list(result) == KEYS and result["method"] == METHOD
    assert (result["estimator"], result["scale"]) == ("single_image_noise_sigma", "network")
    fractions = [level["dose_fraction"] for level in result["levels"]]
    assert fractions == [1.0, 0.5, 0.25, 0.1]  # the acquired dose is always measured, first
    assert all(level["gain_db"] == 0.0 and not level["helped"] for level in result["levels"])
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
    seen = _spy_sigmas(monkeypatch)
    blur = _box_blur(3).train()
    result = measure_validity(blur, tiny_dataset, seed=3)
    assert calls == [("val", False)]  # clean-free: the clean array is never read
    assert blur.training  # the caller's mode is restored
    gains = [level["gain_db"] for level in result["levels"]]
    assert all(gain > 3.0 for gain in gains)  # a 3x3 mean: up to 9.5 dB on smooth images
    assert all(level["helped"] for level in result["levels"])
    assert len(seen) == len(result["levels"])  # one set of estimates per level
    assert [level["sigma"] for level in result["levels"]] == [np.median(s) for s in seen]
    # every level helps: from the least noisy input at the acquired dose to the noisiest one
    # at the lowest dose
    assert result["sigma_low"] == np.min(seen[0]) and result["sigma_high"] == np.max(seen[-1])
    assert result["trained_sigma"] == np.median(seen[0])
    json.dumps(result, allow_nan=False)  # plain values, ready for a manifest
    assert measure_validity(blur, tiny_dataset, seed=3) == result  # seeded


def test_the_sweep_sigma_is_on_the_scale_denoise_gives_the_raw_images(tiny_dataset, monkeypatch):
    # The file stores each projection divided by its clean maximum; denoise divides a raw
    # projection by the smoothed maximum of the noisy image. The sweep must measure the latter.
    seen = _spy_sigmas(monkeypatch)
    measure_validity(torch.nn.Identity(), tiny_dataset, levels=(1.0,))
    split = load_split(tiny_dataset, "val", with_clean=False)
    raw = split.noisy[:, :2] * split.scale[:, None, None, None]  # transmission, as acquired
    scaling = NetworkScaling(scaling_rule="per_image_max", raw_units="transmission")
    xray = ValidityRange(0.01, 0.1, 0.02, "single_image_noise_sigma")  # network scale
    expected = input_noise_levels(np.concatenate([raw[:, 0], raw[:, 1]]), scaling, xray)
    np.testing.assert_allclose(seen[0], expected, rtol=1e-5)
    stored = [single_image_noise_sigma(image) for image in split.noisy[:, 0]]
    assert np.max(np.abs(np.array(stored) / expected[: len(stored)] - 1)) > 0.01  # it matters


def test_the_range_must_start_at_the_acquired_dose(tiny_dataset):
    # A wide blur with an offset hurts at the acquired dose and helps only far below it: the
    # range is contiguous from the acquired dose, so it is empty.
    result = measure_validity(_box_blur(9, offset=0.03), tiny_dataset, levels=(0.02,))
    first, last = result["levels"]
    assert first["gain_db"] < 0 < last["gain_db"] and (first["helped"], last["helped"]) == (
        False,
        True,
    )
    assert (result["sigma_low"], result["sigma_high"]) == (0.0, 0.0)


def test_the_span_stops_at_the_first_level_where_the_model_does_not_help():
    rows = [{"helped": h} for h in (True, True, False, True)]
    sigmas = [np.array([0.9, 1.1]), np.array([1.5, 1.8]), np.array([3.0]), np.array([5.0])]
    assert validity_span(rows, sigmas) == (0.9, 1.8)
    assert validity_span(rows[:1], sigmas[:1]) == (0.9, 1.1)
    assert validity_span([{"helped": False}, *rows], [sigmas[0], *sigmas]) == (0.0, 0.0)


def test_an_output_error_below_what_the_pairs_resolve_helps_without_a_db_value():
    assert gain_from_umse(4e-4, 2e-4) == (True, pytest.approx(10 * math.log10(2)))
    assert gain_from_umse(4e-4, 8e-4) == (False, pytest.approx(-10 * math.log10(2)))
    assert gain_from_umse(4e-4, -1e-7) == (True, None)  # no +170 dB from a floor
    assert gain_from_umse(4e-4, 0.0) == (True, None)
    assert gain_from_umse(-1e-7, 2e-4) == (False, None)
    assert gain_from_umse(2e-4, 2e-4) == (False, 0.0)


def _awgn_file(path, *, sigma: float, amplitude: float, size: int = 128):
    """CT-like AWGN file: 6 smooth slices (1 train, 4 val, 1 test), N = 2; returns (path, clean)."""
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[:size, :size] / size
    phases = rng.uniform(0, 2 * np.pi, (6, 1, 1))
    clean = 0.4 + amplitude * np.sin(2 * np.pi * rows + phases) * np.cos(3 * np.pi * cols)
    noisy = clean[:, None] + sigma * rng.standard_normal((6, 2, size, size))
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="gaussian",
        scaling_rule="dataset_max",
        noise_level=sigma,
        scaling_offset=1024.0,
        raw_units="hu",
    )
    write_dataset(
        path,
        clean=clean.astype(np.float32),
        noisy=noisy.astype(np.float32),
        object_id=["p0", "p1", "p2", "p3", "p4", "p5"],
        split=["train", "val", "val", "val", "val", "test"],
        scale=np.full(6, 3000.0),
        attrs=attrs,
    )
    return path, clean.astype(np.float32)[1:5]


def _shrink_gain_and_se_db(a: float, b_squared: np.ndarray, sigma: float) -> tuple[float, float]:
    """Expected clean-free gain (dB) of ``a x + (1 - a) c`` and its standard error.

    Per pixel of a pair (n1, n2 ~ N(0, sigma^2) independent; b = (1 - a)(c - x)), both
    directions averaged and Var(y1 - y2) / 2 subtracted: uMSE_in = (n1 - n2)^2 / 2 (variance
    2 sigma^4), uMSE_out = a^2 (n1^2 + n2^2) / 2 + b^2 - b (1 - a)(n1 + n2) + (1 - 2a) n1 n2
    (variance a^4 sigma^4 + 2 b^2 (1 - a)^2 sigma^2 + (1 - 2a)^2 sigma^4), covariance
    (a^2 + 2a - 1) sigma^4; the delta method turns these into the SE of 10 log10(in / out).
    """
    n = b_squared.size
    umse_in, umse_out = sigma**2, a**2 * sigma**2 + b_squared.mean()
    var_in = 2 * sigma**4 / n
    var_out = (
        a**4 * sigma**4
        + (1 - 2 * a) ** 2 * sigma**4
        + 2 * (1 - a) ** 2 * sigma**2 * b_squared.mean()
    ) / n
    cov = (a**2 + 2 * a - 1) * sigma**4 / n
    relative = var_in / umse_in**2 + var_out / umse_out**2 - 2 * cov / (umse_in * umse_out)
    return 10 * math.log10(umse_in / umse_out), 10 / math.log(10) * math.sqrt(relative)


def test_the_clean_free_gain_is_the_gain_against_clean(tmp_path):
    sigma, a = 0.02, 0.5
    path, clean = _awgn_file(tmp_path / "ct.h5", sigma=sigma, amplitude=0.03)
    c = float(clean.mean())
    result = measure_validity(_Shrink(a, c), path, levels=(0.5, 0.1))
    # CT in HU: the noise sd in HU (white here: 0.02 x 3000 = 60 HU), by the spectrum estimator
    assert (result["estimator"], result["scale"]) == ("single_image_noise_sd", "hu")
    assert result["trained_sigma"] == pytest.approx(sigma * 3000.0, rel=0.1)
    b_squared = ((1 - a) * (c - clean.astype(np.float64))) ** 2  # the shrink's bias, per pixel
    for level in result["levels"]:
        sigma_now = sigma / math.sqrt(level["dose_fraction"])  # AWGN re-noised to this dose
        expected, se = _shrink_gain_and_se_db(a, b_squared, sigma_now)
        assert se < 0.05 and level["helped"]
        assert level["gain_db"] == pytest.approx(expected, abs=4 * se), level
    # at the acquired dose, the same realisations scored against clean give the same gain
    noisy = load_split(path, "val").noisy[:, :2].astype(np.float64)
    inputs = np.concatenate([noisy[:, 0], noisy[:, 1]])
    truth = np.concatenate([clean, clean]).astype(np.float64)
    against_clean = 10 * math.log10(
        np.mean((inputs - truth) ** 2) / np.mean((a * inputs + (1 - a) * c - truth) ** 2)
    )
    _, se = _shrink_gain_and_se_db(a, b_squared, sigma)
    assert result["levels"][0]["gain_db"] == pytest.approx(against_clean, abs=4 * se)


def test_a_renoisable_file_that_cannot_be_re_noised_raises(make_tiny_dataset):
    path = make_tiny_dataset(n_realisations=2)
    with h5py.File(path, "a") as handle:
        handle.attrs["noise_level"] = 700.0  # not the 1000 photons the values were stored with
    with pytest.raises(LowdoseInputError, match="not whole photon counts"):
        measure_validity(torch.nn.Identity(), path, levels=(0.5,))
    with h5py.File(path, "a") as handle:
        handle.attrs["noise_level"] = float("nan")
    with pytest.raises(LowdoseInputError, match="noise_level is nan"):
        measure_validity(torch.nn.Identity(), path)


def test_sinogram_noise_is_measured_at_the_acquired_dose_only(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.random((6, 1, 32, 32)) * 0.5 + 0.25
    attrs = DatasetAttrs(
        modality="ct", noise_model="sinogram", scaling_rule="dataset_max", noise_level=700.0
    )
    data = write_dataset(
        tmp_path / "sino.h5",
        clean=None,
        noisy=clean + rng.normal(0, 0.05, (6, 2, 32, 32)),
        object_id=[f"p{i // 2}" for i in range(6)],
        split=["train", "train", "val", "val", "test", "test"],
        attrs=attrs,
    )
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
    "estimator": "single_image_noise_sigma",
    "scale": "network",
    "sigma_low": 0.01,
    "sigma_high": 0.05,
    "trained_sigma": 0.012,
    "method": METHOD,
    "levels": [
        {"dose_fraction": 1.0, "sigma": 0.012, "gain_db": 6.0},
        {"dose_fraction": 0.1, "sigma": 0.04, "gain_db": 2.0},
    ],
}


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


def test_an_undefined_gain_is_stored_as_nan_and_a_corrupt_checkpoint_is_one_line(tmp_path):
    path = _checkpoint(tmp_path / "run" / "best.ckpt")
    undefined = {**VALIDITY, "levels": [{**VALIDITY["levels"][0], "gain_db": None}]}
    store_validity(path, undefined)
    _, meta = load_model(path)
    assert math.isnan(meta.validity.levels[0][2]) and meta.validity.levels[0][:2] == (1.0, 0.012)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a torch archive")
    with pytest.raises(LowdoseInputError, match="not a readable lowdose checkpoint") as error:
        store_validity(broken, VALIDITY)
    assert str(error.value).startswith(f"{broken}: ") and "\n" not in str(error.value)
    assert broken.read_bytes() == b"not a torch archive"


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
    assert noisy.startswith(f"{inputs['noisy']}: 3 of 3 image(s) outside the model's validity")
    assert "noise sd 0.01..0.05 on the network scale" in noisy and "3 noisier, 0 cleaner" in noisy
    # re-noised sweep (Poisson/AWGN): a lower dose, and --dose-range reaches it (~(0.012/0.2)^2)
    low = float(re.search(r"lowdose train --dose-range ([0-9.e-]+):1$", noisy).group(1))
    assert low == pytest.approx((0.012 / 0.2) ** 2, rel=0.15)
    assert clean.startswith(f"{inputs['clean']}: ") and "0 noisier, 3 cleaner" in clean
    assert "--dose-range" not in clean and "over-smooth" in clean
    assert not any(str(inputs["inside"]) in line for line in lines)
    assert all("\n" not in line for line in lines)


def test_a_ct_range_is_compared_in_hu_by_the_estimator_it_was_measured_with(ct_scaling):
    rng = np.random.default_rng(1)
    hu = np.stack([_smooth(rng) * 1000 - 500 + rng.normal(0, 30, (96, 96)) for _ in range(4)])
    old = ValidityRange(0.004, 0.02, 0.01, "single_image_noise_sigma")  # network scale
    new = ValidityRange(12.0, 60.0, 30.0, "single_image_noise_sd", scale="hu")
    for validity in (old, new):  # white noise: both estimators read ~30 HU, in HU
        levels = input_noise_levels(hu, ct_scaling, validity)
        np.testing.assert_allclose(levels, 30.0, rtol=0.1)
        assert validity_warnings("a.npy", hu, ct_scaling, validity) == []
    line = validity_warnings("a.npy", hu + rng.normal(0, 300, hu.shape), ct_scaling, new)[0]
    assert "4 of 4 image(s)" in line and "noise sd 12..60 HU" in line
    empty = ValidityRange(sigma_low=0.0, sigma_high=0.0, trained_sigma=0.0, estimator="")
    assert "no gain" in validity_warnings("a.npy", hu, ct_scaling, empty)[0]
