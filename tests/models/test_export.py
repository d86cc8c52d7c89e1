"""Exported TorchScript and ONNX models match PyTorch on any input size; sidecar holds scaling."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel
from lowdose.models.export import export_model, to_torchscript
from lowdose.models.unet import UNet

META = CheckpointMeta(
    model=CheckpointModel(name="unet-w4", width=4, residual=False),
    mode="n2n",
    loss="mse",
    scaling=NetworkScaling(scaling_rule="per_image_max", scaling_offset=0.0, divisor=None),
)
# batch 2 on a multiple of 32, an odd size that the graph must pad, and an image under 32 px
SHAPES = [(2, 1, 96, 128), (1, 1, 70, 101), (1, 1, 5, 7)]


@pytest.fixture(scope="module")
def unet() -> UNet:
    torch.manual_seed(0)
    return UNet(width=4).eval()


def _reference(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _inputs():
    rng = np.random.default_rng(0)
    return [rng.random(shape, dtype=np.float32) for shape in SHAPES]


def test_torchscript_matches_pytorch(unet, tmp_path):
    path, sidecar = export_model(unet, tmp_path / "m.pt", fmt="torchscript", meta=META)
    loaded = torch.jit.load(str(path))
    for x in _inputs():
        with torch.inference_mode():
            out = loaded(torch.from_numpy(x)).numpy()
        assert out.shape == x.shape
        assert np.abs(out - _reference(unet, x)).max() <= 1e-5
    info = json.loads(sidecar.read_text())
    assert info["scaling"] == dataclasses.asdict(META.scaling)
    assert info["model"]["name"] == "unet-w4"


def test_onnx_matches_pytorch(unet, tmp_path):
    import onnxruntime

    path, sidecar = export_model(unet, tmp_path / "m.onnx", fmt="onnx", meta=META)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    for x in _inputs():
        (out,) = session.run(["denoised"], {"image": x})
        assert out.shape == x.shape
        assert np.abs(out - _reference(unet, x)).max() <= 1e-5
    assert json.loads(sidecar.read_text())["onnx_opset"] == 17


def test_export_leaves_the_model_alone(unet):
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    to_torchscript(unet)
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    assert not unet.training


def test_export_cli_and_bad_format(monkeypatch, unet, tmp_path):
    import typer.testing

    import lowdose.cli
    import lowdose.cli.denoise_cmd  # noqa: F401  (registers the commands)
    import lowdose.models.checkpoint

    # the command imports load_model from its module when it runs: patch it there
    monkeypatch.setattr(lowdose.models.checkpoint, "load_model", lambda path: (unet, META))
    runner = typer.testing.CliRunner()
    out = tmp_path / "model.pt"
    args = ["export", "--model", str(tmp_path), "--format", "torchscript", "--out", str(out)]
    result = runner.invoke(lowdose.cli.app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "model.pt.json").is_file()
    bad = ["export", "--model", str(tmp_path), "--format", "tflite", "--out", str(out)]
    result = runner.invoke(lowdose.cli.app, bad, env={"COLUMNS": "400"})
    assert result.exit_code == 1 and "tflite" in result.output
    with pytest.raises(LowdoseInputError, match="torchscript"):
        export_model(unet, tmp_path / "x", fmt="keras", meta=META)
