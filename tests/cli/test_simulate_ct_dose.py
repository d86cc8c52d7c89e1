"""``lowdose simulate ct`` by dose: options that exclude each other, the starvation warning, the
QA phantom."""

from __future__ import annotations

import h5py
import pytest
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.simulate_ct_cmd  # noqa: F401  (registers `simulate ct`)

SMALL = ["simulate", "ct", "--source", "phantom", "--size", "64"]


def run(*args: str):
    return CliRunner().invoke(lowdose.cli.app, [*SMALL, *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--noise", "sinogram", "--photons-per-ray", "1e4", "--dose-fraction", "0.5"],
            "--photons-per-ray and --dose-fraction exclude each other",
        ),
        (["--photons-per-ray", "1e4"], "need --noise sinogram"),
        (
            ["--noise", "sinogram", "--dose-fraction", "0.5", "--target-psnr", "20"],
            "--target-psnr and a dose",
        ),
        (
            [
                "--noise",
                "sinogram",
                "--photons-per-ray",
                "1e4",
                "--view-subsets",
                "2",
                "--realisations",
                "2",
            ],
            "--realisations and --view-subsets exclude each other",
        ),
        (["--noise", "sinogram", "--electronic-noise", "5"], "--electronic-noise needs a dose"),
        (["--noise", "sinogram", "--photons-per-ray", "-4"], "--photons-per-ray"),
        (["--noise", "sinogram", "--kernel", "cosine"], "--kernel 'cosine'"),
    ],
)
def test_options_that_exclude_each_other_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "x.h5"
    result = run(*args, "--out", str(out))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_a_starved_dose_prints_one_warning_with_the_photons_to_use(tmp_path):
    out = tmp_path / "s.h5"
    result = run("--noise", "sinogram", "--photons-per-ray", "50", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    starts = [k for k, line in enumerate(lines) if line.startswith("warning:")]
    assert len(starts) == 1 and all(len(line) <= 80 for line in lines)
    warning = " ".join(lines[starts[0] :])  # wrapped at word boundaries to 80 columns
    assert "photon-starved" in warning and "--photons-per-ray >= " in warning
    with h5py.File(out, "r") as handle:
        assert handle.attrs["photon_starved"] and handle.attrs["photons_per_ray"] == 50.0


def test_a_generous_dose_with_a_kernel_and_electronic_noise_warns_of_nothing(tmp_path):
    out = tmp_path / "g.h5"
    result = run(
        "--noise",
        "sinogram",
        "--dose-fraction",
        "1",
        "--electronic-noise",
        "2",
        "--kernel",
        "shepp-logan",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and "dose fraction 1" in result.output
    with h5py.File(out, "r") as handle:
        assert handle.attrs["filter_name"] == "shepp-logan"
        assert handle.attrs["electronic_noise_counts"] == 2.0
        assert handle.attrs["target_psnr_db"] != handle.attrs["target_psnr_db"]  # NaN: no target


def test_the_qa_phantom_builds_as_one_test_object_with_view_subsets(tmp_path):
    out = tmp_path / "qa.h5"
    result = CliRunner().invoke(
        lowdose.cli.app,
        [
            "simulate",
            "ct",
            "--source",
            "qa-phantom",
            "--noise",
            "sinogram",
            "--photons-per-ray",
            "1e5",
            "--view-subsets",
            "2",
            "--size",
            "64",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as handle:
        assert handle["noisy"].shape == (3, 2, 64, 64)
        assert set(handle["split"][()].astype(str)) == {"test"}
        assert handle.attrs["realisations_are"] == "view_subsets" and "qa_phantom" in handle.attrs
