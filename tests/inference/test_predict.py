"""Tiled prediction is seam-free, scaling round-trips, and ``lowdose denoise`` writes user files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import (
    NetworkScaling,
    estimate_clean_max,
    scale_from_network,
    scale_to_network,
)
from lowdose.inference.predict import denoise, predict
from lowdose.inference.tiling import (
    Footprint,
    choose_tile,
    pad_to_grid,
    plan_tiles,
    probe_model,
    tile_spans,
)
from lowdose.models.unet import UNet


@pytest.fixture(scope="module")
def unet() -> UNet:
    # Narrow but the paper's depth (six levels, five poolings): the receptive field is the same.
    torch.manual_seed(0)
    return UNet(width=4).eval()


def _forward(model: nn.Module, stack: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(stack)[:, None])[:, 0].numpy()


def test_tiled_700x1000_equals_untiled(unet):
    image = np.random.default_rng(1).random((700, 1000), dtype=np.float32)
    before = image.copy()
    untiled = predict(unet, image)  # fits memory: one pass
    tiled = predict(unet, image, tile=640)
    plan = plan_tiles(probe_model(unet), (704, 1024), tile=640, budget_bytes=1e12)
    assert len(plan.rows) * len(plan.cols) == 6  # it really tiled
    assert tiled.shape == image.shape and tiled.dtype == np.float32
    assert np.abs(tiled - untiled).max() <= 1e-5
    assert np.abs(untiled - _forward(unet, image[None])[0]).max() <= 1e-5
    np.testing.assert_array_equal(image, before)


def test_margin_below_receptive_field_leaves_seams(unet):
    # The check above can fail: a 32 px margin is far inside the receptive field.
    image = np.random.default_rng(2).random((256, 320), dtype=np.float32)
    untiled = predict(unet, image)
    assert np.abs(predict(unet, image, tile=128, overlap=32) - untiled).max() > 1e-3
    assert np.abs(predict(unet, image, tile=352) - untiled).max() <= 1e-5


@pytest.mark.parametrize("shape", [(2, 45, 700), (3, 5, 7), (1, 33, 65)])
def test_stacks_and_odd_sizes_match_the_network(unet, shape):
    stack = np.random.default_rng(3).random(shape, dtype=np.float32)
    done = []
    out = predict(unet, stack, tile=352, batch_size=2, on_image_done=done.append)
    assert out.shape == shape
    assert np.abs(out - _forward(unet, stack)).max() <= 1e-5
    assert done[-1] == shape[0] and done == sorted(done)


def test_tile_spans_cover_the_axis_on_the_grid():
    for length in range(32, 2049, 32):
        for tile, margin in ((352, 160), (512, 160), (1024, 128)):
            spans = tile_spans(length, tile, margin)
            assert spans[0][1] == 0 and spans[-1][2] == length
            for (s0, _lo0, hi0), (s1, lo1, _hi1) in zip(spans, spans[1:], strict=False):
                assert lo1 <= hi0 and s1 > s0
            for start, lo, hi in spans:
                assert start % 32 == 0 and start + min(tile, length) <= length
                assert start <= lo < hi <= start + min(tile, length)
                assert lo == 0 or lo - start >= margin
                assert hi == length or start + tile - hi >= margin


def test_probe_and_memory_plan(unet):
    footprint = probe_model(unet)
    # 3x3 convs at strides 1,2,4,8,16,32 (5,3,3,3,3,1 of them) = 127 px, + 32 -> 160
    assert footprint.margin_px == 160
    assert probe_model(UNet(width=16)).bytes_per_pixel > footprint.bytes_per_pixel
    big = Footprint(margin_px=160, bytes_per_pixel=1000.0)
    assert choose_tile(big, 1000.0 * 2048**2) == 2048
    assert choose_tile(big, 1000.0 * 100**2) == 352  # never below 2 * margin + 32
    plan = plan_tiles(big, (2048, 2048), batch_size=4, budget_bytes=1000.0 * 2 * 1024**2)
    assert plan.tile_hw == (1440, 1440) and plan.batch == 1


def test_pad_to_grid_matches_unet_padding():
    stack = np.arange(2 * 40 * 50, dtype=np.float32).reshape(2, 40, 50)
    padded = pad_to_grid(stack)
    assert padded.shape == (2, 64, 64)
    expected = torch.nn.functional.pad(torch.from_numpy(stack), (0, 14, 0, 24), mode="reflect")
    np.testing.assert_array_equal(padded, expected.numpy())


def test_bad_inputs_raise_one_line():
    identity = nn.Identity()
    for bad in (np.full((8, 8), np.nan), np.zeros((2, 2, 8, 8)), np.zeros((0, 8))):
        with pytest.raises(LowdoseInputError) as info:
            predict(identity, bad)
        assert "\n" not in str(info.value)
    with pytest.raises(LowdoseInputError, match="tile"):
        predict(UNet(width=2), np.zeros((600, 600), np.float32), tile=256)


def test_cuda_request_without_cuda_is_a_clear_error(unet):
    image = np.random.default_rng(4).random((64, 96), dtype=np.float32)
    if torch.cuda.is_available():
        gpu = predict(unet, image, device="cuda")
        assert np.abs(gpu - predict(unet, image)).max() <= 1e-4
    else:
        with pytest.raises(LowdoseInputError, match="CUDA"):
            predict(unet, image, device="cuda")


SCALINGS = [
    NetworkScaling(scaling_rule="dataset_max", scaling_offset=1024.0, divisor=3000.0),
    NetworkScaling(scaling_rule="per_image_max", scaling_offset=0.0),
    NetworkScaling(scaling_rule="none"),
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=lambda s: s.scaling_rule)
def test_identity_model_round_trips_units(scaling):
    raw = np.random.default_rng(5).uniform(-1000, 2000, size=(3, 40, 50)).astype(np.float32)
    if scaling.scaling_rule == "per_image_max":
        raw = np.abs(raw) / 2000
    # float32 on the network scale: round-off is relative to the shifted range, not to raw
    close = {"rtol": 1e-6, "atol": 1e-6 * (np.abs(raw).max() + 1024)}
    scaled, divisor = scale_to_network(raw, scaling)
    np.testing.assert_allclose(scale_from_network(scaled, scaling, divisor), raw, **close)
    np.testing.assert_allclose(denoise(nn.Identity(), raw, scaling=scaling), raw, **close)
    np.testing.assert_allclose(denoise(nn.Identity(), raw[0], scaling=scaling), raw[0], **close)
    assert scaled.dtype == np.float32 and divisor.shape == (3,)


def test_dataset_max_formula_and_per_image_estimate():
    scaling = SCALINGS[0]
    scaled, divisor = scale_to_network(np.array([[-1024.0, 1976.0]]), scaling)
    np.testing.assert_allclose(scaled, [[0.0, 1.0]])
    assert float(divisor) == 3000.0
    # noisy flat field at 0.8: the smoothed max stays near 0.8, the plain max does not
    rng = np.random.default_rng(6)
    noisy = 0.8 + rng.normal(0, 0.05, size=(2, 256, 256))
    estimate = estimate_clean_max(noisy)
    assert estimate.shape == (2,) and np.all(np.abs(estimate - 0.8) < 0.03)
    assert noisy.max() > 0.95
    with pytest.raises(LowdoseInputError, match="divisor"):
        scale_to_network(noisy, NetworkScaling(scaling_rule="dataset_max", divisor=None))
    with pytest.raises(LowdoseInputError, match="scaling_rule"):
        scale_to_network(noisy, NetworkScaling(scaling_rule="per_pixel"))


# ---- lowdose denoise (the checkpoint loader is replaced: the CLI is under test here) ----------


def test_denoise_cli_npy_tiff_dicom(fake_checkpoint, unet, tmp_path, ct_scaling, invoke_cli):
    import pydicom
    import tifffile
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(7)
    image = rng.uniform(-1000, 1000, (70, 90)).astype(np.float32)
    stack = rng.uniform(-1000, 1000, (3, 40, 50)).astype(np.float32)
    np.save(tmp_path / "one.npy", image)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    dicom_in = tmp_path / "ct"
    dicom_in.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    source.save_as(dicom_in / "slice.dcm")
    out = tmp_path / "out"
    args = ["denoise", "--model", str(fake_checkpoint), "--out", str(out), "--tile", "352"]
    result = invoke_cli(
        [*args, str(tmp_path / "one.npy"), str(tmp_path / "stack.tif"), str(dicom_in)]
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        np.load(out / "one.npy"), denoise(unet, image, scaling=ct_scaling), atol=1e-3
    )
    np.testing.assert_allclose(
        tifffile.imread(out / "stack.tif"), denoise(unet, stack, scaling=ct_scaling), atol=1e-3
    )
    written = [pydicom.dcmread(p) for p in out.rglob("*.dcm")]
    assert len(written) == 1
    assert "unet-w4" in written[0].DerivationDescription
    assert written[0].SOPInstanceUID != source.SOPInstanceUID
    assert written[0].pixel_array.shape == source.pixel_array.shape


def test_denoise_cli_errors_name_the_file(fake_checkpoint, tmp_path, invoke_cli):
    bad = np.zeros((40, 40), np.float32)
    bad[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 8, 8), np.float32))
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    for name in ("nan.npy", "cube.npy", "junk.tif", "missing.png"):
        args = ["denoise", "--model", str(fake_checkpoint), "--out", str(tmp_path / "out")]
        result = invoke_cli([*args, str(tmp_path / name)])
        assert result.exit_code == 1, result.output
        assert name in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "out").exists()


def test_progress_protocol_and_the_older_keyword_report_the_same_counts(unet):
    stack = np.random.default_rng(8).random((3, 40, 50), dtype=np.float32)
    calls, done = [], []
    predict(
        unet, stack, batch_size=1, progress=lambda *a: calls.append(a), on_image_done=done.append
    )
    assert calls == [("denoise", n, 3) for n in done] and done == [1, 2, 3]


def test_denoise_files_counts_series_over_all_inputs_and_images_of_one(fake_checkpoint, tmp_path):
    from lowdose.inference.files import denoise_files

    rng = np.random.default_rng(9)
    np.save(tmp_path / "one.npy", rng.uniform(-1000, 1000, (40, 50)).astype(np.float32))
    np.save(tmp_path / "three.npy", rng.uniform(-1000, 1000, (3, 40, 50)).astype(np.float32))
    calls = []
    written = denoise_files(
        [tmp_path / "one.npy", tmp_path / "three.npy"],
        tmp_path / "out",
        fake_checkpoint,
        batch_size=1,
        progress=lambda *a: calls.append(a),
    )
    assert sorted(p.name for p in written) == ["one.npy", "three.npy"]
    # streamed: the number of images is unknown until each input is read, so series are counted
    assert calls == [("series", 1, 2), ("series", 2, 2)]
    calls.clear()
    denoise_files(
        [tmp_path / "three.npy"],
        tmp_path / "out3",
        fake_checkpoint,
        batch_size=1,
        progress=lambda *a: calls.append(a),
    )
    assert calls == [("denoise", n, 3) for n in (1, 2, 3)]
