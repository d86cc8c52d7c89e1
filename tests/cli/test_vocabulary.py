"""One name per idea across commands: --device/--accelerator, --kernel/--filter, awgn/gaussian;
choices in --help; ``lowdose models`` readable at 80 columns."""

from __future__ import annotations

import pytest
import typer.testing

import lowdose.cli
import lowdose.cli.dataset_cmd  # noqa: F401  registers the commands below
import lowdose.cli.evaluate_cmd  # noqa: F401
import lowdose.cli.iq_cmd  # noqa: F401
import lowdose.cli.models_cmd  # noqa: F401
import lowdose.cli.simulate_ct_cmd  # noqa: F401
import lowdose.cli.train_cmd  # noqa: F401
from lowdose.core.errors import LowdoseInputError
from lowdose.pipeline.config import DatasetSpec
from lowdose.simulate.ct_levels import ct_noise_name


def _invoke(args, columns: int = 400):
    return typer.testing.CliRunner().invoke(lowdose.cli.app, args, env={"COLUMNS": str(columns)})


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (["train"], ["--accelerator", "--device", "cpu, gpu (or cuda) or auto"]),
        (["evaluate"], ["--device", "--accelerator", "cpu, cuda, cuda:N or auto"]),
        (["iq"], ["--device", "--accelerator"]),
        (["denoise"], ["--device", "--accelerator", "auto", "window:C,W", "--shard"]),
        (["fit"], ["--device", "--accelerator", "--skip-bad", "--dataset-key", "--units"]),
        (["simulate", "ct"], ["--kernel", "--filter", "hann, ramp or shepp-logan", "gaussian"]),
        (["dataset", "from-sinogram"], ["--kernel", "--filter", "ramp, hann or shepp-logan"]),
    ],
)
def test_help_names_both_spellings_and_the_choices(command, names):
    result = _invoke([*command, "--help"])
    assert result.exit_code == 0, result.output
    for name in names:
        assert name in result.output, (command, name)


def test_gaussian_and_awgn_name_one_noise():
    assert ct_noise_name("gaussian") == ct_noise_name(" AWGN ") == "awgn"
    assert ct_noise_name("sinogram") == "sinogram"
    with pytest.raises(LowdoseInputError, match="noise='poisson': use awgn .or gaussian. or sino"):
        ct_noise_name("poisson")
    spec = {"kind": "ct", "target_psnr_db": 24.44}
    assert DatasetSpec(**spec, noise="gaussian") == DatasetSpec(**spec, noise="awgn")


def test_simulate_ct_refuses_an_unknown_noise_in_one_line(tmp_path):
    result = _invoke(["simulate", "ct", "--noise", "speckle", "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 1
    assert result.output.strip() == "error: noise='speckle': use awgn (or gaussian) or sinogram"


def test_evaluate_takes_the_accelerator_spelling_and_auto(tiny_dataset, tmp_path):
    out = tmp_path / "results"
    args = ["evaluate", "--data", str(tiny_dataset), "--filters", "", "--out", str(out)]
    result = _invoke([*args, "--accelerator", "auto"])
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").is_file()


def test_models_listing_fits_80_columns():
    result = _invoke(["models"], columns=80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    for name in ("ct-awgn: ct, HU -> HU", "ct-sinogram: ct, HU -> HU", "xray-poisson: xray"):
        assert any(line.startswith(name) for line in lines), name
    assert sum(line.startswith("  validity  noise sd") for line in lines) == 3
