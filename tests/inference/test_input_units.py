"""``--units``: what the input's numbers are, checked when not stated."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.inference.files import denoise_files
from lowdose.inference.input_units import (
    check_plausible,
    from_model_units,
    parse_units,
    to_model_units,
)

CT = NetworkScaling("dataset_max", 1024.0, "hu", 3000.0)
XRAY = NetworkScaling("per_image_max", 0.0, "transmission")


def _slice_hu(size: int = 96, seed: int = 0) -> np.ndarray:
    """A CT slice in HU: air around a body of soft tissue with a lung, noisy."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    hu = np.where(np.hypot(yy, xx) < size * 0.4, 40.0, -1000.0)
    hu = np.where(np.hypot(yy, xx - size * 0.15) < size * 0.1, -800.0, hu)
    return (hu + np.random.default_rng(seed).normal(0, 20, hu.shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("values", "looks"),
    [
        (np.clip(np.rint((_slice_hu() + 160) / 400 * 138), 0, 138), "8-bit display"),
        (np.clip((_slice_hu() + 1000) / 2000, 0, 1), "0..1 normalised"),
        (np.clip(_slice_hu() + 1024, 0, None), "without the -1024 intercept"),
        (np.random.default_rng(1).normal(20, 8, (64, 64)), "no CT slice"),
    ],
    ids=["8bit", "unit", "stored", "water"],
)
def test_values_that_are_not_hu_stop_with_one_line_naming_units(values, looks):
    with pytest.raises(LowdoseInputError, match=f"{looks}.*--units hu.*window:C,W") as error:
        check_plausible(values.astype(np.float32), CT, source="scan.png")
    assert "\n" not in str(error.value) and str(error.value).startswith("scan.png: ")


def test_real_hu_and_stated_units_pass():
    check_plausible(_slice_hu(), CT, source="x")
    water = np.full((64, 64), 20.0, np.float32)
    assert np.array_equal(
        to_model_units(water, parse_units("hu", CT), CT, dtype="float32", source="x"), water
    )


def test_counts_are_not_transmission():
    with pytest.raises(LowdoseInputError, match="not transmission.*--units transmission"):
        check_plausible(np.full((8, 8), 900.0, np.float32), XRAY, source="p.tif")
    check_plausible(np.full((8, 8), 0.7, np.float32), XRAY, source="p.tif")
    assert parse_units("transmission", XRAY).name == "raw"


def test_window_and_scaled_go_to_hu_and_back():
    display = np.array([[0, 64, 128, 255]], np.float32)
    units = parse_units("window:40,400", CT)
    hu = to_model_units(display, units, CT, dtype="uint8", source="x")
    np.testing.assert_allclose(hu, [[-160, -160 + 400 * 64 / 255, -160 + 400 * 128 / 255, 240]])
    back = from_model_units(hu, units, CT, dtype="uint8", reference=display)
    np.testing.assert_allclose(back, display, atol=1e-3)
    scaled = np.array([[0.0, 1024.0 / 3000.0]], np.float32)
    hu = to_model_units(scaled, parse_units("scaled", CT), CT, dtype="float32", source="x")
    np.testing.assert_allclose(hu, [[-1024.0, 0.0]], atol=1e-3)
    np.testing.assert_allclose(
        from_model_units(hu, parse_units("scaled", CT), CT, dtype="float32", reference=scaled),
        scaled,
        atol=1e-6,
    )


@pytest.mark.parametrize("text", ["window:40", "window:40,-5", "mu", "hu"])
def test_units_the_model_cannot_take_are_refused(text):
    scaling = XRAY if text == "hu" else CT
    with pytest.raises(LowdoseInputError, match="--units"):
        parse_units(text, scaling)


def test_an_8bit_png_is_refused_by_denoise_then_denoised_through_its_window(tmp_path, invoke_cli):
    display = np.clip(np.rint((_slice_hu(128) + 160) / 400 * 255), 0, 255).astype(np.uint8)
    iio.imwrite(tmp_path / "slice.png", display)
    args = ["denoise", str(tmp_path / "slice.png"), "--model", "builtin:ct-sinogram", "--out"]
    result = invoke_cli([*args, str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "8-bit display image" in result.output and "--units" in result.output
    assert not (tmp_path / "out" / "slice.png").exists()
    (written,) = denoise_files(
        [tmp_path / "slice.png"], tmp_path / "ok", "builtin:ct-sinogram", units="window:40,400"
    )
    back = iio.imread(written)
    assert back.dtype == np.uint8 and back.shape == display.shape
    # denoised in HU, shown through the same window: the body stays where it was
    assert abs(float(back[40:88, 40:88].mean()) - float(display[40:88, 40:88].mean())) < 6
