"""``lowdose denoise`` on CT with padding outside the field of view: the padding changes nothing.

A padded slice (-3024 HU outside the reconstruction circle, as many scanners store it) and the same
slice with air outside must denoise to the same values inside the field of view, bit for bit, and
the padded one must get its padding back exactly (DICOM: the same stored integers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.inference.files import denoise_files
from lowdose.inference.predict import denoise, denoise_in_field_of_view
from lowdose.models.unet import UNet
from lowdose.physics.field_of_view import AIR_HU, field_of_view_mask

TCGA = Path(__file__).parents[3] / "shared/data/ct/tcga-luad"
PADDING_STORED = -2000  # CT_small.dcm: signed int16, intercept -1024 -> -3024 HU
TILE = 640  # one pass for every image here: the padded and unpadded runs tile alike


def _checkpoint(path: Path, *, raw_units: str = "hu") -> Path:
    """A real checkpoint file as training writes it (Lightning layout), of a tiny random U-Net."""
    torch.manual_seed(0)
    network = UNet(width=4)
    scaling = {
        "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0,
        "raw_units": raw_units,
        "divisor": 3000.0,
        "data_range": 1.0,
    }
    hparams = {
        "model": network.config(),
        "mode": "n2n",
        "loss": "mse",
        "lr": 1e-3,
        "meta": {"scaling": scaling},
    }
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": 1}, path)
    return path


@pytest.fixture(scope="module")
def hu_checkpoint(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt")


def _circle(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(yy, xx) < size * 0.45


def _body_hu(size: int = 128) -> np.ndarray:
    """(size, size) float64 HU: a noisy body (tissue, a lung, bone) in air, in the circle."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    hu = np.where(np.hypot(yy / 0.8, xx) < size * 0.35, 40.0, AIR_HU)
    hu = np.where(np.hypot(yy, xx + size * 0.12) < size * 0.1, -850.0, hu)
    hu = np.where(np.hypot(yy - size * 0.2, xx) < size * 0.05, 900.0, hu)
    return np.rint(hu + rng.normal(0, 25, hu.shape))


def _ct_file(path: Path, hu: np.ndarray, *, padding_tag: bool) -> Path:
    """CT_small.dcm's header with ``hu`` as pixels; PixelPaddingValue kept or removed."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = np.rint(hu + 1024).astype(np.int16).tobytes()
    if not padding_tag:
        del ds.PixelPaddingValue
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def _stored(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


@pytest.mark.parametrize("padding_tag", [True, False], ids=["tag", "detected"])
def test_padded_and_unpadded_dicom_denoise_alike_and_padding_comes_back(
    tmp_path, hu_checkpoint, padding_tag
):
    body, inside = _body_hu(), _circle(128)
    padded_hu = np.where(inside, body, PADDING_STORED - 1024.0)
    air_hu = np.where(inside, body, AIR_HU)
    padded = _ct_file(tmp_path / "padded" / "ct.dcm", padded_hu, padding_tag=padding_tag)
    plain = _ct_file(tmp_path / "plain" / "ct.dcm", air_hu, padding_tag=False)
    (out_padded,) = denoise_files([padded.parent], tmp_path / "out_p", hu_checkpoint, tile=TILE)
    (out_plain,) = denoise_files([plain.parent], tmp_path / "out_a", hu_checkpoint, tile=TILE)
    written, reference = _stored(out_padded), _stored(out_plain)
    np.testing.assert_array_equal(written[inside], reference[inside])
    np.testing.assert_array_equal(written[~inside], _stored(padded)[~inside])
    assert np.all(written[~inside] == PADDING_STORED)
    assert not np.array_equal(reference[inside], _stored(plain)[inside])  # it did denoise
    assert pydicom.dcmread(out_padded).get("PixelPaddingValue") == pydicom.dcmread(padded).get(
        "PixelPaddingValue"
    )


def test_without_the_rule_the_padding_ring_changes_the_result(hu_checkpoint):
    # The check above can fail: denoised whole, the padded slice differs inside the circle.
    from lowdose.models.checkpoint import load_model

    network, meta = load_model(hu_checkpoint)
    body, inside = _body_hu(), _circle(128)
    padded = np.where(inside, body, -3024.0).astype(np.float32)
    air = np.where(inside, body, AIR_HU).astype(np.float32)
    whole = denoise(network, padded, scaling=meta.scaling, tile=TILE)
    reference = denoise(network, air, scaling=meta.scaling, tile=TILE)
    assert np.abs(whole - reference)[inside].max() > 5.0
    masked = denoise_in_field_of_view(network, padded, inside, scaling=meta.scaling, tile=TILE)
    np.testing.assert_array_equal(masked[inside], reference[inside])
    np.testing.assert_array_equal(masked[~inside], padded[~inside])


def test_npy_padding_is_detected_only_for_a_model_in_hu(tmp_path, hu_checkpoint):
    body, inside = _body_hu(96), _circle(96)
    padded = np.where(inside, body, -3024.0).astype(np.float32)
    air = np.where(inside, body, AIR_HU).astype(np.float32)
    stack = np.stack([padded, body.astype(np.float32)])  # padded and unpadded slices in one file
    np.save(tmp_path / "padded.npy", stack)
    np.save(tmp_path / "air.npy", np.stack([air, body.astype(np.float32)]))
    for name in ("padded.npy", "air.npy"):
        denoise_files(
            [tmp_path / name], tmp_path / name.replace(".npy", ""), hu_checkpoint, tile=TILE
        )
    out_padded = np.load(tmp_path / "padded" / "padded.npy")
    out_air = np.load(tmp_path / "air" / "air.npy")
    np.testing.assert_array_equal(out_padded[0][inside], out_air[0][inside])
    np.testing.assert_array_equal(out_padded[0][~inside], padded[~inside])
    np.testing.assert_array_equal(out_padded[1], out_air[1])

    # A checkpoint from before raw_units was stored: its CT offset (HU + 1024) says HU.
    unnamed = _checkpoint(tmp_path / "old" / "best.ckpt", raw_units="")
    denoise_files([tmp_path / "padded.npy"], tmp_path / "old_out", unnamed, tile=TILE)
    np.testing.assert_array_equal(np.load(tmp_path / "old_out" / "padded.npy"), out_padded)

    # A model of other units (transmission) gets the input as it is: no padding rule applies
    # (stated units: these HU values would fail the transmission check).
    other = _checkpoint(tmp_path / "xray" / "best.ckpt", raw_units="transmission")
    denoise_files(
        [tmp_path / "padded.npy"], tmp_path / "xray_out", other, tile=TILE, units="transmission"
    )
    from lowdose.models.checkpoint import load_model

    network, meta = load_model(other)
    expected = denoise(network, stack, scaling=meta.scaling, tile=TILE)
    np.testing.assert_array_equal(np.load(tmp_path / "xray_out" / "padded.npy"), expected)


def test_denoise_in_field_of_view_leaves_its_inputs_alone():
    identity = torch.nn.Identity()
    scaling = NetworkScaling(scaling_rule="none")
    image = np.where(_circle(40), 30.0, -3024.0).astype(np.float32)
    mask = field_of_view_mask(image)
    image.flags.writeable = mask.flags.writeable = False
    out = denoise_in_field_of_view(identity, image, mask, scaling=scaling)
    np.testing.assert_array_equal(out, image)  # identity inside, the input outside
    with pytest.raises(LowdoseInputError, match="shape"):
        denoise_in_field_of_view(identity, image, mask[:-1], scaling=scaling)


@pytest.mark.skipif(not TCGA.is_dir(), reason=f"real CT slices not found at {TCGA}")
def test_a_real_padded_slice_keeps_its_stored_padding(tmp_path, hu_checkpoint):
    source = next(
        p
        for p in sorted(TCGA.glob("*.dcm"))
        if "PixelPaddingValue" in pydicom.dcmread(p, stop_before_pixels=True)
    )
    ds = pydicom.dcmread(source)
    stored = ds.pixel_array
    padding = int(np.int16(np.uint16(int(ds.PixelPaddingValue) % 65536)))  # US 63536 = -2000
    outside = stored == padding
    assert outside.any()
    folder = tmp_path / "in"
    folder.mkdir()
    ds.save_as(folder / source.name)
    (written,) = denoise_files([folder], tmp_path / "out", hu_checkpoint, tile=TILE)
    back = _stored(written)
    np.testing.assert_array_equal(back[outside], stored[outside])
    assert np.abs(back[~outside].astype(float) - stored[~outside]).max() > 0  # denoised inside
