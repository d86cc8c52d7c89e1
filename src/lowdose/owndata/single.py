"""Datasets from one noisy acquisition: no second realisation, no clean image.

The data of single-acquisition training (Neighbor2Neighbor, Noise2Void): ``noisy`` (I, 1, H, W)
and no ``clean``. Each input is read as :func:`lowdose.owndata.repeats.build_from_repeats` reads
one (:func:`lowdose.owndata.acquisitions.read_acquisition`: a DICOM file or folder, a TIFF or
``.npy`` stack, a PNG or TIFF 2-D image); several inputs are stacked (one image size, one kind).

Scaling is from-repeats' (:func:`lowdose.owndata.repeats.scale_measured` with N = 1): DICOM
``(HU + 1024) / divisor`` with the padding outside the field of view set to -1024 HU (and kept as
``fov``), other formats ``value / divisor``; the divisor is the largest maximum of the
Gaussian-smoothed (sigma 2 px) image itself.

The split is :func:`lowdose.data.split_plan.plan_split` (``split_by``, ``auto`` by default): one
patient's series is cut into slabs of slices, one 2-D image into tiles.

Noise level, from each image alone:
:func:`lowdose.physics.noise_estimation.single_image_noise_sigma` (Immerkaer's estimator made
robust). Spatially correlated noise (CT reconstructions) reads low there (the noise correlation is
recorded beside it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, split_write_and_summarise
from lowdose.data.scaling import HU_OFFSET
from lowdose.data.split_plan import plan_split
from lowdose.owndata.acquisitions import Acquisition, read_acquisition
from lowdose.owndata.repeats import check_kinds, scale_measured
from lowdose.physics.noise_estimation import SINGLE_IMAGE_SIGMA_RULE, single_image_noise_sigma


@dataclass(frozen=True)
class SingleImageNoise:
    """The noise SD that each image shows alone (Immerkaer's estimator): pooled as the root mean
    square over images on the dataset scale (``noise_sigma``), the same in raw units (HU for
    DICOM; ``noise_sigma_raw``) and per image ((I,) float64, dataset scale)."""

    noise_sigma: float
    noise_sigma_raw: float
    noise_sigma_per_image: np.ndarray


def build_from_single(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_by: str = "auto",
    modality: str | None = None,
    skip_bad: bool = False,
) -> DatasetSummary[SingleImageNoise]:
    """Build a dataset (noisy (I, 1, H, W), no clean) from single noisy acquisitions.

    Parameters
    ----------
    inputs : sequence of path
        One or more DICOM folders/files, TIFF or .npy stacks (H, W) or (S, H, W), PNG images;
        all of one kind and image size. Each is read as one acquisition.
    out : path
        Dataset file to write (atomically).
    fractions : (train, val, test) or (train, test)
        Of objects, slices or tiles (:mod:`lowdose.data.split_plan`).
    seed : int
        Seeds the split (patient, volume).
    split_by : {"auto", "patient", "volume", "slab", "region"}
        Patient = DICOM PatientID or the input file; volume = the series or file.
    modality : {"ct", "xray"} or None
        ``"ct"``: the values are HU (DICOM always is; say so for TIFF / .npy in HU), scaled
        ``(HU + 1024) / divisor`` with out-of-field padding handled; ``"xray"``: values as stored.
        None: from the files (DICOM -> ct).
    skip_bad : bool
        Leave unreadable files of a folder out (listed by the reader) instead of stopping.

    Returns
    -------
    DatasetSummary[SingleImageNoise]

    Raises
    ------
    LowdoseInputError
        No input; inputs of different kinds or image sizes; a split that cannot be made (one
        line naming the fix).
    """
    started = time.perf_counter()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise LowdoseInputError("no input given; pass a DICOM folder, a TIFF/.npy stack or image")
    acquisitions = [read_acquisition(p, skip_bad=skip_bad) for p in paths]
    check_kinds(acquisitions)
    _check_sizes(acquisitions)
    raw = np.concatenate([a.values for a in acquisitions])[:, None].astype(np.float64)
    if modality not in (None, "ct", "xray"):
        raise LowdoseInputError(f"modality {modality!r} is unknown; use 'ct' or 'xray'")
    is_hu = acquisitions[0].kind == "dicom" if modality is None else modality == "ct"
    noisy, divisor, fov = scale_measured(raw, is_hu=is_hu)  # (I, 1, H, W)
    sigma = np.array([single_image_noise_sigma(image[0]) for image in noisy])
    pooled = float(np.sqrt(np.mean(sigma**2)))
    patients = np.concatenate([a.object_id for a in acquisitions])
    volumes = np.concatenate([a.volume_id for a in acquisitions])
    plan = plan_split(
        patients,
        image_shape=raw.shape[2:],
        rng=np.random.default_rng(seed),
        method=split_by,
        volume_id=volumes,
        fractions=fractions,
    )
    attrs = DatasetAttrs(
        modality="ct" if is_hu else "xray",
        noise_model="measured",
        scaling_rule="dataset_max",
        noise_level=pooled**2,
        scaling_offset=HU_OFFSET if is_hu else 0.0,
        raw_units="hu" if is_hu else "as stored",
        seed=seed,
        description=f"lowdose dataset from-single: {len(paths)} input(s), one realisation, "
        "no clean",
    ).with_extra(
        single_noise_sigma=pooled,
        single_noise_sigma_raw=pooled * divisor,
        single_noise_rule=SINGLE_IMAGE_SIGMA_RULE,
        inputs=" | ".join(str(p) for p in paths),
    )
    details = SingleImageNoise(pooled, pooled * divisor, sigma)
    return split_write_and_summarise(
        out,
        plan=plan,
        clean=None,
        noisy=noisy,
        scale=np.full(len(noisy), divisor, np.float32),
        attrs=attrs,
        started_s=started,
        details=details,
        fov=fov,
    )


def _check_sizes(acquisitions: list[Acquisition]) -> None:
    first = acquisitions[0]
    for other in acquisitions[1:]:
        if other.values.shape[1:] != first.values.shape[1:]:
            (h1, w1), (h2, w2) = first.values.shape[1:], other.values.shape[1:]
            raise LowdoseInputError(
                f"{first.path} is {h1}x{w1} but {other.path} is {h2}x{w2}; "
                "give images of one size (or build one dataset per size)"
            )
