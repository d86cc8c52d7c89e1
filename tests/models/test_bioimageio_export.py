"""``lowdose export --format bioimageio``: a BioImage Model Zoo package that validates offline.

``bioimageio.spec`` (dev extra) validates the format; the package's inference is checked here the
way ``bioimageio.core.test_model`` checks it (the test output reproduced from the test input by
each weight format, at other sizes and batch sizes too), because bioimageio.core 0.11 pins
bioimageio.spec 0.5.12, whose file serializer fails under our pydantic 2.14.
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
import zipfile

import numpy as np
import pytest
import torch
import yaml

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling
from lowdose.inference.predict import denoise
from lowdose.models.bioimageio_export import export_bioimageio
from lowdose.models.builtin import BUILTIN_DIR_ENV, ModelCard
from lowdose.models.builtin_pack import pack_model
from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel, ValidityRange
from lowdose.models.unet import UNet

bioimageio_spec = pytest.importorskip("bioimageio.spec")

CT_SCALING = NetworkScaling(
    scaling_rule="dataset_max", scaling_offset=1024.0, raw_units="hu", divisor=3000.0
)
XRAY_SCALING = NetworkScaling(scaling_rule="per_image_max", raw_units="transmission")
VALIDITY = ValidityRange(
    sigma_low=0.005,
    sigma_high=0.04,
    trained_sigma=0.02,
    estimator="single_image_noise_sigma",
    levels=((0.5, 0.028, 2.0), (1.0, 0.02, 1.5)),
    method="binomial thinning",
)
CARD = ModelCard(
    title="lowdose tiny CT denoiser",
    modality="ct",
    noise_model="sinogram Poisson + FBP",
    training_data="TCGA-LUAD slices",
    data_licence="CC BY 3.0",
    doses="0.25 to 1 of 1e5 photons per ray",
    test_metrics={"psnr_gain_db": 4.2},
    command="lowdose train --data ct.h5 --width 4",
    units_in="HU",
    units_out="HU",
    window=(-160.0, 240.0),
)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No socket may connect, and bioimageio's cache lives in tmp_path."""

    def refuse(*args, **kwargs):
        raise AssertionError("bioimageio tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(bioimageio_spec.settings, "cache_path", tmp_path / "bioimageio-cache")


def _network(*, residual: bool = True) -> UNet:
    """A random width-4 U-Net; residual (the default): close to the identity, as trained
    denoisers are, so the test output keeps the input's positive maximum (bioimageio.spec bounds
    the absolute tolerance by 1 % of it)."""
    torch.manual_seed(11)
    network = UNet(width=4, residual=residual)
    if residual:  # a zero last layer would make it the identity: give it something to do
        torch.nn.init.normal_(network.dec_conv1.weight, std=0.01)
    return network.eval()


def _meta(scaling: NetworkScaling, validity: ValidityRange | None = None) -> CheckpointMeta:
    return CheckpointMeta(
        model=CheckpointModel(name="unet-w4", width=4, residual=False),
        mode="n2n",
        loss="mse",
        scaling=scaling,
        val_reference="realisation",
        global_step=10,
        validity=validity,
    )


def _validate(source) -> object:
    description = bioimageio_spec.load_description(source, perform_io_checks=True)
    summary = description.validation_summary
    # "valid-format" is bioimageio.spec's verdict; "passed" needs bioimageio.core's inference
    # checks, which the tests here do themselves
    assert summary.status in ("valid-format", "passed"), summary.format()
    # the one warning left: a zoo upload names a maintainer's GitHub account, which we cannot
    other = [w.msg for w in summary.warnings if "github_user" not in w.msg]
    assert not other, summary.format()
    return description


def _architecture(folder, rdf: dict):
    """The package's architecture, imported from its file as bioimageio.core imports it."""
    weights = rdf["weights"]["pytorch_state_dict"]
    spec = importlib.util.spec_from_file_location(
        "exported_lowdose_unet", folder / weights["architecture"]["source"]
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, weights["architecture"]["callable"])(
        **weights["architecture"]["kwargs"]
    )
    state = torch.load(folder / weights["source"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize(
    ("scaling", "residual"), [(CT_SCALING, True), (XRAY_SCALING, False)], ids=["ct", "xray"]
)
def test_package_validates_and_each_weight_format_reproduces_lowdose(
    tmp_path, offline, scaling, residual
):
    network = _network(residual=residual)
    meta = _meta(scaling, VALIDITY)
    card = CARD if scaling is CT_SCALING else None
    folder = export_bioimageio(network, meta, tmp_path / "package", card=card)
    _validate(folder / "rdf.yaml")
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    test_input = np.load(folder / "test_input.npy")
    test_output = np.load(folder / "test_output.npy")
    assert test_input.shape == test_output.shape == (1, 1, 64, 64)
    state_dict_model = _architecture(folder, rdf)
    scripted = torch.jit.load(str(folder / rdf["weights"]["torchscript"]["source"]))
    rng = np.random.default_rng(2)
    # the declared size is what the graph takes: any y, x >= 32 (it pads to a multiple of 32)
    sizes = [axis["size"] for axis in rdf["inputs"][0]["axes"] if axis["type"] == "space"]
    assert sizes == [{"min": 32, "step": 1}] * 2
    assert "any y, x >= 32." in (folder / "README.md").read_text()
    # every file's listed SHA-256 is the hash of its bytes
    listed = [
        rdf["weights"]["pytorch_state_dict"],
        rdf["weights"]["torchscript"],
        rdf["inputs"][0]["test_tensor"],
        rdf["outputs"][0]["sample_tensor"],
    ]
    for entry in listed:
        digest = hashlib.sha256((folder / entry["source"]).read_bytes()).hexdigest()
        assert entry["sha256"] == digest, entry["source"]
    # the test tensors, then other sizes (the smallest, off any grid, wide) and batch 2
    inputs = [test_input] + [
        (test_input.mean() + test_input.std() * rng.standard_normal(shape)).astype(np.float32)
        for shape in [(2, 1, 32, 96), (1, 1, 33, 47), (1, 1, 50, 70)]
    ]
    for index, raw in enumerate(inputs):
        expected = denoise(network, raw[:, 0], scaling=scaling)[:, None]  # lowdose's own answer
        with torch.no_grad():
            for model in (state_dict_model, scripted):
                got = model(torch.from_numpy(raw)).numpy()
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-3 * np.abs(raw).max())
                if index == 0:
                    np.testing.assert_allclose(got, test_output, rtol=1e-5, atol=1e-4)


def test_config_carries_what_a_ct_user_needs(tmp_path, offline):
    folder = export_bioimageio(_network(), _meta(CT_SCALING, VALIDITY), tmp_path / "p", card=CARD)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    lowdose = rdf["config"]["lowdose"]
    assert (lowdose["units_in"], lowdose["units_out"], lowdose["window"]) == (
        "HU",
        "HU",
        [-160, 240],
    )
    assert lowdose["scaling"]["divisor"] == 3000.0 and lowdose["scaling_in_graph"] is True
    assert lowdose["noise_model"] == "sinogram Poisson + FBP"
    assert (
        lowdose["training"]["mode"] == "n2n"
        and lowdose["training"]["model_selection"] == "clean-free"
    )
    assert lowdose["validity"]["sigma_high"] == 0.04
    assert lowdose["validity"]["raw_units"]["sigma_high"] == pytest.approx(120.0)  # x 3000 HU
    assert "ct" in rdf["tags"] and rdf["name"] == CARD.title
    readme = (folder / "README.md").read_text()
    for text in ("HU", "CC BY 3.0", "Noise2Noise", "## Validation", "120"):
        assert text in readme, text


def test_zip_output_validates_and_a_used_folder_is_refused(tmp_path, offline):
    archive = export_bioimageio(_network(), _meta(XRAY_SCALING), tmp_path / "model.zip")
    with zipfile.ZipFile(archive) as handle:
        assert {"rdf.yaml", "weights.pt", "weights_torchscript.pt", "lowdose_unet.py"} <= set(
            handle.namelist()
        )
    _validate(archive)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(LowdoseInputError, match="not an empty folder"):
        export_bioimageio(_network(), _meta(XRAY_SCALING), used)
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    with pytest.raises(LowdoseInputError, match="stores no divisor"):
        export_bioimageio(
            _network(), _meta(NetworkScaling(scaling_rule="dataset_max")), tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()


def test_export_cli_bioimageio_of_a_builtin_model_uses_its_card(
    tmp_path, offline, monkeypatch, invoke_cli
):
    checkpoint = tmp_path / "best.ckpt"
    network = _network()
    meta = {
        "scaling": {
            "scaling_rule": "dataset_max",
            "scaling_offset": 1024.0,
            "raw_units": "hu",
            "divisor": 3000.0,
        }
    }
    hparams = {"model": network.config(), "mode": "n2n", "loss": "mse", "meta": meta}
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    torch.save({"hyper_parameters": hparams, "state_dict": state}, checkpoint)
    monkeypatch.setenv(BUILTIN_DIR_ENV, str(tmp_path / "builtin"))
    pack_model(checkpoint, "ct-tiny", CARD)
    out = tmp_path / "ct-tiny.zip"
    result = invoke_cli(
        ["export", "--format", "bioimageio", "--model", "builtin:ct-tiny", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    description = _validate(out)
    assert description.name == CARD.title
    assert str(description.license) == "BSD-3-Clause"
    result = invoke_cli(
        ["export", "--format", "tiff", "--model", str(checkpoint), "--out", str(out)]
    )
    assert result.exit_code == 1 and "torchscript, onnx or bioimageio" in result.output
    card = tmp_path / "card.yaml"
    card.write_text(yaml.safe_dump(CARD.model_dump(mode="json")))
    args = ["export", "--model", str(checkpoint), "--card", str(card)]
    result = invoke_cli([*args, "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "--card describes --format bioimageio only" in result.output
    result = invoke_cli([*args, "--format", "bioimageio", "--out", str(tmp_path / "from-ckpt")])
    assert result.exit_code == 0, result.output
    assert _validate(tmp_path / "from-ckpt" / "rdf.yaml").name == CARD.title
