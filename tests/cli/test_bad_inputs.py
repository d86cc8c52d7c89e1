"""Every bad input is one error line naming the file or option and the fix; nothing is written.

Each row runs the real command line (in this process: typer's ``CliRunner`` on ``lowdose.cli.app``;
a few also as a subprocess, where a traceback would really be printed) with one bad input swapped
into otherwise valid ones, and checks: a non-zero exit, no exception escaping the command, no
"Traceback", exactly one ``error:`` line that names the culprit and the fix, and nothing (no
partial file, no temporary file) left at the output path.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_inputs import CliInputs, build_cli_inputs, run_cli

LOWDOSE = Path(sys.executable).with_name("lowdose")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> CliInputs:
    return build_cli_inputs(tmp_path_factory.mktemp("inputs"))


def assert_one_error_line(result, *, names: list[str], code: int = 1) -> str:
    """The checks every row shares; returns the error line."""
    assert result.exit_code == code, result.output
    # CliRunner keeps an escaping exception (and its traceback) out of result.output: check it.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


def assert_nothing_written(out: Path) -> None:
    """No file (partial, temporary or complete) at ``out`` or anywhere under it."""
    if out.is_dir():
        assert [p for p in out.rglob("*") if not p.is_dir()] == []
    else:
        assert not out.exists()


# --- checkpoints ---------------------------------------------------------------------------


def _corrupt(inputs: CliInputs, path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _truncated(inputs: CliInputs, path: Path) -> None:
    real = inputs.checkpoint.read_bytes()
    path.write_bytes(real[: len(real) // 2])


def _empty(inputs: CliInputs, path: Path) -> None:
    path.write_bytes(b"")


def _plain_dict(inputs: CliInputs, path: Path) -> None:
    torch.save({"epoch": 3, "note": "not a lowdose checkpoint"}, path)


def _other_network(inputs: CliInputs, path: Path) -> None:
    torch.save(torch.nn.Conv2d(1, 4, 3).state_dict(), path)


def _mismatched_unet(inputs: CliInputs, path: Path) -> None:
    # A real Lightning checkpoint whose hyper-parameters name a wider U-Net than its weights.
    checkpoint = torch.load(inputs.checkpoint, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["model"]["width"] *= 2
    torch.save(checkpoint, path)


def _folder_without_best(inputs: CliInputs, path: Path) -> None:
    path.mkdir()
    (path / "last.txt").write_text("a run folder that never finished\n")


CHECKPOINTS = {
    "corrupt-bytes": _corrupt,
    "truncated-real": _truncated,
    "empty-file": _empty,
    "plain-dict": _plain_dict,
    "other-network-state-dict": _other_network,
    "lightning-unet-shape-mismatch": _mismatched_unet,
    "folder-without-best-ckpt": _folder_without_best,
}


def _denoise_args(inputs: CliInputs, model: Path, out: Path) -> list:
    return ["denoise", inputs.image, "--model", model, "--out", out]


def _evaluate_args(inputs: CliInputs, model: Path, out: Path) -> list:
    return ["evaluate", "--data", inputs.dataset, "--model", model, "--filters", "", "--out", out]


@pytest.mark.parametrize("command", [_denoise_args, _evaluate_args], ids=["denoise", "evaluate"])
@pytest.mark.parametrize("make", CHECKPOINTS.values(), ids=CHECKPOINTS.keys())
def test_a_bad_checkpoint_is_one_line_naming_it(inputs, tmp_path, make, command):
    model = tmp_path / ("run" if make is _folder_without_best else "model.ckpt")
    make(inputs, model)
    out = tmp_path / "out"
    result = run_cli(command(inputs, model, out))
    assert_one_error_line(result, names=[str(model), "RUN_DIR/best.ckpt"])
    assert_nothing_written(out)


def test_a_corrupt_checkpoint_prints_no_traceback_outside_the_test_runner(inputs, tmp_path):
    model = tmp_path / "model.ckpt"
    _corrupt(inputs, model)
    out = tmp_path / "out"
    args = [LOWDOSE, "export", "--model", model, "--out", out / "m.onnx"]
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == [
        f"error: {model}: not a readable lowdose checkpoint (corrupt bytes, or objects other than "
        "tensors and plain values): pass RUN_DIR/best.ckpt of a lowdose training"
    ]
    assert_nothing_written(out)


# --- output locations that cannot be written -------------------------------------------------


def _simulate(inputs: CliInputs, out: Path) -> list:
    return ["simulate", "xray", "--phantoms", 3, "--angles", 2, "--size", 32, "--out", out]


def _from_repeats(inputs: CliInputs, out: Path) -> list:
    return ["dataset", "from-repeats", *inputs.repeats, "--objects", "image", "--out", out]


def _train(inputs: CliInputs, out: Path) -> list:
    tiny = ["--epochs", 1, "--width", 4, "--patch", 32, "--batch-size", 2]
    return [
        "train",
        "--data",
        inputs.dataset,
        "--out",
        out,
        *tiny,
        "--samples-per-epoch",
        4,
        "--threads",
        1,
        "--quiet",
    ]


def _evaluate(inputs: CliInputs, out: Path) -> list:
    return [
        "evaluate",
        "--data",
        inputs.dataset,
        "--filters",
        "gaussian",
        "--tuning",
        "blind",
        "--out",
        out,
    ]


def _denoise(inputs: CliInputs, out: Path) -> list:
    return ["denoise", inputs.image, "--model", inputs.checkpoint, "--out", out]


def _report(inputs: CliInputs, out: Path) -> list:
    return ["report", inputs.experiment, "--out", out]


WRITERS = {
    "simulate": (_simulate, "x.h5"),
    "dataset-from-repeats": (_from_repeats, "repeats.h5"),
    "train": (_train, "run"),
    "evaluate": (_evaluate, "results"),
    "denoise": (_denoise, "denoised"),
    "report": (_report, "report"),
}


@pytest.fixture
def read_only_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)  # so pytest can clean up


@pytest.mark.parametrize(("command", "name"), WRITERS.values(), ids=WRITERS.keys())
def test_a_read_only_folder_is_one_line_naming_the_output(inputs, read_only_folder, command, name):
    out = read_only_folder / name
    result = run_cli(command(inputs, out))
    assert_one_error_line(result, names=[str(read_only_folder), "read-only", "--out"])
    assert list(read_only_folder.iterdir()) == []


@pytest.mark.parametrize(("command", "name"), WRITERS.values(), ids=WRITERS.keys())
def test_a_path_under_proc_is_one_line_naming_the_output(inputs, command, name):
    out = Path("/proc/lowdose-test") / name
    result = run_cli(command(inputs, out))
    assert_one_error_line(result, names=["/proc/lowdose-test", "read-only", "--out"])
    assert not Path("/proc/lowdose-test").exists()


# --- a disk that fills up while a file is written ---------------------------------------------


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fill_after(real: Callable, calls_allowed: int) -> Callable:
    """``real``, until the disk is full: later calls raise ENOSPC."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) > calls_allowed:
            raise _disk_full()
        return real(*args, **kwargs)

    return fake


def _half_then_full(write_bytes: Callable[[object, bytes], None]) -> Callable:
    """A writer that gets half of its bytes onto the disk, then finds it full."""

    def fake(target, data: bytes) -> None:
        write_bytes(target, data[: len(data) // 2])
        raise _disk_full()

    return fake


def _fill_hdf5_after(blocks: int) -> Callable:
    """A filler for dataset files: ``blocks`` image writes reach the file, the next fails."""

    def fill(monkeypatch) -> None:
        import h5py

        real = h5py.Dataset.__setitem__
        monkeypatch.setattr(h5py.Dataset, "__setitem__", _fill_after(real, blocks))

    return fill


def _fill_torch_save(monkeypatch) -> None:
    def write(target, data: bytes) -> None:
        Path(target).write_bytes(data)

    half = _half_then_full(write)

    def save(obj, target, *args, **kwargs) -> None:
        buffer = io.BytesIO()
        real_save(obj, buffer)
        half(target, buffer.getvalue())

    real_save = torch.save
    monkeypatch.setattr(torch, "save", save)


def _fill_to_csv(monkeypatch) -> None:
    import pandas as pd

    def to_csv(frame, target, *args, **kwargs) -> None:
        half = _half_then_full(lambda t, data: Path(t).write_text(data.decode()))
        half(target, frame.to_string().encode())

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)


def _fill_np_save(monkeypatch) -> None:
    real_save = np.save

    def save(target, array, *args, **kwargs) -> None:
        buffer = io.BytesIO()
        real_save(buffer, array)
        _half_then_full(lambda handle, data: handle.write(data))(target, buffer.getvalue())

    monkeypatch.setattr(np, "save", save)


def _fill_write_bytes(monkeypatch) -> None:
    real = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", _half_then_full(real))


DISK_FILLERS = {
    "simulate": (_simulate, "x.h5", _fill_hdf5_after(2)),  # of 3 phantoms' noisy + clean
    "dataset-from-repeats": (_from_repeats, "repeats.h5", _fill_hdf5_after(0)),  # one block
    "train": (_train, "run", _fill_torch_save),
    "evaluate": (_evaluate, "results", _fill_to_csv),
    "denoise": (_denoise, "denoised", _fill_np_save),
    "report": (_report, "report", _fill_write_bytes),
}


@pytest.mark.parametrize(
    ("command", "name", "fill"), DISK_FILLERS.values(), ids=DISK_FILLERS.keys()
)
def test_a_disk_that_fills_during_a_write_leaves_no_partial_file(
    inputs, tmp_path, monkeypatch, command, name, fill
):
    out = tmp_path / "outputs" / name
    args = command(inputs, out)
    fill(monkeypatch)
    result = run_cli(args)
    monkeypatch.undo()
    assert_one_error_line(result, names=["disk full", str(tmp_path / "outputs")], code=2)
    leftovers = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert [p for p in leftovers if p.name.startswith(".")] == []  # no temporary file
    if name == "run":  # a run folder keeps what was complete before the disk filled
        assert {p.name for p in leftovers} <= {"config.yaml", "metrics.csv"}
    else:
        assert leftovers == []


# --- numbers that must be positive ------------------------------------------------------------

SIMULATE = ["simulate", "xray", "--phantoms", 3, "--angles", 2, "--size", 32]
NUMBERS = {
    "photons-zero": ([*SIMULATE, "--photons", 0], "--photons 0"),
    "photons-negative": ([*SIMULATE, "--photons", -5], "--photons -5"),
    "photons-nan": ([*SIMULATE, "--photons", "nan"], "--photons nan"),
    "target-psnr-zero": ([*SIMULATE, "--target-psnr", 0], "--target-psnr 0"),
    "target-psnr-negative": ([*SIMULATE, "--target-psnr", -3], "--target-psnr -3"),
    "size-zero": ([*SIMULATE[:-2], "--size", 0], "--size 0"),
    "realisations-zero": ([*SIMULATE, "--realisations", 0], "--realisations 0"),
    "phantoms-negative": (["simulate", "xray", "--phantoms", -1], "--phantoms -1"),
    "evaluate-workers-zero": (["evaluate", "--data", "d.h5", "--workers", 0], "--workers 0"),
    "reproduce-seeds-zero": (["reproduce", "xray", "--seeds", 0], "--seeds 0"),
    "sweep-levels-zero": (
        ["sweep", "--data", "d.h5", "--model", "m", "--levels", 0],
        "--levels 0",
    ),
}


@pytest.mark.parametrize(("args", "names"), NUMBERS.values(), ids=NUMBERS.keys())
def test_a_number_out_of_range_is_one_line_naming_the_option(tmp_path, args, names):
    out = tmp_path / "out"
    result = run_cli([*args, "--out", out])
    assert_one_error_line(result, names=[names, "> 0"])
    assert_nothing_written(out)


def test_zero_photons_print_one_line_outside_the_test_runner(tmp_path):
    out = tmp_path / "x.h5"
    args = [LOWDOSE, *SIMULATE, "--photons", 0, "--out", out]
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: --photons 0: pass a number > 0\n"
    assert not out.exists()


# --- users' own data --------------------------------------------------------------------------


def _mixed_size_series(folder: Path) -> Path:
    """A DICOM folder of one series whose slices have two sizes (a broken export). Two series
    of two sizes in one folder are two units for ``denoise``, each written alike."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    series_uid = generate_uid()
    for k, side in enumerate((64, 64, 96)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
            CTImageStorage,
            generate_uid(),
        )
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.SeriesInstanceUID = "CT", "P1", series_uid
        ds.InstanceNumber, ds.ImagePositionPatient = k + 1, [0.0, 0.0, 2.0 * k]
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.full((side, side), 1000, np.int16).tobytes()
        ds.save_as(folder / f"s{k}.dcm", enforce_file_format=True)
    return folder


OWN_DATA = {
    "denoise-mixed-sizes": (["denoise", "--model", "{checkpoint}", "{mixed}"], ["64x64", "96x96"]),
    "from-single-mixed-sizes": (["dataset", "from-single", "{mixed}"], ["64x64", "96x96"]),
    "fit-mixed-sizes": (["fit", "{mixed}"], ["64x64", "96x96"]),
    "fit-missing-input": (["fit", "{missing}"], ["nothing.npy"]),
    "fit-n2n-from-one-input": (["fit", "{image}", "--mode", "n2n"], ["--mode n2n", "nb2nb"]),
    "fit-bad-budget": (["fit", "{image}", "--budget", "ten minutes"], ["--budget", "00:05:00"]),
    "fit-angles-on-images": (["fit", "{mixed}", "--angles", "0:180"], ["--angles", "sinogram"]),
}


@pytest.mark.parametrize(("args", "names"), OWN_DATA.values(), ids=OWN_DATA.keys())
def test_bad_own_data_is_one_line_naming_it(inputs, tmp_path, args, names):
    places = {
        "checkpoint": inputs.checkpoint,
        "image": inputs.image,
        "mixed": _mixed_size_series(tmp_path / "mixed"),
        "missing": tmp_path / "nothing.npy",
    }
    out = tmp_path / "out"
    result = run_cli([str(a).format(**places) for a in args] + ["--out", out])
    assert_one_error_line(result, names=names)
    assert_nothing_written(out)
