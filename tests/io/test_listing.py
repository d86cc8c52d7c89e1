"""A series folder as archives hold it: slices plus licence, citation, README, index, hidden files.

What is not an image is set aside and counted (``CTStack.ignored``, ``meta["ignored"]``), never
fatal; a file that is DICOM by name or content but broken still stops the read (or is skipped
under ``skip_bad``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from lowdose.core.errors import LowdoseInputError
from lowdose.io.images import read_ct, read_image_stack
from lowdose.io.listing import describe_ignored, is_dicom_file, list_image_files

PHILIPS = Path(__file__).resolve().parents[3] / "shared/data/ct/pancreas-ct-philips"
needs_philips = pytest.mark.skipif(not PHILIPS.is_dir(), reason=f"{PHILIPS} not found")
CITATION = "Data Citation\n=============\n\nHong, J. et al. (2021). Breath-hold CT ...\n"


def _archive_extras(folder: Path) -> list[str]:
    """The files an archive puts beside the slices; their names, sorted as listed."""
    (folder / "Citations").write_text(CITATION)
    (folder / "LICENSE").write_text("Creative Commons Attribution 4.0 International\n")
    (folder / "ATTRIBUTION.md").write_text("# Source\n")
    (folder / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")  # an index, not an image
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return [".DS_Store", ".git", "ATTRIBUTION.md", "Citations", "DICOMDIR", "LICENSE"]


def _ct_small_series(folder: Path, n: int = 3, suffix: str = ".dcm") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for k in range(n):
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(k)]
        paths.append(folder / f"IM{k:04d}{suffix}")
        ds.save_as(paths[-1])
    return paths


def test_archive_files_beside_the_slices_are_set_aside_and_counted(tmp_path):
    slices = _ct_small_series(tmp_path, suffix="")  # no suffix, as many archives name them
    names = _archive_extras(tmp_path)
    stack = read_ct(tmp_path)
    assert [s.source for s in stack.slices] == slices
    assert [p.name for p in stack.ignored] == names and stack.skipped == ()
    array, kind, meta = read_image_stack(tmp_path)
    assert kind == "dicom" and array.shape == (3, 128, 128)
    assert [p.name for p in meta["ignored"]] == names
    assert describe_ignored(meta["ignored"]) == (
        "skipped 6 non-image files (.DS_Store, .git, ATTRIBUTION.md, Citations, DICOMDIR, "
        "and 1 more)"
    )


def test_a_broken_dicom_file_still_stops_the_read_unless_skip_bad(tmp_path):
    good = _ct_small_series(tmp_path, n=2, suffix="")
    broken = tmp_path / "IM0009"  # DICOM by content (the 'DICM' marker), cut in its pixels
    broken.write_bytes(good[0].read_bytes()[:20000])
    named = tmp_path / "notes.dcm"  # DICOM by name, text inside
    named.write_text("not an image")
    (tmp_path / "Citations").write_text(CITATION)
    with pytest.raises(LowdoseInputError, match="IM0009: truncated"):
        read_ct(tmp_path)
    stack = read_ct(tmp_path, skip_bad=True)
    assert [s.source for s in stack.slices] == good
    assert sorted(p.name for p, _ in stack.skipped) == ["IM0009", "notes.dcm"]
    assert [p.name for p in stack.ignored] == ["Citations"]


def test_a_dataset_without_preamble_is_dicom_and_is_read(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "OLDEXPORT"
    ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
    (tmp_path / "Citations").write_text(CITATION)
    assert is_dicom_file(path) and not is_dicom_file(tmp_path / "Citations")
    stack = read_ct(tmp_path)
    assert stack.hu.shape == (1, 128, 128) and [p.name for p in stack.ignored] == ["Citations"]
    reference = read_ct(get_testdata_file("CT_small.dcm")).hu
    np.testing.assert_array_equal(stack.hu, reference)


def test_a_licence_beside_npy_files_leaves_an_npy_stack(tmp_path):
    for k in range(2):
        np.save(tmp_path / f"slice{k}.npy", np.full((8, 8), float(k), np.float32))
    (tmp_path / "LICENSE").write_text("CC BY 4.0\n")
    stack = read_ct(tmp_path)
    assert stack.kind == "npy" and stack.hu.shape == (2, 8, 8)
    assert [p.name for p in stack.ignored] == ["LICENSE"]


def test_a_folder_of_no_images_says_what_it_set_aside(tmp_path):
    (tmp_path / "Citations").write_text(CITATION)
    with pytest.raises(LowdoseInputError, match=r"no image files .*1 other files set aside"):
        read_ct(tmp_path)


@needs_philips
def test_the_philips_folder_lists_its_slices_and_sets_its_licence_files_aside():
    files, ignored = list_image_files(PHILIPS)
    assert len(files) == 134 and all(p.suffix == ".dcm" for p in files)
    assert [p.name for p in ignored] == ["ATTRIBUTION.md", "Citations", "LICENSE"]


@needs_philips
def test_philips_slices_with_their_citations_file_read_as_one_series(tmp_path):
    for name in ("1-001.dcm", "1-002.dcm", "1-003.dcm", "Citations", "LICENSE"):
        (tmp_path / name).symlink_to(PHILIPS / name)
    array, kind, meta = read_image_stack(tmp_path)
    assert kind == "dicom" and array.shape == (3, 512, 512)
    assert len({s.series_uid for s in meta["slices"]}) == 1
    assert describe_ignored(meta["ignored"]) == "skipped 2 non-image files (Citations, LICENSE)"
