"""The error boundary of every command, and the atomic writes it relies on to leave nothing.

``user_errors`` turns bad input and OS errors into one line; ``core.atomic.atomic_path`` (the
writer under every output file) leaves no temporary file or empty folder when a write fails and
names the output, not its temporary file, in the error.
"""

from __future__ import annotations

import errno
import io
import os

import pytest
import typer
from rich.console import Console

import lowdose.cli._app as cli_app
from lowdose.cli._app import check_out_writable, os_error_line, user_errors
from lowdose.core.atomic import atomic_path, atomic_write_bytes
from lowdose.core.errors import LowdoseInputError


@pytest.fixture
def screen(monkeypatch):
    """The command line's console, printing into a string, 40 columns wide."""
    text = io.StringIO()
    monkeypatch.setattr(cli_app, "console", Console(file=text, width=40, force_terminal=False))
    return text


def test_an_error_is_one_line_whatever_its_text_and_the_width(screen):
    message = "a [bold]bracketed[/bold] value\nand a second line of a message far wider than 40"
    with pytest.raises(typer.Exit) as exit_, user_errors():
        raise LowdoseInputError(message)
    assert exit_.value.exit_code == 1
    assert screen.getvalue() == (
        "error: a [bold]bracketed[/bold] value and a second line of a message far wider than 40\n"
    )


def test_other_exceptions_are_not_hidden(screen):
    with pytest.raises(ZeroDivisionError), user_errors():
        raise ZeroDivisionError("a bug keeps its traceback")
    assert screen.getvalue() == ""


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/out.h5"),
            "disk full while writing /data/out.h5: free space or choose another --out; "
            "nothing partial was kept",
            2,
        ),
        (
            OSError(errno.ENOENT, "No such file or directory", "/proc/lowdose-test"),
            "cannot write /proc/lowdose-test: read-only location; choose another --out",
            1,
        ),
        (
            OSError(errno.EPERM, "Operation not permitted", "/sys/lowdose-test"),
            "cannot write /sys/lowdose-test: read-only location; choose another --out",
            1,
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/mnt/cd/.out.h5.x1y2.tmp"),
            "cannot write /mnt/cd: read-only location; choose another --out",  # its folder
            1,
        ),
        (
            # a rename names both files: the second is the output
            OSError(errno.EACCES, "Permission denied", "/r/.a.tmp", None, "/r/a.h5"),
            "cannot write /r/a.h5: read-only location; choose another --out",
            1,
        ),
        (
            # a missing input, also in a folder the user may not write to, is just missing
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/usr/share/in.h5"),
            "/usr/share/in.h5: no such file or folder; check the path",
            1,
        ),
        (OSError(errno.EISDIR, "Is a directory", "/tmp"), "/tmp: Is a directory", 1),
    ],
)
def test_os_errors_become_one_line_naming_the_path(error, line, code):
    assert os_error_line(error) == (line, code)


def test_a_missing_input_is_not_called_a_read_only_output(tmp_path):
    error = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "in.h5"))
    assert os_error_line(error) == (
        f"{tmp_path / 'in.h5'}: no such file or folder; check the path",
        1,
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_input_is_called_unreadable(tmp_path):
    path = tmp_path / "in.h5"
    path.write_bytes(b"x")
    path.chmod(0)
    error = PermissionError(errno.EACCES, "Permission denied", str(path))
    assert os_error_line(error)[0].startswith(f"cannot read {path}: permission denied")


def test_an_output_location_is_probed_before_the_work_and_left_clean(tmp_path):
    check_out_writable(tmp_path / "new" / "deeper" / "out.h5")  # folders to be made: fine
    check_out_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe is gone, no folder was made
    with pytest.raises(LowdoseInputError, match=r"^cannot write /proc/x/y: read-only location"):
        check_out_writable("/proc/x/y")
    (tmp_path / "file").write_text("")
    with pytest.raises(LowdoseInputError, match="choose another --report-dir$"):
        check_out_writable(tmp_path / "file" / "below", option="--report-dir")


# --- atomic writes -----------------------------------------------------------------------------


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_leaves_no_temporary_file_and_names_the_output(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.h5"
    with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
        tmp.write_bytes(b"half of it")
        tmp.with_name(tmp.name + ".nii.gz").write_bytes(b"staged by a writer")
        raise _disk_full()
    assert caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # also the two folders it made


def test_a_failed_write_keeps_the_previous_file_and_other_files(tmp_path):
    (tmp_path / "other.txt").write_text("someone else's")
    atomic_write_bytes(tmp_path / "out.bin", b"old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"new, never finished")
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "out.bin"]
    assert (tmp_path / "out.bin").read_bytes() == b"old"


def test_an_error_that_names_another_file_keeps_its_name(tmp_path):
    source = tmp_path / "input.npy"
    with pytest.raises(FileNotFoundError) as caught, atomic_path(tmp_path / "out.npy"):
        source.read_bytes()  # an input the writer reads fails: the error is about the input
    assert caught.value.filename == str(source)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made_is_the_error_and_nothing_is_left(tmp_path):
    with pytest.raises(FileNotFoundError) as caught, atomic_path("/proc/lowdose-test/out.h5"):
        pass
    assert caught.value.filename == "/proc/lowdose-test"
    assert os_error_line(caught.value)[0].startswith("cannot write /proc/lowdose-test:")


def test_a_successful_write_has_the_plain_file_mode(tmp_path):
    atomic_write_bytes(tmp_path / "sub" / "out.bin", b"data")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "sub" / "out.bin").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.bin"]


def test_a_path_with_no_errno_error_is_left_alone(tmp_path):
    # h5py and others raise OSError without errno: nothing to name, nothing to change
    with pytest.raises(OSError) as caught, atomic_path(tmp_path / "out.h5"):
        raise OSError("Unable to synchronously create file")
    assert caught.value.filename is None
    assert os_error_line(caught.value) == ("Unable to synchronously create file", 1)
    assert list(tmp_path.iterdir()) == []
