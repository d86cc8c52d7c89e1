"""Optional extras: without ``lowdose[onnx]`` or ``lowdose[parquet]`` the user gets one line.

A missing extra is simulated by ``sys.modules[name] = None`` (import then raises ImportError).
"""

from __future__ import annotations

import sys

import pytest

import lowdose.cli.denoise_cmd  # noqa: F401  registers `lowdose export`
import lowdose.cli.evaluate_cmd  # registers `lowdose evaluate`
import lowdose.evaluation.outputs
from lowdose.core.errors import LowdoseInputError
from lowdose.core.extras import EXTRA_MODULES, extra_installed, require_extra
from lowdose.evaluation.evaluate import evaluate
from lowdose.report.build import _read_table

ONNX_LINE = "lowdose export --format onnx needs the onnx extra: pip install 'lowdose[onnx]'"


@pytest.fixture
def without(monkeypatch):
    """``without(extra)``: its package cannot be imported for the rest of the test."""

    def hide(extra: str) -> None:
        monkeypatch.setitem(sys.modules, EXTRA_MODULES[extra], None)

    return hide


def test_the_extras_of_the_test_environment_are_installed():
    assert extra_installed("onnx") and extra_installed("parquet")  # dev pulls both


def test_a_missing_extra_is_one_line_naming_it(without):
    without("onnx")
    assert not extra_installed("onnx")
    with pytest.raises(LowdoseInputError) as caught:
        require_extra("onnx", "lowdose export --format onnx")
    assert str(caught.value) == ONNX_LINE


def test_export_onnx_without_the_extra(without, invoke_cli, tmp_path):
    without("onnx")
    out = tmp_path / "m.onnx"
    result = invoke_cli(
        ["export", "--model", "builtin:ct-awgn", "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {ONNX_LINE}"]
    assert not out.exists() and not out.with_name("m.onnx.json").exists()
    torchscript = invoke_cli(
        [
            "export",
            "--model",
            "builtin:ct-awgn",
            "--format",
            "torchscript",
            "--out",
            str(tmp_path / "m.pt"),
        ]
    )
    assert torchscript.exit_code == 0, torchscript.output  # the other formats need no extra


def test_evaluate_without_parquet_writes_the_csv_and_one_note(
    monkeypatch, invoke_cli, tiny_dataset, tmp_path
):
    # pyarrow is not hidden here: pandas, once it has imported pyarrow, imports its submodules
    # lazily and would fail; a pandas installed without pyarrow never tries
    for module in (lowdose.evaluation.outputs, lowdose.cli.evaluate_cmd):
        monkeypatch.setattr(module, "extra_installed", lambda extra: extra != "parquet")
    out = tmp_path / "results"
    result = invoke_cli(
        ["evaluate", "--data", str(tiny_dataset), "--filters", "", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "parquet extra" in line]
    assert notes == [
        "note: results.parquet skipped: it needs the parquet extra, pip install "
        "'lowdose[parquet]' (results.csv holds the same table)"
    ]
    assert (out / "results.csv").is_file() and not (out / "results.parquet").exists()


def test_the_report_reads_a_lone_parquet_only_with_the_extra(without, tiny_dataset, tmp_path):
    evaluate(tiny_dataset, filters=[], out_dir=tmp_path)
    (tmp_path / "results.csv").unlink()  # an older run that kept only the parquet table
    assert len(_read_table(tmp_path / "results.csv", ("method",))) > 0
    without("parquet")
    with pytest.raises(
        LowdoseInputError,
        match=r"results.parquet \(no results.csv beside it\) "
        r"needs the parquet extra: pip install 'lowdose\[parquet\]'",
    ):
        _read_table(tmp_path / "results.csv", ("method",))
