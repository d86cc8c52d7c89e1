"""``lowdose iq``: a QA phantom (made by ``lowdose simulate ct --source qa-phantom``) and a CT model
in, tables, a report and a summary table out; every bad input one error line naming the file or
option and the fix, with nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cli_inputs import run_cli
from conftest import write_tiny_dataset
from lowdose.models.unet import UNet


def ct_checkpoint(path: Path) -> Path:
    """An untrained residual width-4 U-Net (the identity: zero last layer) saved as a CT run."""
    torch.manual_seed(0)
    net = UNet(width=4, residual=True)
    scaling = {
        "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0,
        "raw_units": "hu",
        "divisor": 3000.0,
    }
    path.parent.mkdir(parents=True)
    torch.save(
        {
            "hyper_parameters": {
                "model": net.config(),
                "mode": "n2n",
                "loss": "mse",
                "meta": {"scaling": scaling, "val_reference": "realisation"},
            },
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("iq-inputs")
    made = {"checkpoint": ct_checkpoint(root / "run" / "best.ckpt")}
    for name, n in (("qa", 3), ("qa1", 1)):  # the phantom as a user makes it
        made[name] = root / f"{name}.h5"
        result = run_cli(
            [
                "simulate",
                "ct",
                "--source",
                "qa-phantom",
                "--noise",
                "sinogram",
                "--photons-per-ray",
                "1e5",
                "--realisations",
                n,
                "--size",
                96,
                "--out",
                made[name],
            ]
        )
        assert result.exit_code == 0, result.output
    made["xray"] = write_tiny_dataset(root / "xray.h5")
    return made


def test_iq_writes_tables_and_a_report_and_prints_a_summary(inputs, tmp_path):
    out = tmp_path / "iq"
    args = ["iq", "--data", inputs["qa"], "--model", inputs["checkpoint"], "--filters", "nlm"]
    result = run_cli([*args, "--out", out])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"iq.csv", "iq_nps.csv", "iq_ttf.csv", "iq.json", "report.html", "report.md"} <= names
    assert len(list((out / "figures").glob("*.png"))) == 2
    table = [line for line in result.output.splitlines() if "│" in line]
    assert [line.split("│")[1].strip() for line in table] == ["noisy", "n2n-mse", "nlm-blind"]
    assert f"wrote {out / 'report.html'}" in " ".join(result.output.split())
    assert max(len(line) for line in result.output.splitlines()) <= 80
    # the identity network (on its own scale, divisor 3000) measures as the noisy input does
    iq = pd.read_csv(out / "iq.csv")
    metrics = ["sigma_hu", "hu_bias", "cnr", "f50", "nps_mean", "dprime_npwe"]
    noisy, network = (iq[iq["method"] == m][metrics].to_numpy() for m in ("noisy", "n2n-mse"))
    assert np.allclose(noisy, network, rtol=1e-4, atol=1e-3, equal_nan=True)


def assert_one_error_line(result, *, names: list[str]) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for name in names:
        assert name in errors[0], (name, errors[0])


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("no-geometry", ["xray.h5", "not a QA-phantom dataset", "--source qa-phantom"]),
        ("one-realisation", ["qa1.h5", "1 realisation", ">= 2"]),
        ("unknown-filter", ["--filters 'median'", "nlm,bm3d"]),
        ("missing-model", ["nowhere", "best.ckpt"]),
        ("xray-model", ["x-run", "not CT in HU"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path, case, names):
    data, extra = inputs["qa"], ["--filters", ""]
    if case == "no-geometry":
        data = inputs["xray"]
    elif case == "one-realisation":
        data = inputs["qa1"]
    elif case == "unknown-filter":
        extra = ["--filters", "nlm,median"]
    elif case == "missing-model":
        extra += ["--model", tmp_path / "nowhere" / "best.ckpt"]
    else:  # a checkpoint with no CT scaling (an X-ray-like run)
        x_run = tmp_path / "x-run" / "best.ckpt"
        x_run.parent.mkdir()
        checkpoint = torch.load(inputs["checkpoint"], weights_only=True)
        checkpoint["hyper_parameters"]["meta"] = {"scaling": {"raw_units": "transmission"}}
        torch.save(checkpoint, x_run)
        extra += ["--model", x_run]
    out = tmp_path / "out"
    result = run_cli(["iq", "--data", data, *extra, "--out", out])
    assert_one_error_line(result, names=names)
    assert not out.exists()
