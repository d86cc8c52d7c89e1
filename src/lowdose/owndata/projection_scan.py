"""A scan from a beamline or a micro-CT, as instruments write it, to a Noise2Inverse dataset.

:func:`prepare_scan` reads a Data Exchange HDF5 file, a TIFF stack with flat and dark frames, or
a sinogram file (:func:`lowdose.io.projections.read_projections`), turns counts into line
integrals with the flats and darks (:func:`lowdose.physics.flat_field.line_integrals`), takes the
angles from the file (``--angles`` only where it has none), and puts the rotation axis where
lowdose's parallel-beam FBP expects it: ``--center`` in detector pixels, or the estimate of
:func:`lowdose.physics.rotation_centre.estimate_centre` on the middle rows. Each detector row is
one sinogram, i.e. one reconstructed slice.

:func:`build_from_projections` then builds what ``lowdose dataset from-sinogram`` builds: the
views split into K interleaved subsets, each reconstructed, pairs with independent photon noise
(:func:`lowdose.owndata.split_sinogram.build_from_line_integrals`). The dataset's attributes say
what was found and done (flat/dark rules, clipped counts, the centre and how it was found).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, Progress
from lowdose.data.build import DatasetSummary
from lowdose.io.data_exchange import is_data_exchange
from lowdose.io.projections import read_projections
from lowdose.io.sinogram import parse_angles
from lowdose.io.tiff_stack import FLAT_PREFIXES, TIFF_SUFFIXES
from lowdose.owndata.split_sinogram import ViewSubsetNoise, build_from_line_integrals
from lowdose.physics.flat_field import line_integrals
from lowdose.physics.radon import check_backend
from lowdose.physics.rotation_centre import centred_sinogram, estimate_centre, fbp_axis_px

CENTRE_ROWS = 5
"""Detector rows around the middle whose sinograms are averaged for the centre estimate."""
CENTRED_WITHIN_PX = 0.25
"""An estimated axis this close to the FBP's axis bin is taken as centred: no resampling."""
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".cxi")


def is_instrument_scan(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a scan as instruments write it (``fit`` takes it without --angles):
    an HDF5 file with ``/exchange/data`` (Data Exchange), a ``.mat`` sinogram (it carries its
    angles), or a folder of TIFF projections with flat-field frames beside them."""
    path = Path(path)
    if path.is_dir():
        names = [p.name.lower() for p in path.rglob("*") if p.suffix.lower() in TIFF_SUFFIXES]
        return bool(names) and any(name.startswith(FLAT_PREFIXES) for name in names)
    if path.suffix.lower() == ".mat":
        return True
    return path.suffix.lower() in _HDF5_SUFFIXES and path.is_file() and is_data_exchange(path)


@dataclass(frozen=True)
class PreparedScan:
    """One instrument scan as sinograms ready for FBP.

    Attributes
    ----------
    source : Path
        The file or folder read.
    sinograms : ndarray (S, n_angles, n_det) float32
        Line integrals, one sinogram per detector row, rotation axis on the FBP's axis bin
        (:func:`lowdose.physics.rotation_centre.fbp_axis_px`).
    angles_deg : ndarray (n_angles,) float64
        Projection angles in degrees.
    centre_px : float
        The rotation axis in the file's detector pixels (0-based) before centring.
    notes : tuple of str
        What was found and done, one line each (reader, flat/dark, centre).
    backend : str
        Who back-projects it (:data:`lowdose.physics.radon.FBP_BACKENDS`): every reconstruction
        of this scan uses it.
    """

    source: Path
    sinograms: np.ndarray
    angles_deg: np.ndarray
    centre_px: float
    notes: tuple[str, ...]
    backend: str = "builtin"


@dataclass(frozen=True)
class ScanReading:
    """How the user asked for scans to be read, corrected, centred and reconstructed.

    Every field is a :func:`prepare_scan` option (``--angles``, ``--center``, ``--flat``,
    ``--dark``, ``--dataset-key``, ``--backend``); the defaults read what the file says. One
    value travels from the command line to every stage that reads the scans again (dataset,
    denoising, comparison), so each stage reads them exactly as the dataset did.
    """

    angles: str | None = None
    center: float | None = None
    flat: str | None = None
    dark: str | None = None
    dataset_key: str | None = None
    backend: str = "builtin"

    def prepare(self, path: str | os.PathLike) -> PreparedScan:
        """:func:`prepare_scan` of ``path`` with these options."""
        return prepare_scan(path, **self.options())

    def options(self) -> dict:
        """The fields as :func:`prepare_scan`'s (and the dataset builders') keyword arguments."""
        return dataclasses.asdict(self)


def prepare_scan(
    path: str | os.PathLike,
    *,
    angles=None,
    center: float | None = None,
    flat=None,
    dark=None,
    dataset_key: str | None = None,
    backend: str = "builtin",
) -> PreparedScan:
    """Read, correct and centre one scan (see the module docstring).

    Parameters
    ----------
    path : str or PathLike
        Data Exchange ``.h5``, a TIFF-stack folder with flats/darks, or a sinogram file.
    angles : str, optional
        ``START:STOP[:N]`` degrees or a file, only for files without angles.
    center : float, optional
        Rotation axis in detector pixels (0-based); None: estimated.
    flat, dark, dataset_key
        Overrides passed to :func:`lowdose.io.projections.read_projections`.
    backend : {"builtin", "astra"}
        Who reconstructs the scan (``--backend``); checked here, before anything is read.

    Raises
    ------
    LowdoseInputError
        Unreadable input, counts without flats, angles given twice or missing, a centre
        outside the detector.
    """
    check_backend(backend)
    scan = read_projections(path, dataset_key=dataset_key, flat=flat, dark=dark, angles=angles)
    notes = list(scan.notes)
    n_angles = scan.projections.shape[0]
    if scan.angles_deg is not None:
        angles_deg = np.asarray(scan.angles_deg, dtype=np.float64)
    elif angles is not None:
        angles_deg = parse_angles(angles, n_angles)
    else:
        raise LowdoseInputError(
            f"{scan.source}: the file holds no projection angles; pass --angles START:STOP (deg)"
        )
    if scan.values == "counts":
        values, report = line_integrals(
            scan.projections, scan.flats, scan.darks, source=scan.source
        )
        notes += report.lines()
    else:
        values = np.asarray(scan.projections, dtype=np.float32)
        notes.append("values are line integrals already (no flat/dark correction)")
    sinograms = np.ascontiguousarray(np.transpose(values, (1, 0, 2)))  # (rows, angles, det)
    n_det = sinograms.shape[2]
    if center is None:
        middle = len(sinograms) // 2
        rows = sinograms[max(0, middle - CENTRE_ROWS // 2) : middle + CENTRE_ROWS // 2 + 1]
        centre = float(estimate_centre(rows.mean(axis=0), angles_deg))
        notes.append(
            f"rotation centre estimated at {centre:.2f} px (the FBP's axis bin "
            f"{fbp_axis_px(n_det)}); pass --center to override"
        )
        if abs(centre - fbp_axis_px(n_det)) < CENTRED_WITHIN_PX:
            return PreparedScan(
                scan.source,
                sinograms.astype(np.float32),
                angles_deg,
                centre,
                tuple(notes),
                backend,
            )
    else:
        centre = float(center)
        if not 0 <= centre <= n_det - 1:
            raise LowdoseInputError(f"--center {center}: outside the detector (0..{n_det - 1} px)")
        notes.append(f"rotation centre {centre:.2f} px as given (--center)")
    centred = np.stack([centred_sinogram(sinogram, centre) for sinogram in sinograms])
    return PreparedScan(
        scan.source, centred.astype(np.float32), angles_deg, centre, tuple(notes), backend
    )


def prepare_scans(
    paths: Sequence[str | os.PathLike],
    *,
    angles=None,
    center: float | None = None,
    flat=None,
    dark=None,
    dataset_key: str | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    backend: str = "builtin",
) -> list[PreparedScan]:
    """:func:`prepare_scan` for each scan of one geometry (same angles); notes go to ``log``.

    Raises
    ------
    LowdoseInputError
        No scan, or a scan whose angles differ from the first one's.
    """
    if not paths:
        raise LowdoseInputError("no scan given; pass a Data Exchange .h5 or a TIFF-stack folder")
    prepared: list[PreparedScan] = []
    for number, path in enumerate(paths):
        scan = prepare_scan(
            path,
            angles=angles,
            center=center,
            flat=flat,
            dark=dark,
            dataset_key=dataset_key,
            backend=backend,
        )
        if prepared and not np.allclose(scan.angles_deg, prepared[0].angles_deg):
            raise LowdoseInputError(
                f"{scan.source}: its angles differ from {prepared[0].source}; one geometry per "
                "dataset"
            )
        if log is not None:
            for line in scan.notes:
                log(f"{scan.source.name}: {line}")
        if progress is not None:
            progress("reading scans", number + 1, len(paths))
        prepared.append(scan)
    return prepared


def build_from_projections(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    angles=None,
    center: float | None = None,
    flat=None,
    dark=None,
    dataset_key: str | None = None,
    splits: int = 2,
    filter_name: Literal["ramp", "hann"] = "ramp",
    output_size: int | None = None,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_by: str = "auto",
    progress: Progress | None = None,
    log: Log | None = None,
    backend: str = "builtin",
) -> DatasetSummary[ViewSubsetNoise]:
    """Build a K-split Noise2Inverse dataset from instrument scans (see the module docstring).

    Parameters
    ----------
    paths : sequence of path
        Scans of one geometry (same angles and detector width after centring).
    out : path
        Dataset file (atomic).
    angles, center, flat, dark, dataset_key
        See :func:`prepare_scan` (one ``center`` for every scan).
    splits, filter_name, output_size, fractions, seed, split_by, progress
        See :func:`lowdose.owndata.split_sinogram.build_from_sinogram`.
    log : Log, optional
        Receives each scan's notes (what was found and done), prefixed with its name.
    backend : {"builtin", "astra"}
        Who reconstructs the view subsets (:func:`prepare_scan`).
    """
    started = time.perf_counter()
    prepared = prepare_scans(
        paths,
        angles=angles,
        center=center,
        flat=flat,
        dark=dark,
        dataset_key=dataset_key,
        log=log,
        backend=backend,
    )
    extra = {
        "rotation_centre_px": ",".join(f"{scan.centre_px:.2f}" for scan in prepared),
        "preparation": " | ".join("; ".join(scan.notes) for scan in prepared)[:4000],
    }
    return build_from_line_integrals(
        [(scan.source, scan.sinograms) for scan in prepared],
        out,
        angles_deg=prepared[0].angles_deg,
        splits=splits,
        filter_name=filter_name,
        output_size=output_size,
        fractions=fractions,
        seed=seed,
        split_by=split_by,
        progress=progress,
        description="lowdose dataset from-projections",
        extra=extra,
        started=started,
        backend=backend,
    )
