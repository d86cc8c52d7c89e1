"""Self-ensemble at inference (``tta=8``): equivariant, exact for symmetric models, tiled and
non-square images, per-image progress, and ``lowdose denoise --tta 8`` records it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lowdose.core.errors import LowdoseInputError
from lowdose.inference.predict import denoise, predict
from lowdose.inference.self_ensemble import DIHEDRAL, dihedral, self_ensemble, undo_dihedral
from lowdose.inference.tiling import pad_to_grid
from lowdose.models.unet import UNet


@pytest.fixture(scope="module")
def unet() -> UNet:
    torch.manual_seed(0)
    return UNet(width=4).eval()


def _conv(kernel: np.ndarray) -> nn.Conv2d:
    """A linear 3x3 model (zero padding, no bias) with the given kernel."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.astype(np.float32))[None, None])
    return conv


def _view(image: np.ndarray, transform) -> np.ndarray:
    return np.ascontiguousarray(dihedral(image, *transform))


def test_transforms_are_the_eight_distinct_dihedral_ones_and_invert():
    image = np.arange(12.0).reshape(3, 4)
    views = {dihedral(image, *t).tobytes() + bytes(dihedral(image, *t).shape) for t in DIHEDRAL}
    assert len(DIHEDRAL) == 8 and len(views) == 8
    for transform in DIHEDRAL:
        assert np.array_equal(undo_dihedral(dihedral(image, *transform), *transform), image)
    assert dihedral(image, 1, False).shape == (4, 3)


def test_tta1_is_the_network_on_the_grid_padded_image_bit_for_bit(unet):
    stack = np.random.default_rng(0).random((3, 40, 56), dtype=np.float32)
    before = stack.copy()
    work = copy.deepcopy(unet).to(memory_format=torch.channels_last)
    x = torch.from_numpy(pad_to_grid(stack))[:, None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reference = work(x)[:, 0, :40, :56].numpy()  # one forward of the 3 tiles, as predict
    out = predict(unet, stack, batch_size=4, tta=1)
    np.testing.assert_array_equal(out, reference)
    np.testing.assert_array_equal(out, predict(unet, stack, batch_size=4))  # the default
    np.testing.assert_array_equal(stack, before)


@pytest.mark.parametrize("shape", [(40, 56), (48, 48)], ids=["non-square", "square"])
def test_tta8_is_equivariant_and_tta1_is_not(unet, shape):
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    plain, ensemble = predict(unet, image), predict(unet, image, tta=8)
    assert ensemble.shape == shape and ensemble.dtype == np.float32
    scale = float(np.abs(ensemble).max())
    plain_errors = []
    for transform in DIHEDRAL:
        moved = predict(unet, _view(image, transform), tta=8)
        assert moved.shape == dihedral(image, *transform).shape
        assert np.abs(moved - dihedral(ensemble, *transform)).max() <= 1e-5 * scale
        plain_moved = predict(unet, _view(image, transform))
        plain_errors.append(np.abs(plain_moved - dihedral(plain, *transform)).max())
    # the untrained U-Net is far from equivariant, so the check above can fail
    assert max(plain_errors) > 0.05 * scale
    assert np.abs(ensemble - plain).max() > 0.05 * scale


def test_models_that_commute_with_the_transforms_are_unchanged():
    image = np.random.default_rng(2).random((64, 96), dtype=np.float32)  # on the 32-px grid
    np.testing.assert_array_equal(predict(nn.Identity(), image, tta=8), image)
    symmetric = _conv(np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]]))
    np.testing.assert_allclose(
        predict(symmetric, image, tta=8), predict(symmetric, image), atol=1e-6
    )


def test_a_linear_model_becomes_its_symmetrised_kernel():
    # tta8 of a correlation with k is the correlation with the mean of k's 8 transforms
    image = np.random.default_rng(3).random((64, 160), dtype=np.float32)
    kernel = np.random.default_rng(4).random((3, 3))
    symmetrised = np.mean([dihedral(kernel, *t) for t in DIHEDRAL], axis=0)
    expected = predict(_conv(symmetrised), image)
    np.testing.assert_allclose(predict(_conv(kernel), image, tta=8), expected, atol=1e-6)
    tiled = predict(_conv(kernel), image, tta=8, tile=96)  # 3 column tiles, 3 row tiles rotated
    np.testing.assert_allclose(tiled, expected, atol=1e-6)
    assert np.abs(predict(_conv(kernel), image) - expected).max() > 1e-3


def test_tiled_non_square_stack_equals_untiled_and_counts_images(unet):
    stack = np.random.default_rng(5).random((2, 100, 400), dtype=np.float32)
    calls: list[tuple] = []
    tiled = predict(unet, stack, tile=352, tta=8, progress=lambda *a: calls.append(a))
    untiled = predict(unet, stack, tta=8)
    assert tiled.shape == stack.shape
    assert np.abs(tiled - untiled).max() <= 1e-5
    assert calls == [("denoise", 1, 2), ("denoise", 2, 2)]  # per image, not per view
    np.testing.assert_allclose(untiled[1], predict(unet, stack[1], tta=8), atol=1e-6)


def test_self_ensemble_batches_views_by_shape():
    shapes: list[tuple] = []

    def record(stack: np.ndarray) -> np.ndarray:
        shapes.append(stack.shape)
        return stack * 2.0

    image = np.random.default_rng(6).random((5, 7))
    np.testing.assert_allclose(self_ensemble(record, image), 2.0 * image, rtol=1e-6)
    assert sorted(shapes) == [(4, 5, 7), (4, 7, 5)]
    shapes.clear()
    self_ensemble(record, np.ones((6, 6)))
    assert shapes == [(8, 6, 6)]


@pytest.mark.parametrize("bad", [0, 2, 3, 16, True])
def test_other_tta_values_raise_one_line_naming_the_option(unet, bad):
    with pytest.raises(LowdoseInputError, match="--tta") as info:
        predict(unet, np.zeros((40, 40), np.float32), tta=bad)
    assert "\n" not in str(info.value) and "1 or 8" in str(info.value)


# ---- lowdose denoise --tta 8 (the checkpoint loader is replaced: the CLI is under test) -------


def test_denoise_cli_tta8_writes_the_ensemble_and_says_so(
    fake_checkpoint, unet, tmp_path, ct_scaling, invoke_cli
):
    import pydicom
    from pydicom.data import get_testdata_file

    image = np.random.default_rng(7).uniform(-1000, 1000, (40, 56)).astype(np.float32)
    np.save(tmp_path / "one.npy", image)
    dicom_in = tmp_path / "ct"
    dicom_in.mkdir()
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(dicom_in / "slice.dcm")
    base = ["denoise", "--model", str(fake_checkpoint), str(tmp_path / "one.npy"), str(dicom_in)]
    for tta, out in ((8, tmp_path / "out8"), (1, tmp_path / "out1")):
        result = invoke_cli([*base, "--out", str(out), "--tta", str(tta)])
        assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        np.load(tmp_path / "out8" / "one.npy"),
        denoise(unet, image, scaling=ct_scaling, tta=8),
        atol=1e-3,
    )
    assert not np.allclose(
        np.load(tmp_path / "out8" / "one.npy"), np.load(tmp_path / "out1" / "one.npy"), atol=1.0
    )
    text8 = pydicom.dcmread(next((tmp_path / "out8").rglob("*.dcm"))).DerivationDescription
    text1 = pydicom.dcmread(next((tmp_path / "out1").rglob("*.dcm"))).DerivationDescription
    assert "n2n-mse" in text8 and "tta8" in text8 and "8 rotated/mirrored" in text8
    assert "n2n-mse" in text1 and "tta" not in text1


def test_denoise_cli_tta3_is_one_error_line_and_writes_nothing(
    fake_checkpoint, tmp_path, invoke_cli
):
    np.save(tmp_path / "one.npy", np.zeros((40, 40), np.float32))
    out = tmp_path / "out"
    args = ["denoise", "--model", str(fake_checkpoint), "--out", str(out), "--tta", "3"]
    result = invoke_cli([*args, str(tmp_path / "one.npy")])
    assert result.exit_code == 1, result.output
    assert "--tta 3" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()
