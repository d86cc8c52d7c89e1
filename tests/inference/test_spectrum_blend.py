"""The one-scan CT recipe: the built-in network averaged with BM3D given each slice's spectrum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from lowdose.cli import app
from lowdose.core.errors import LowdoseInputError
from lowdose.inference.files import denoise_files
from lowdose.inference.spectrum_blend import blend, blend_description, spectrum_bm3d_hu


def _correlated_noise_slice(rng: np.random.Generator, size: int = 96):
    """A water disc in air with band-pass noise as FBP makes it (~0 at DC, correlated over
    ~2 px), sd 20 HU."""
    y, x = np.mgrid[0:size, 0:size] - size / 2
    clean = np.where(np.hypot(y, x) < size * 0.4, 0.0, -1000.0).astype(np.float32)
    clean[np.hypot(y - 8, x + 6) < 8] = 60.0  # a lesion: structure the filter must keep
    white = rng.normal(0.0, 1.0, (size, size))
    noise = ndimage.gaussian_filter(white, 0.8) - ndimage.gaussian_filter(white, 3.0)
    noise *= 20.0 / noise.std()
    return clean, (clean + noise).astype(np.float32)


def test_blend_is_the_weighted_mean_and_never_worse_than_the_worse_of_two():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(8, 8)).astype(np.float32)
    a = clean + rng.normal(0, 0.3, clean.shape).astype(np.float32)
    b = clean + rng.normal(0, 0.5, clean.shape).astype(np.float32)
    mixed = blend(a, b)
    np.testing.assert_allclose(mixed, 0.5 * a + 0.5 * b, rtol=1e-6)
    error = lambda e: float(np.mean((e - clean) ** 2))  # noqa: E731
    # the identity the module docstring states: |(a+b)/2 - x|^2 = mean of errors - |a-b|^2/4
    expected = (error(a) + error(b)) / 2 - float(np.mean((a - b) ** 2)) / 4
    assert error(mixed) == pytest.approx(expected, rel=1e-4)
    assert error(mixed) <= max(error(a), error(b))
    np.testing.assert_allclose(blend(a, b, network_weight=1.0), a)
    with pytest.raises(ValueError, match="shapes"):
        blend(a, b[:4])


def test_spectrum_bm3d_lowers_correlated_noise_keeps_the_lesion_and_the_input():
    rng = np.random.default_rng(1)
    clean, noisy = _correlated_noise_slice(rng)
    before = noisy.copy()
    calls = []
    out = spectrum_bm3d_hu(noisy[None], progress=lambda *a: calls.append(a))[0]
    np.testing.assert_array_equal(noisy, before)  # pure
    assert out.dtype == np.float32 and out.shape == noisy.shape
    disc = np.hypot(*(np.mgrid[0:96, 0:96] - 48)) < 30
    assert np.std((out - clean)[disc]) < 0.6 * np.std((noisy - clean)[disc])
    lesion = np.hypot(*(np.mgrid[0:96, 0:96] - np.array([56, 42])[:, None, None])) < 5
    assert abs(float(np.mean(out[lesion])) - 60.0) < 10.0  # contrast kept within 10 HU of 60
    assert calls == [("bm3d-psd", 1, 1)]


def test_denoise_files_blend_writes_provenance_and_needs_a_hu_model(tmp_path):
    rng = np.random.default_rng(2)
    _, noisy = _correlated_noise_slice(rng, size=64)
    source = tmp_path / "in" / "slice.npy"
    source.parent.mkdir()
    np.save(source, noisy)
    plain = denoise_files([source], tmp_path / "plain", "builtin:ct-sinogram")
    mixed = denoise_files([source], tmp_path / "mixed", "builtin:ct-sinogram", blend_bm3d_psd=True)
    network_only, blended = np.load(plain[0]), np.load(mixed[0])
    bm3d_only = spectrum_bm3d_hu(noisy)
    np.testing.assert_allclose(blended, 0.5 * network_only + 0.5 * bm3d_only, atol=1e-3)
    assert "BM3D" in blend_description()
    with pytest.raises(LowdoseInputError, match="CT in HU"):
        denoise_files([source], tmp_path / "x", "builtin:xray-poisson", blend_bm3d_psd=True)


def test_denoise_cli_blend_flag_and_its_one_line_error(tmp_path):
    rng = np.random.default_rng(3)
    _, noisy = _correlated_noise_slice(rng, size=64)
    np.save(tmp_path / "slice.npy", noisy)
    base = ["denoise", str(tmp_path / "slice.npy"), "--blend-bm3d-psd"]
    runner = CliRunner()
    result = runner.invoke(
        app, [*base, "--model", "builtin:ct-sinogram", "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 0, result.output
    expected = denoise_files(
        [tmp_path / "slice.npy"], tmp_path / "b", "builtin:ct-sinogram", blend_bm3d_psd=True
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "a" / "slice.npy"), np.load(expected[0]), atol=1e-3
    )
    bad = runner.invoke(
        app, [*base, "--model", "builtin:xray-poisson", "--out", str(tmp_path / "c")]
    )
    assert bad.exit_code == 1 and "CT in HU" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
