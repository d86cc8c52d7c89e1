"""Who a written DICOM file is: its UIDs, series number, and the links to the slice it came from.

A PACS files an image by its UIDs; a viewer groups by ``SeriesInstanceUID`` and shows
``SeriesNumber``. :func:`set_derived_identity` gives each output file of
:func:`lowdose.io.dicom_write.write_dicom_like`:

- **one output series per input series**: the input's ``SeriesInstanceUID``, or, where it is empty
  or missing (anonymised exports), the source file's folder and its ``SeriesNumber``;
- **deterministic UIDs** (pydicom ``generate_uid(entropy_srcs=...)``: a SHA-512 of the sources
  under pydicom's root): ``SeriesInstanceUID`` from (input series, ``derivation``);
  ``SOPInstanceUID`` from (source ``SOPInstanceUID``, or the source file's path where it has
  none; the output file's name; ``derivation``). Two shards of one job, or a resumed run, give
  the files one uninterrupted run gives; another model or ``--tta`` (another ``derivation``
  text) gives another series. An empty ``StudyInstanceUID`` gets one the same way from the input
  series (without ``derivation``: every derived series of one input shares it); so does an
  empty ``FrameOfReferenceUID``;
- ``SeriesNumber`` = the source's + :data:`SERIES_NUMBER_OFFSET` (the offset alone without one);
- ``SourceImageSequence``: one item naming the source SOP instance (``ReferencedSOPClassUID``,
  ``ReferencedSOPInstanceUID``, purpose DCM 121322 "Source image for image processing
  operation", CID 7202). A source without ``SOPInstanceUID`` (neither in the dataset nor the file
  meta) gets no item, and the file no ``SourceImageSequence``: the scanner's own list named the
  source's sources, not this file's. ``ReferencedImageSequence`` (localizers) stays, less any
  item naming the source instance itself;
- ``DerivationCodeSequence``: DCM 113087 "Smoothing", the noise-reduction concept of CID 7203
  "Image Derivation" (which has no narrower code for denoising);
- ``SoftwareVersions``: the scanner's values with "lowdose <version>" appended.

No date or time is written: the bytes of a file depend on its source and ``derivation`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lowdose import __version__

if TYPE_CHECKING:  # pydicom costs ~0.4 s: imported where a file is read or written
    import pydicom

SERIES_NUMBER_OFFSET = 1000
_IS_MAX = 2**31 - 1  # IS (integer string) holds a signed 32-bit value
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# (code value, scheme, meaning): pydicom.sr.codedict.codes.DCM.Smoothing (CID 7203) and
# .SourceImageForImageProcessingOperation (CID 7202); a test pins them to pydicom's tables
DERIVATION_CODE = ("113087", "DCM", "Smoothing")
PURPOSE_CODE = ("121322", "DCM", "Source image for image processing operation")


@dataclass(frozen=True)
class SourceIdentity:
    """Where one output file's pixels came from.

    Attributes
    ----------
    series_key : str
        ``uid:<SeriesInstanceUID>``, else ``folder:<resolved folder>#<SeriesNumber>``.
    study_key : str
        The input series UID, else the resolved folder: names a missing study.
    instance_key : str
        ``uid:<SOPInstanceUID>``, else ``file:<resolved folder>/<file name>``, else "" (a
        template read from no file).
    sop_class_uid, sop_instance_uid : str
        The source's SOP class (by modality where it names none) and instance ("" when none).
    """

    series_key: str
    study_key: str
    instance_key: str
    sop_class_uid: str
    sop_instance_uid: str


def source_identity(template: pydicom.Dataset) -> SourceIdentity:
    """The identity of the source file behind ``template`` (a header as read)."""
    meta = getattr(template, "file_meta", {})
    sop_class = str(template.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if not sop_class:
        is_ct = str(template.get("Modality", "")) == "CT"
        sop_class = CT_IMAGE_STORAGE if is_ct else SECONDARY_CAPTURE
    sop = str(template.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or "")
    filename = str(getattr(template, "filename", "") or "")
    folder = str(Path(filename).parent.resolve()) if filename else ""
    series_uid = str(template.get("SeriesInstanceUID", "") or "").strip()
    if series_uid:
        series_key = f"uid:{series_uid}"
    else:
        series_key = f"folder:{folder}#{_series_number(template)}"
    if sop:
        instance_key = f"uid:{sop.strip()}"
    else:  # the folder resolved as for the series, a linked file keeps its own name
        instance_key = f"file:{folder}/{Path(filename).name}" if filename else ""
    return SourceIdentity(series_key, series_uid or folder, instance_key, sop_class, sop.strip())


def derived_uid(*sources: str) -> str:
    """A UID under pydicom's root, the same for the same ``sources`` (joined by newlines)."""
    import pydicom.uid

    return str(pydicom.uid.generate_uid(entropy_srcs=["\n".join(sources)]))


def set_derived_identity(
    ds: pydicom.Dataset, template: pydicom.Dataset, *, derivation: str, file_name: str
) -> None:
    """Give ``ds`` (a copy of ``template``) the identity of a derived image, in place.

    ``file_name`` (the output file's name, unique in its folder) joins the source in the new
    ``SOPInstanceUID``: two files of one input carrying one ``SOPInstanceUID`` (copies, as in
    some redistributed sets), or one template written twice, stay two instances.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    source = source_identity(template)
    ds.SOPClassUID = source.sop_class_uid
    ds.SOPInstanceUID = derived_uid("lowdose instance", derivation, source.instance_key, file_name)
    ds.SeriesInstanceUID = derived_uid("lowdose series", derivation, source.series_key)
    if not str(template.get("StudyInstanceUID", "") or "").strip():
        ds.StudyInstanceUID = derived_uid("lowdose study", source.study_key)
    if "FrameOfReferenceUID" in template and not str(template.FrameOfReferenceUID).strip():
        ds.FrameOfReferenceUID = derived_uid("lowdose frame of reference", source.study_key)
    ds.SeriesNumber = derived_series_number(template)
    if "SourceImageSequence" in ds:
        del ds.SourceImageSequence
    if source.sop_instance_uid:
        item = Dataset()
        item.ReferencedSOPClassUID = source.sop_class_uid
        item.ReferencedSOPInstanceUID = source.sop_instance_uid
        item.PurposeOfReferenceCodeSequence = Sequence([_code(PURPOSE_CODE)])
        ds.SourceImageSequence = Sequence([item])
    _drop_references_to(ds, source.sop_instance_uid)
    ds.DerivationCodeSequence = Sequence([_code(DERIVATION_CODE)])
    ds.SoftwareVersions = software_versions(template)


def derived_series_number(template: pydicom.Dataset) -> int:
    """The source's ``SeriesNumber`` + :data:`SERIES_NUMBER_OFFSET`, or the offset alone where
    it is missing, not a number, or the sum would not fit an IS (signed 32 bits).

    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.SeriesNumber = "000005"
    >>> derived_series_number(ds), derived_series_number(Dataset())
    (1005, 1000)
    """
    number = _series_number(template)
    total = (number or 0) + SERIES_NUMBER_OFFSET
    return total if abs(total) <= _IS_MAX else SERIES_NUMBER_OFFSET


def software_versions(template: pydicom.Dataset) -> list[str]:
    """The scanner's ``SoftwareVersions`` values (LO, multi-valued) and "lowdose <version>"."""
    values = template.get("SoftwareVersions") or []
    values = [values] if isinstance(values, str) else [str(v) for v in values]
    ours = f"lowdose {__version__}"
    return [*(v for v in values if v and v != ours), ours]


def _series_number(template: pydicom.Dataset) -> int | None:
    try:
        return int(template.get("SeriesNumber"))
    except (TypeError, ValueError):
        return None


def _drop_references_to(ds: pydicom.Dataset, sop_instance_uid: str) -> None:
    """Remove ``ReferencedImageSequence`` items naming the source instance (they would claim a
    link that ``SourceImageSequence`` states); items naming other images (localizers) stay."""
    if "ReferencedImageSequence" not in ds or not sop_instance_uid:
        return
    kept = [
        item
        for item in ds.ReferencedImageSequence
        if str(item.get("ReferencedSOPInstanceUID", "")) != sop_instance_uid
    ]
    if kept:
        ds.ReferencedImageSequence = kept
    else:
        del ds.ReferencedImageSequence


def _code(code: tuple[str, str, str]) -> pydicom.Dataset:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item
