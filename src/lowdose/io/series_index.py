"""What a folder of images holds, from file names and DICOM headers only: the work of one input.

An archive folder (``ARCHIVE/patient/study/series/*.dcm`` with licence files, ``DICOMDIR`` and
README files beside the slices) is listed without decoding a pixel: every DICOM file's header is
read up to the tags that group it (pydicom ``stop_before_pixels``), so an index of a thousand
series costs milliseconds per file and no image memory. :func:`index_input` turns one input path
into :class:`SeriesFiles` entries, each read and written later as one unit:

- a **DICOM** series: the files of one ``SeriesInstanceUID`` within one folder (files whose UID is
  empty, as anonymisers leave it, are one series per folder);
- any **other image file** (NIfTI, TIFF, PNG, ``.npy``): one entry per file.

Entries that are not images (:func:`lowdose.io.listing.list_image_files`: hidden files,
``DICOMDIR``, documentation, files that are not DICOM by content) are listed in
:attr:`InputIndex.ignored`, never fatal: the caller says how many in one line. A file that is DICOM
by name or content but broken is left in its series, where reading it gives its own one-line
error (or is skipped under ``skip_bad``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lowdose.io.listing import list_image_files

_OTHER_KINDS = (".nii", ".nii.gz", ".tif", ".tiff", ".png", ".npy")
_GROUPING_TAGS = ("SeriesInstanceUID", "Modality")


@dataclass(frozen=True)
class SeriesFiles:
    """One unit of work: the files read, denoised and written together.

    Attributes
    ----------
    input_path : Path
        The input as the user named it (a file or a folder).
    relative_folder : Path
        The series' folder relative to ``input_path`` (``Path(".")`` for a file input or files
        directly in the folder); outputs mirror it under the output folder.
    files : tuple of Path
        The unit's files, sorted by name.
    series_uid : str
        DICOM ``SeriesInstanceUID`` ("" when empty or not DICOM).
    is_dicom : bool
        True for a DICOM series.
    """

    input_path: Path
    relative_folder: Path
    files: tuple[Path, ...]
    series_uid: str
    is_dicom: bool

    @property
    def key(self) -> str:
        """A name for the unit, the same in every job given the same inputs."""
        name = self.relative_folder.as_posix()
        if not self.is_dicom:
            name = f"{name}/{self.files[0].name}"
        return f"{self.input_path.as_posix()}::{name}::{self.series_uid}"


@dataclass(frozen=True)
class InputIndex:
    """The units of one input and the files it set aside (not images)."""

    units: tuple[SeriesFiles, ...]
    ignored: tuple[Path, ...]


def index_input(path: str | os.PathLike) -> InputIndex:
    """List the series and image files under ``path`` without reading pixels.

    Parameters
    ----------
    path : str or PathLike
        An image file, a DICOM file, or a folder (searched recursively; hidden entries skipped).

    Returns
    -------
    InputIndex
        Units in a fixed order (by folder, then series UID or file name).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file():
        unit = SeriesFiles(root, Path("."), (root,), "", not _is_other_image(root))
        return InputIndex((unit,), ())
    series: dict[tuple[Path, str], list[Path]] = {}
    units: list[SeriesFiles] = []
    image_files, ignored = list_image_files(root)
    for file in image_files:
        folder = file.parent.relative_to(root)
        if _is_other_image(file):
            units.append(SeriesFiles(root, folder, (file,), "", False))
            continue
        uid = str(_dicom_header(file).get("SeriesInstanceUID", "") or "").strip()
        series.setdefault((folder, uid), []).append(file)
    for (folder, uid), files in series.items():
        units.append(SeriesFiles(root, folder, tuple(sorted(files)), uid, True))
    units.sort(
        key=lambda unit: (unit.relative_folder.as_posix(), unit.series_uid, unit.files[0].name)
    )
    return InputIndex(tuple(units), tuple(ignored))


def _is_other_image(file: Path) -> bool:
    return file.name.lower().endswith(_OTHER_KINDS)


def _dicom_header(file: Path):
    """The grouping tags of a file :func:`lowdose.io.listing.list_image_files` took for DICOM;
    an empty mapping when its header is broken (reading it later names the error)."""
    import pydicom

    try:
        return pydicom.dcmread(
            file, stop_before_pixels=True, specific_tags=list(_GROUPING_TAGS), force=True
        )
    except Exception:
        return {}
