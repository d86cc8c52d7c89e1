"""Built-in models: pack a checkpoint, load ``builtin:NAME`` like a checkpoint, list, denoise."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

from lowdose.core.errors import LowdoseInputError
from lowdose.models.builtin import (
    BUILTIN_DIR_ENV,
    PACKAGE_DIR,
    builtin_dir,
    builtin_names,
    read_card,
)
from lowdose.models.builtin_pack import pack_model
from lowdose.models.checkpoint import ValidityRange, load_model
from lowdose.models.unet import UNet

VALIDITY = {
    "estimator": "single_image_noise_sigma",
    "scale": "network",
    "sigma_low": 0.004,
    "sigma_high": 0.05,
    "trained_sigma": 0.02,
    "levels": [
        {"dose_fraction": 0.25, "sigma": 0.04, "gain_db": 3.5},
        {"dose_fraction": 1.0, "sigma": 0.02, "gain_db": 1.25},
    ],
    "method": "binomial thinning of the validation counts",
}
CARD = {
    "title": "tiny CT test model",
    "modality": "ct",
    "noise_model": "sinogram Poisson + FBP",
    "training_data": "TCGA-LUAD slices (../shared/data/ct/tcga-luad)",
    "data_licence": "CC BY 3.0",
    "doses": "0.1 to 1 of 1e5 photons per ray",
    "test_metrics": {"psnr_db_noisy": 30.0, "psnr_db_model": 35.5},
    "command": "lowdose train --data ct.h5 --mode n2n --width 4 --out runs/tiny",
}


@pytest.fixture
def ct_checkpoint(tmp_path):
    """``tmp_path/run/best.ckpt``: a random width-4 U-Net with CT (HU) scaling and validity."""
    torch.manual_seed(3)
    network = UNet(width=4)
    meta = {
        "scaling": {
            "scaling_rule": "dataset_max",
            "scaling_offset": 1024.0,
            "raw_units": "hu",
            "divisor": 3000.0,
            "data_range": 1.0,
        },
        "dataset_sha256": "cd" * 32,
        "dataset": "/data/ct.h5",
        "val_reference": "realisation",
        "seed": 5,
        "run_dir": "/runs/tiny",
        "validity": VALIDITY,
    }
    path = tmp_path / "run" / "best.ckpt"
    path.parent.mkdir()
    torch.save(
        {
            "hyper_parameters": {
                "model": network.config(),
                "mode": "n2n",
                "loss": "mse",
                "lr": 1e-3,
                "meta": meta,
            },
            "state_dict": {f"model.{k}": v for k, v in network.state_dict().items()},
            "global_step": 42,
        },
        path,
    )
    return path


@pytest.fixture
def card_file(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(CARD), encoding="utf-8")
    return path


@pytest.fixture
def packed(tmp_path, ct_checkpoint, card_file, monkeypatch):
    """``builtin:tiny`` packed into ``tmp_path/builtin``, which LOWDOSE_BUILTIN_DIR points at."""
    folder = tmp_path / "builtin"
    monkeypatch.setenv(BUILTIN_DIR_ENV, str(folder))
    pack_model(ct_checkpoint, "tiny", read_card(card_file))
    return folder


def test_pack_then_builtin_loads_the_same_network_and_metadata(packed, ct_checkpoint):
    assert sorted(p.name for p in packed.iterdir()) == ["tiny.json", "tiny.md", "tiny.safetensors"]
    from_checkpoint, meta = load_model(ct_checkpoint)
    builtin, builtin_meta = load_model("builtin:tiny")
    image = torch.randn(2, 1, 40, 56)
    with torch.no_grad():
        assert torch.equal(builtin(image), from_checkpoint(image))
    assert not builtin.training
    # the training machine's paths are dropped; everything else is carried over
    assert builtin_meta == dataclasses.replace(meta, run_dir=None)
    assert builtin_meta.validity == ValidityRange.from_dict(VALIDITY)
    assert builtin_meta.scaling.raw_units == "hu" and builtin_meta.global_step == 42


def test_the_record_and_card_say_what_a_user_needs(packed):
    record = json.loads((packed / "tiny.json").read_text())
    assert record["card"]["units_in"] == record["card"]["units_out"] == "HU"
    assert record["card"]["window"] == [-160.0, 240.0]
    assert record["hyper_parameters"]["meta"]["validity"] == VALIDITY
    assert "run_dir" not in record["hyper_parameters"]["meta"]
    card = (packed / "tiny.md").read_text()
    texts = (
        "CC BY 3.0",
        CARD["command"],
        "0.004 to 0.05",
        "12 to 150 HU",
        "psnr_db_model",
        "HU / HU",
    )
    for text in texts:
        assert text in card, text


def test_unknown_name_is_one_line_listing_the_known_ones(packed):
    with pytest.raises(LowdoseInputError) as caught:
        load_model("builtin:nope")
    message = str(caught.value)
    assert "\n" not in message and "builtin:nope" in message and "available: tiny" in message


def test_corrupt_weights_or_record_are_one_line_naming_the_file(packed):
    weights = packed / "tiny.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(LowdoseInputError, match=r"tiny\.safetensors: its SHA-256") as caught:
        load_model("builtin:tiny")
    assert "\n" not in str(caught.value)
    # bytes whose hash the record names, but no safetensors file
    garbage = b"\x00" * 64
    weights.write_bytes(garbage)
    record_path = packed / "tiny.json"
    record = json.loads(record_path.read_text())
    import hashlib

    record["weights"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    record_path.write_text(json.dumps(record))
    with pytest.raises(LowdoseInputError, match=r"tiny\.safetensors: not a readable safetensors"):
        load_model("builtin:tiny")
    record_path.write_text("{not json")
    with pytest.raises(LowdoseInputError, match=r"tiny\.json: not a readable built-in model"):
        load_model("builtin:tiny")


def test_bad_cards_and_names_are_one_line_errors(tmp_path, ct_checkpoint, card_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CARD, "licnce": "MIT"}))
    with pytest.raises(LowdoseInputError, match="unknown key 'licnce'"):
        read_card(bad)
    bad.write_text(yaml.safe_dump({k: v for k, v in CARD.items() if k != "command"}))
    with pytest.raises(LowdoseInputError, match="bad.yaml: command"):
        read_card(bad)
    with pytest.raises(LowdoseInputError, match="--name"):
        pack_model(ct_checkpoint, "Tiny Model", read_card(card_file), into=tmp_path / "x")
    xray = torch.load(ct_checkpoint, weights_only=True)
    xray["hyper_parameters"]["meta"]["scaling"] = {"scaling_rule": "per_image_max"}
    torch.save(xray, tmp_path / "xray.ckpt")
    with pytest.raises(LowdoseInputError, match="a CT model takes and returns HU"):
        pack_model(tmp_path / "xray.ckpt", "xray", read_card(card_file), into=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_models_cli_packs_and_lists(tmp_path, ct_checkpoint, card_file, invoke_cli, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv(BUILTIN_DIR_ENV, str(folder))
    result = invoke_cli(["models"])
    assert result.exit_code == 0 and "no built-in models" in result.output
    args = ["models", "pack", "--model", str(ct_checkpoint), "--name", "ct-tiny"]
    result = invoke_cli([*args, "--card", str(card_file)])
    assert result.exit_code == 0, result.output
    assert (folder / "ct-tiny.json").is_file()
    result = invoke_cli(["models"])
    assert result.exit_code == 0, result.output
    # the range in HU (the stored network-scale 0.004..0.05 x the divisor 3000), not 0.004..0.05
    for text in ("ct-tiny", "HU -> HU", "n2n-mse", "noise sd 12..150 HU", "MB"):
        assert text in result.output, text
    result = invoke_cli(["models", "pack", *args[2:], "--card", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1 and "missing.yaml not found" in result.output


def test_models_cli_prints_card_and_error_text_literally(
    tmp_path, ct_checkpoint, card_file, invoke_cli, monkeypatch
):
    folder = tmp_path / "models"
    monkeypatch.setenv(BUILTIN_DIR_ENV, str(folder))
    card = {**CARD, "noise_model": "poisson [counts]"}  # rich would read [counts] as a style
    pack_model(ct_checkpoint, "ct-tiny", read_card(_yaml(tmp_path / "card2.yaml", card)))
    record = json.loads((folder / "ct-tiny.json").read_text())
    (folder / "a-format.json").write_text(json.dumps({**record, "format": "[bold]v0[/bold]"}))
    wrong = {**VALIDITY, "sigma_low": 0.5}  # above sigma_high: not a range
    record["hyper_parameters"]["meta"]["validity"] = wrong
    (folder / "b-range.json").write_text(json.dumps(record))
    result = invoke_cli(["models"])
    assert result.exit_code == 0, result.output
    assert "poisson [counts]" in result.output
    assert "'[bold]v0[/bold]'" in result.output and "meta.validity is malformed" in result.output
    assert result.output.count("unreadable") == 2


def _yaml(path, values):
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_denoise_cli_with_a_builtin_model_on_npy_and_dicom(
    packed, ct_checkpoint, tmp_path, invoke_cli
):
    import pydicom
    from pydicom.data import get_testdata_file

    from lowdose.inference.predict import denoise

    rng = np.random.default_rng(1)
    image = rng.uniform(-1000, 1000, (48, 64)).astype(np.float32)
    np.save(tmp_path / "slice.npy", image)
    dicom_in = tmp_path / "ct"
    dicom_in.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    source.save_as(dicom_in / "slice.dcm")
    out = tmp_path / "out"
    args = ["denoise", "--model", "builtin:tiny", "--out", str(out)]
    result = invoke_cli([*args, str(tmp_path / "slice.npy"), str(dicom_in)])
    assert result.exit_code == 0, result.output
    network, meta = load_model(ct_checkpoint)
    expected = denoise(network, image, scaling=meta.scaling)
    np.testing.assert_allclose(np.load(out / "slice.npy"), expected, atol=1e-3)
    written = [pydicom.dcmread(p) for p in out.rglob("*.dcm")]
    assert len(written) == 1 and "unet-w4" in written[0].DerivationDescription
    assert written[0].pixel_array.shape == source.pixel_array.shape


def test_the_package_folder_holds_whole_models_only_and_says_whether_it_ships_any(monkeypatch):
    """The package folder is the default, and whatever it holds is complete and loads.

    State of this package version: it ships NO weights (benchmarks/builtin_models.py makes them
    and has not been run for it), so the folder holds only README.md and the loop over the
    listed models checks nothing yet. What is checked now: no half-packed model lies there (every
    NAME.safetensors / .md / .json has its two siblings), and the README says no weights ship
    exactly when none are listed, so adding weights without updating it fails here.
    """
    monkeypatch.delenv(BUILTIN_DIR_ENV, raising=False)
    assert builtin_dir() == PACKAGE_DIR
    files = [p for p in PACKAGE_DIR.iterdir() if p.suffix in (".safetensors", ".json", ".md")]
    stems = {p.stem for p in files if p.name != "README.md"}
    for stem in stems:  # weights, record and card together, or not at all
        for suffix in (".safetensors", ".json", ".md"):
            assert (PACKAGE_DIR / f"{stem}{suffix}").is_file(), f"{stem}{suffix} is missing"
    names = builtin_names()
    assert set(names) == stems
    readme = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    assert ("ships no weights" in readme) == (not names)
    for name in names:
        network, meta = load_model(f"builtin:{name}")
        with torch.no_grad():
            assert network(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
        assert meta.scaling.scaling_rule in ("dataset_max", "per_image_max", "none")
        assert f"`{name}`" in readme  # every shipped model is described


def test_an_undefined_gain_packs_and_reads_back_as_nan(
    tmp_path, ct_checkpoint, card_file, monkeypatch
):
    checkpoint = torch.load(ct_checkpoint, weights_only=True)
    levels = checkpoint["hyper_parameters"]["meta"]["validity"]["levels"]
    levels[0]["gain_db"] = float("nan")  # a uMSE <= 0 at that level (training.validity)
    torch.save(checkpoint, ct_checkpoint)
    folder = tmp_path / "nan"
    pack_model(ct_checkpoint, "tiny", read_card(card_file), into=folder)
    assert "| 0.25 | 120 | n/a |" in (folder / "tiny.md").read_text()  # HU: 0.04 x 3000
    assert "| 1 | 60 | +1.25 |" in (folder / "tiny.md").read_text()
    monkeypatch.setenv(BUILTIN_DIR_ENV, str(folder))
    gains = [gain for _, _, gain in load_model("builtin:tiny")[1].validity.levels]
    assert np.isnan(gains[0]) and gains[1] == 1.25
