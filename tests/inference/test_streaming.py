"""Archive-scale ``denoise``: one unit at a time, shards that add up to one run, resumable runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.inference import files as files_module
from lowdose.inference.files import denoise_files
from lowdose.inference.work_plan import STATE_FOLDER, Shard, parse_shard
from lowdose.io.series_index import index_input

MODEL = "builtin:ct-awgn"


def _archive(root: Path, n_series: int = 5, size: int = 64) -> Path:
    """``root/patient_k/scan.npy`` HU slices (air around a noisy body) and a licence file."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    body = np.where(np.hypot(yy, xx) < size * 0.4, 40.0, -1000.0)
    for k in range(n_series):
        folder = root / f"patient_{k}"
        folder.mkdir(parents=True)
        np.save(folder / "scan.npy", (body + rng.normal(0, 30, (2, size, size))).astype(np.float32))
    (root / "LICENSE").write_text("CC BY 4.0\n")
    return root


def _tree(out: Path) -> dict[str, bytes]:
    """Every output file (records excluded) by relative path."""
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and STATE_FOLDER not in path.relative_to(out).parts
    }


def test_shards_partition_the_units_and_add_up_to_one_run(tmp_path):
    archive = _archive(tmp_path / "archive")
    whole = denoise_files([archive], tmp_path / "one", MODEL)
    assert len(whole) == 5 and all(p.parent.name.startswith("patient_") for p in whole)
    parts = [denoise_files([archive], tmp_path / "shards", MODEL, shard=f"{k}/2") for k in (1, 2)]
    assert sorted(map(len, parts)) == [2, 3]
    assert not set(parts[0]) & set(parts[1])
    assert _tree(tmp_path / "shards") == _tree(tmp_path / "one")
    # every position belongs to exactly one of N shards
    for count in (1, 3, 7):
        owners = [[k for k in range(1, count + 1) if Shard(k, count).takes(i)] for i in range(20)]
        assert all(len(owner) == 1 for owner in owners)


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_a_bad_shard_is_one_line_naming_the_form(text):
    with pytest.raises(LowdoseInputError, match="K/N"):
        parse_shard(text)


def test_skip_existing_redoes_nothing_finished_and_refuses_another_model(tmp_path, monkeypatch):
    archive = _archive(tmp_path / "archive", n_series=3)
    out = tmp_path / "out"
    first = denoise_files([archive], out, MODEL)
    stamps = {path: path.stat().st_mtime_ns for path in first}
    calls = []
    original = files_module.UnitWork.__call__
    monkeypatch.setattr(
        files_module.UnitWork,
        "__call__",
        lambda self, u, d: calls.append(u) or original(self, u, d),
    )
    again = denoise_files([archive], out, MODEL, skip_existing=True)
    assert again == first and calls == []
    assert {path: path.stat().st_mtime_ns for path in again} == stamps
    # a deleted output makes its unit unfinished: only that one is redone
    first[1].unlink()
    denoise_files([archive], out, MODEL, skip_existing=True)
    assert [unit.relative_folder.name for unit in calls] == [first[1].parent.name]
    with pytest.raises(LowdoseInputError, match="another model"):
        denoise_files([archive], out, MODEL, skip_existing=True, tta=8)


def test_a_failing_unit_keeps_the_finished_ones_and_leaves_nothing_half_written(tmp_path):
    archive = _archive(tmp_path / "archive", n_series=3)
    (archive / "patient_1" / "scan.npy").write_bytes(b"not an array")
    out = tmp_path / "out"
    with pytest.raises(LowdoseInputError, match="patient_1"):
        denoise_files([archive], out, MODEL)
    assert sorted(_tree(out)) == ["patient_0/scan.npy"]
    _archive(tmp_path / "fixed", n_series=3)
    os.replace(tmp_path / "fixed" / "patient_1" / "scan.npy", archive / "patient_1" / "scan.npy")
    written = denoise_files([archive], out, MODEL, skip_existing=True)
    assert len(written) == 3 and not list((out / STATE_FOLDER / "partial").glob("*/*"))


def test_a_killed_run_resumes_without_redoing_finished_series(tmp_path):
    archive = _archive(tmp_path / "archive", n_series=6, size=128)
    out = tmp_path / "out"
    lowdose = str(Path(sys.executable).parent / "lowdose")
    command = [lowdose, "denoise", str(archive), "--model", MODEL, "--out", str(out), "--tta", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out / STATE_FOLDER / "done"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(done.glob("*.json"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    records = sorted(done.glob("*.json"))
    assert 2 <= len(records) < 6, "the run should be killed midway"
    finished = [out / name for r in records for name in json.loads(r.read_text())["files"]]
    stamps = {path: path.stat().st_mtime_ns for path in finished}
    result = subprocess.run([*command, "--skip-existing"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"skipping {len(records)} series finished earlier" in result.stdout + result.stderr
    assert {path: path.stat().st_mtime_ns for path in finished} == stamps
    assert len(_tree(out)) == 6


def test_out_inside_an_input_folder_is_refused(tmp_path):
    archive = _archive(tmp_path / "archive", n_series=1)
    with pytest.raises(LowdoseInputError, match="outside the inputs"):
        denoise_files([archive], archive / "denoised", MODEL)


def test_the_index_sets_non_images_aside_and_reads_no_pixels(tmp_path):
    archive = _archive(tmp_path / "archive", n_series=2)
    (archive / ".hidden.npy").write_bytes(b"x")
    (archive / "DICOMDIR").write_bytes(b"x" * 200)
    index = index_input(archive)
    assert [unit.relative_folder.name for unit in index.units] == ["patient_0", "patient_1"]
    assert sorted(path.name for path in index.ignored) == [".hidden.npy", "DICOMDIR", "LICENSE"]


@pytest.mark.slow
def test_two_cpu_processes_through_lightning_write_what_one_does(tmp_path):
    archive = _archive(tmp_path / "archive", n_series=3)
    denoise_files([archive], tmp_path / "one", MODEL)
    written = denoise_files(
        [archive], tmp_path / "two", MODEL, devices=2, strategy="ddp_spawn", device="cpu"
    )
    assert len(written) == 3
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")
