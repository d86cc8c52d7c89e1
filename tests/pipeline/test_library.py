"""The library face: ``lowdose.denoise`` / ``lowdose.fit`` / ``lowdose.load_model`` from Python.

The docstring examples of the face run here as doctests (only these modules: the rest of the
suite is not collected with ``--doctest-modules``).
"""

from __future__ import annotations

import doctest
import io
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import lowdose
from lowdose.core import devices
from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import scale_to_network
from lowdose.inference.predict import denoise_in_field_of_view
from lowdose.models import checkpoint
from lowdose.physics.field_of_view import field_of_view_mask
from lowdose.pipeline import library
from lowdose.pipeline.fit import FitOptions

MODEL = "builtin:ct-awgn"


def _disc(size: int = 64, *, sigma_hu: float = 300.0, seed: int = 0) -> np.ndarray:
    """A water disc in air, in HU, with white noise: float32 (size, size)."""
    yy, xx = np.mgrid[:size, :size]
    clean = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2, 0.0, -1000.0)
    noise = np.random.default_rng(seed).normal(0, sigma_hu, clean.shape)
    return (clean + noise).astype(np.float32)


def test_import_lowdose_does_not_import_torch():
    code = (
        "import sys, lowdose; heavy = ('torch', 'lightning', 'pandas', 'matplotlib', 'onnx');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_the_face_resolves_its_names_on_first_use():
    assert lowdose.__all__ == ["denoise", "fit", "load_model"]
    assert lowdose.denoise is library.denoise and lowdose.fit is library.fit
    assert lowdose.load_model is checkpoint.load_model
    with pytest.raises(AttributeError, match="no attribute 'train'"):
        lowdose.train  # noqa: B018


@pytest.mark.parametrize("module", [library, devices, checkpoint], ids=lambda m: m.__name__)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp lands here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(module):
        if module is checkpoint and test.name != f"{module.__name__}.load_model":
            continue
        runner.run(test, out=report.write)
    assert runner.tries > 0 and runner.failures == 0, report.getvalue()


def test_an_array_keeps_its_padding_and_matches_the_field_of_view_route():
    stack = np.stack([_disc(seed=0), _disc(seed=1)])  # (2, 64, 64)
    yy, xx = np.mgrid[:64, :64]
    outside = (yy - 32) ** 2 + (xx - 32) ** 2 > 31**2
    stack[:, outside] = -2048.0  # scanner padding outside the reconstruction circle
    before = stack.copy()
    result = lowdose.denoise(stack, model=MODEL, device="cpu")
    assert result.dtype == np.float32 and result.shape == stack.shape
    np.testing.assert_array_equal(stack, before)  # the input is not modified
    np.testing.assert_array_equal(result[:, outside], -2048.0)
    network, meta = checkpoint.load_model(MODEL)
    inside = np.stack([field_of_view_mask(image) for image in stack])
    assert not inside[:, outside].any()
    expected = denoise_in_field_of_view(network, stack, inside, scaling=meta.scaling)
    np.testing.assert_allclose(result, expected, atol=1e-3)


def test_scaled_units_are_the_network_scale():
    noisy = _disc()
    network, meta = checkpoint.load_model(MODEL)
    scaled = scale_to_network(noisy, meta.scaling)[0]
    result = lowdose.denoise(scaled, model=MODEL, device="cpu", units="scaled")
    in_hu = lowdose.denoise(noisy, model=MODEL, device="cpu", units="hu")
    # the same denoising whatever the units the numbers come in
    np.testing.assert_allclose(result, scale_to_network(in_hu, meta.scaling)[0], atol=1e-5)


def test_units_the_model_cannot_take_are_named():
    with pytest.raises(LowdoseInputError, match=r"--units 'transmission'.*auto, hu, scaled"):
        lowdose.denoise(_disc(), model=MODEL, device="cpu", units="transmission")
    with pytest.raises(LowdoseInputError, match="8-bit display image.*--units"):
        lowdose.denoise(np.clip(_disc() / 8 + 128, 0, 255).round(), model=MODEL, device="cpu")


def test_files_need_out_and_arrays_refuse_file_options(tmp_path):
    with pytest.raises(LowdoseInputError, match="needs out=FOLDER"):
        lowdose.denoise(tmp_path / "scan.npy", model=MODEL)
    with pytest.raises(LowdoseInputError, match="takes no out, skip_existing"):
        lowdose.denoise(_disc(), model=MODEL, out=tmp_path, skip_existing=True)


def test_file_options_reach_denoise_files(tmp_path, monkeypatch):
    seen = {}

    def fake(inputs, out, model, **kwargs):
        seen.update(inputs=inputs, out=out, model=model, **kwargs)
        return []

    monkeypatch.setattr(library, "denoise_files", fake)
    monkeypatch.setattr(library, "resolve_device", lambda name: "cpu")
    lowdose.denoise(["a.npy", tmp_path / "b"], out=tmp_path, tta=8, shard="1/2", devices=2)
    assert seen["inputs"] == [library.Path("a.npy"), tmp_path / "b"]
    assert seen["shard"] == "1/2" and seen["devices"] == 2 and seen["tta"] == 8
    assert "units" not in seen  # only when asked: a denoise_files without units still works
    lowdose.denoise("a.npy", out=tmp_path, units="hu")
    assert seen["units"] == "hu" and seen["model"] == "builtin:ct-sinogram"


def test_resolve_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == "cuda"
    assert devices.resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device(" Auto ") == "cpu"


def test_fit_calls_what_the_cli_calls(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        library,
        "run_fit",
        lambda paths, out, options, **kw: calls.append((paths, out, options, kw)),
    )
    out = tmp_path / "fit"
    lowdose.fit([tmp_path / "a.dcm", tmp_path / "b.dcm"], out=out, budget="00:01:00", seed=3)
    paths, where, options, kw = calls[-1]
    assert paths == [tmp_path / "a.dcm", tmp_path / "b.dcm"] and where == out
    assert options == FitOptions(budget="00:01:00", seed=3)
    kw["log"]("a line for people")  # silent by default: library code does not print
    lowdose.fit(_disc(), out=out)
    saved = out / "input" / "array.npy"
    assert calls[-1][0] == [saved]
    stamp = os.stat(saved).st_mtime_ns
    lowdose.fit(_disc(), out=out)  # unchanged: not rewritten, so the fit's stages are reused
    assert os.stat(saved).st_mtime_ns == stamp


def test_fit_refuses_unknown_options_and_leaves_no_new_folder(tmp_path):
    with pytest.raises(LowdoseInputError, match="fit takes no epochs; use angles, backend, budget"):
        lowdose.fit("scan.npy", out=tmp_path / "fit", epochs=3)
    with pytest.raises(LowdoseInputError, match="budget"):
        lowdose.fit(_disc(), out=tmp_path / "new", budget="five minutes")
    assert not (tmp_path / "new").exists()
