"""What a folder of images holds: the image files, and the files set aside as not images.

Archives hold more than slices in a series folder: licence and citation files without a suffix
(``LICENSE``, ``Citations``), ``README`` or ``ATTRIBUTION.md``, ``DICOMDIR`` (an index, not an
image), hidden files (``.DS_Store``). :func:`list_image_files` sets these aside, never fatally:

- hidden files and folders (a hidden folder is listed once, not descended), ``DICOMDIR``;
- documentation by suffix (``.md``, ``.txt``, ``.json``, ``.csv``, ``.pdf``, ...);
- any other file without an image suffix that is not DICOM by content (:func:`is_dicom_file`:
  no 'DICM' marker after the 128-byte preamble and no start of a DICOM dataset): text, archives,
  other binary formats.

A file named as DICOM (``.dcm``, ``.dicom``, ``.dic``, ``.ima``) or passing :func:`is_dicom_file`
is an image file even when broken: reading it names its error (or ``skip_bad`` skips it). NIfTI,
TIFF, PNG and ``.npy`` files are image files by suffix.

>>> describe_ignored([Path("LICENSE"), Path("Citations"), Path("ATTRIBUTION.md")])
'skipped 3 non-image files (LICENSE, Citations, ATTRIBUTION.md)'
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

_DOCUMENT_SUFFIXES = {
    ".md",
    ".txt",
    ".json",
    ".csv",
    ".html",
    ".pdf",
    ".xml",
    ".yaml",
    ".yml",
    ".log",
    ".rst",
}
_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}
_OTHER_IMAGE_ENDINGS = (".nii", ".nii.gz", ".tif", ".tiff", ".png", ".npy")
# The groups a DICOM dataset without preamble starts with: file meta, else identification.
_FIRST_GROUPS = (0x0002, 0x0008)


def list_image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files under ``folder`` (recursively) and the entries set aside.

    Parameters
    ----------
    folder : Path
        An existing folder.

    Returns
    -------
    files : list of Path
        Candidate image files, sorted by path.
    ignored : list of Path
        Files (and hidden folders) that are not images, sorted by path.
    """
    files, ignored = [], []
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        ignored += [here / d for d in dirs if d.startswith(".")]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            path = here / name
            if path.is_file():  # a broken link is neither
                (files if _is_image_file(path) else ignored).append(path)
    return sorted(files), sorted(ignored)


def describe_ignored(ignored: Sequence[Path], *, shown: int = 5) -> str:
    """One line for people: how many entries were set aside, the first ``shown`` by name."""
    names = [Path(p).name for p in ignored]
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    noun = "file" if len(names) == 1 else "files"
    return f"skipped {len(names)} non-image {noun} ({', '.join(names[:shown])}{more})"


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` holds DICOM by its first 132 bytes: the 'DICM' marker at byte 128, or a
    dataset without preamble (:func:`is_dataset_without_preamble`). False for text, other
    binary formats and unreadable files."""
    head = _head(path)
    return head[128:132] == b"DICM" or _starts_like_a_dataset(head)


def is_dataset_without_preamble(path: Path) -> bool:
    """Whether ``path`` starts with a DICOM data element (no preamble, no 'DICM'): group 0002
    or 0008, an element number below 0x0100, and an explicit VR (two capital letters) or an
    implicit value length below 64 KiB, as old exports write them."""
    return _starts_like_a_dataset(_head(path))


def _is_image_file(path: Path) -> bool:
    name = path.name.lower()
    if name.startswith(".") or name == "dicomdir" or path.suffix.lower() in _DOCUMENT_SUFFIXES:
        return False
    if name.endswith(_OTHER_IMAGE_ENDINGS) or path.suffix.lower() in _DICOM_SUFFIXES:
        return True
    return is_dicom_file(path)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read(132)
    except OSError:
        return b""


def _starts_like_a_dataset(head: bytes) -> bool:
    if len(head) < 8 or head[128:132] == b"DICM":
        return False
    group, element = struct.unpack("<HH", head[:4])
    if group not in _FIRST_GROUPS or element >= 0x0100:
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():  # explicit VR
        return True
    (length,) = struct.unpack("<I", head[4:8])  # implicit VR: the value's length
    return length < 1 << 16
