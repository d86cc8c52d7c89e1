"""Reading scans as instruments write them: Data Exchange HDF5, TIFF stacks, sinogram files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from lowdose.core.errors import LowdoseInputError
from lowdose.io.projections import read_projections
from lowdose.physics.flat_field import line_integrals
from lowdose.physics.rotation_centre import find_centre

N_ANGLES, ROWS, COLS = 7, 3, 12
FLAT, DARK = 4000.0, 100.0
PROJECTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "projections"


def _truth(seed=0):
    return np.random.default_rng(seed).uniform(0.1, 2.0, size=(N_ANGLES, ROWS, COLS))


def _counts(line):
    return np.round(DARK + (FLAT - DARK) * np.exp(-line)).astype(np.uint16)


def _write_data_exchange(path, *, theta=None, theta_units=None, flats=True, n_darks=4):
    line = _truth()
    with h5py.File(path, "w") as handle:
        handle["exchange/data"] = _counts(line)
        if flats:
            handle["exchange/data_white"] = np.full((5, ROWS, COLS), FLAT, np.uint16)
        handle["exchange/data_dark"] = np.full((n_darks, ROWS, COLS), DARK, np.uint16)
        if theta is not None:
            handle["exchange/theta"] = theta
            if theta_units:
                handle["exchange/theta"].attrs["units"] = theta_units
    return line


def test_data_exchange_layout_shapes_angles_and_notes(tmp_path):
    theta = np.linspace(0, 180, N_ANGLES)
    line = _write_data_exchange(tmp_path / "scan.h5", theta=theta)
    scan = read_projections(tmp_path / "scan.h5")
    assert (scan.layout, scan.values) == ("data-exchange", "counts")
    assert scan.projections.shape == (N_ANGLES, ROWS, COLS) and scan.projections.dtype == np.float32
    assert scan.flats.shape == (5, ROWS, COLS) and scan.darks.shape == (4, ROWS, COLS)
    np.testing.assert_allclose(scan.angles_deg, theta)
    assert scan.notes[0] == (
        f"Data Exchange: {N_ANGLES} projections {ROWS} x {COLS} (uint16), 5 flats, 4 darks, "
        "theta in degrees (by range: they span 180)"
    )
    values, _ = line_integrals(scan.projections, scan.flats, scan.darks)
    np.testing.assert_allclose(values, line, atol=2e-3)  # counts were rounded to integers


@pytest.mark.parametrize(
    ("theta", "units", "why"),
    [
        (np.linspace(0, np.pi, N_ANGLES), None, "by range"),  # tomopy-style radians, unlabelled
        (np.linspace(0, np.pi, N_ANGLES), "rad", "unit label"),
        (np.linspace(0, 3, N_ANGLES), "degrees", "unit label"),  # labelled: believed
    ],
)
def test_theta_units_by_label_then_range(tmp_path, theta, units, why):
    _write_data_exchange(tmp_path / "scan.h5", theta=theta, theta_units=units)
    scan = read_projections(tmp_path / "scan.h5")
    radians = units == "rad" or (units is None and theta.max() < 7)
    np.testing.assert_allclose(scan.angles_deg, np.rad2deg(theta) if radians else theta)
    assert why in scan.notes[0] and ("radians" if radians else "degrees") in scan.notes[0]


def test_angles_come_from_the_file_or_from_angles_never_both(tmp_path):
    _write_data_exchange(tmp_path / "bare.h5")
    bare = read_projections(tmp_path / "bare.h5")
    assert bare.angles_deg is None and "no theta" in bare.notes[0]
    given = read_projections(tmp_path / "bare.h5", angles="0:180")
    np.testing.assert_allclose(given.angles_deg, np.arange(N_ANGLES) * 180 / N_ANGLES)
    _write_data_exchange(tmp_path / "theta.h5", theta=np.arange(N_ANGLES) * 30.0)
    with pytest.raises(LowdoseInputError, match="--angles") as error:
        read_projections(tmp_path / "theta.h5", angles="0:180")
    assert "theta.h5" in str(error.value) and "/exchange/theta" in str(error.value)


def test_counts_without_flats_are_refused_downstream_naming_flat(tmp_path):
    _write_data_exchange(tmp_path / "scan.h5", flats=False)
    scan = read_projections(tmp_path / "scan.h5")
    assert scan.values == "counts" and scan.flats is None and "--flat" in scan.notes[-1]
    with pytest.raises(LowdoseInputError, match="--flat"):
        line_integrals(scan.projections, scan.flats, scan.darks, source=scan.source)


def test_flat_and_dark_overrides_from_hdf5_keys_and_tiffs(tmp_path):
    line = _write_data_exchange(tmp_path / "scan.h5", flats=False)
    with h5py.File(tmp_path / "refs.h5", "w") as handle:
        handle["beam/open"] = np.full((3, ROWS, COLS), FLAT, np.float32)
    tifffile.imwrite(tmp_path / "dark.tif", np.full((2, ROWS, COLS), DARK, np.uint16))
    scan = read_projections(
        tmp_path / "scan.h5", flat=f"{tmp_path / 'refs.h5'}:beam/open", dark=tmp_path / "dark.tif"
    )
    assert scan.flats.shape == (3, ROWS, COLS) and scan.darks.shape == (2, ROWS, COLS)
    assert any("replacing the file's 4" in note for note in scan.notes)
    values, report = line_integrals(scan.projections, scan.flats, scan.darks)
    np.testing.assert_allclose(values, line, atol=2e-3)
    assert report.flat_rule == "median of 3 frames" and report.dark_rule == "mean of 2 frames"
    with pytest.raises(LowdoseInputError, match="do not fit"):
        read_projections(tmp_path / "scan.h5", flat=np.ones((ROWS, COLS + 1)))


def _write_tiff_stack(folder: Path, *, extra_angles=True):
    line = _truth(1)
    (folder / "tiffs").mkdir(parents=True)
    for i, frame in enumerate(_counts(line)):  # raw_2 must sort before raw_10
        tifffile.imwrite(folder / "tiffs" / f"raw_{i * 4}.tif", frame)
    tifffile.imwrite(folder / "flat_00001.tiff", np.full((ROWS, COLS), FLAT, np.float32))
    tifffile.imwrite(folder / "flat_00002.tiff", np.full((ROWS, COLS), FLAT, np.float32))
    darks = np.stack([np.full((ROWS, COLS), DARK - 3), np.full((ROWS, COLS), DARK + 3)])
    tifffile.imwrite(folder / "dark_before_after.tif", darks.astype(np.float32))
    angles = list(np.arange(N_ANGLES) * 20.0)
    if extra_angles:  # a reference frame listed at each end, the stage parked (Savu's habit)
        angles = angles[:1] * 3 + angles[1:] + angles[-1:] * 2
    (folder / "angles.txt").write_text("\n".join(f"{a:g}" for a in angles))
    return line


def test_tiff_stack_layout_order_frames_and_angles(tmp_path):
    line = _write_tiff_stack(tmp_path / "scan")
    scan = read_projections(tmp_path / "scan")
    assert (scan.layout, scan.values) == ("tiff-stack", "counts")
    assert scan.projections.shape == (N_ANGLES, ROWS, COLS)
    np.testing.assert_array_equal(scan.projections, _counts(line))  # natural order kept
    assert scan.flats.shape == (2, ROWS, COLS) and scan.darks.shape == (2, ROWS, COLS)
    np.testing.assert_allclose(scan.angles_deg, np.arange(N_ANGLES) * 20.0)
    assert any("dropped 2 repeat(s) of the first and 2 of the last" in n for n in scan.notes)
    assert "in tiffs/ (raw_0.tif .. raw_24.tif)" in scan.notes[0]
    values, report = line_integrals(scan.projections, scan.flats, scan.darks)
    np.testing.assert_allclose(values, line, atol=2e-3)  # darks before (D-3) and after (D+3)
    assert report.dark_rule == "mean of 2 frames"


def test_a_multi_frame_tiff_of_projections(tmp_path):
    line = _truth(2)
    (tmp_path / "stack").mkdir()
    tifffile.imwrite(tmp_path / "stack" / "projections.tif", _counts(line))
    (tmp_path / "refs" / "flats").mkdir(parents=True)
    for i in range(3):
        tifffile.imwrite(tmp_path / "refs" / "flats" / f"{i}.tif", np.full((ROWS, COLS), FLAT))
    dark = np.full((ROWS, COLS), DARK, np.uint16)
    tifffile.imwrite(tmp_path / "stack" / "dark.tif", dark)
    tifffile.imwrite(tmp_path / "stack" / "flat.tif", np.full((ROWS, COLS), FLAT, np.uint16))
    in_folder = read_projections(tmp_path / "stack", angles="0:180")
    as_file = read_projections(
        tmp_path / "stack" / "projections.tif", flat=tmp_path / "refs" / "flats", dark=dark
    )
    assert as_file.flats.shape == (3, ROWS, COLS) and in_folder.flats.shape == (1, ROWS, COLS)
    for scan in (in_folder, as_file):
        assert scan.layout == "tiff-stack" and scan.projections.shape == (N_ANGLES, ROWS, COLS)
        values, _ = line_integrals(scan.projections, scan.flats, scan.darks)
        np.testing.assert_allclose(values, line, atol=2e-3)


def test_mat_sinograms_stored_detectors_by_angles_with_radians(tmp_path):
    sinogram = np.random.default_rng(4).uniform(0, 2, size=(30, 20)).astype(np.float32)
    radians = np.linspace(0, np.pi, 20, endpoint=False)[:, None]  # (n_angles, 1) like MATLAB
    scipy.io.savemat(
        tmp_path / "named.mat",
        {"sinoRD": sinogram, "anglesRad": radians + 100, "Detectors": np.uint16([[30]])},
    )
    scipy.io.savemat(tmp_path / "ranged.mat", {"sino": sinogram, "angles": radians})
    named, ranged = (
        read_projections(tmp_path / "named.mat"),
        read_projections(tmp_path / "ranged.mat"),
    )
    for scan, why in ((named, "by name"), (ranged, "by range")):
        assert (scan.layout, scan.values) == ("sinogram", "line-integrals")
        np.testing.assert_array_equal(scan.projections[:, 0, :], sinogram.T)  # (20, 1, 30)
        assert "transposed" in scan.notes[0] and why in scan.notes[1]
    np.testing.assert_allclose(ranged.angles_deg, np.rad2deg(radians.ravel()))
    # 100 rad is 15.9 turns: whole turns are dropped so the angles read as a 0..180 scan
    np.testing.assert_allclose(np.cos(np.deg2rad(named.angles_deg)), np.cos(radians.ravel() + 100))
    assert 0 <= named.angles_deg.min() < 360


def test_npy_sinograms_and_stacks_hold_angles_first(tmp_path):
    sinogram = np.random.default_rng(5).uniform(0, 2, size=(3, 16, 24))  # (slices, angles, det)
    np.save(tmp_path / "one.npy", sinogram[0])
    np.save(tmp_path / "stack.npy", sinogram)
    one = read_projections(tmp_path / "one.npy", angles="0:180")
    stack = read_projections(tmp_path / "stack.npy")
    assert one.projections.shape == (16, 1, 24) and stack.projections.shape == (16, 3, 24)
    np.testing.assert_allclose(stack.projections[:, 2], sinogram[2], rtol=1e-6)
    assert stack.angles_deg is None and any("--angles" in note for note in stack.notes)
    counts = np.random.default_rng(6).integers(500, 1000, size=(16, 24)).astype(np.uint16)
    np.save(tmp_path / "counts.npy", counts)
    per_view = np.full((16, 24), 1000.0)  # a flat given per view of one sinogram
    scan = read_projections(tmp_path / "counts.npy", flat=per_view)
    assert scan.values == "counts" and scan.flats.shape == (16, 1, 24)
    values, report = line_integrals(scan.projections, scan.flats, scan.darks)
    np.testing.assert_allclose(values[:, 0], -np.log(counts / 1000.0), atol=1e-5)
    assert report.flat_rule.startswith("per projection")


def test_unknown_and_missing_paths_are_refused(tmp_path):
    with pytest.raises(LowdoseInputError, match="no such file"):
        read_projections(tmp_path / "missing.h5")
    (tmp_path / "scan.raw").write_bytes(b"\0" * 8)
    with pytest.raises(LowdoseInputError, match="unknown scan format"):
        read_projections(tmp_path / "scan.raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LowdoseInputError, match="no TIFF files"):
        read_projections(tmp_path / "empty")


needs_shared = pytest.mark.skipif(
    not PROJECTIONS.is_dir(), reason=f"real projections not found at {PROJECTIONS} (../shared)"
)


@needs_shared
def test_the_real_savu_tiff_stack_and_its_rotation_centre():
    scan = read_projections(PROJECTIONS / "savu-image-test")
    assert scan.projections.shape == (91, 135, 160) and scan.angles_deg.shape == (91,)
    assert scan.angles_deg[-1] - scan.angles_deg[0] == pytest.approx(180.0, abs=1e-3)
    values, report = line_integrals(scan.projections, scan.flats, scan.darks)
    assert np.all(np.isfinite(values)) and report.fraction_clipped < 1e-3
    assert np.mean((values > -0.1) & (values < 5.0)) > 0.999  # transmission 0.7% .. 110%
    middle = values[:, 65:70].mean(axis=1)  # (91, 160): the mean of the middle rows
    estimate = find_centre(middle, scan.angles_deg)
    assert abs(estimate.centre_px - 85.9) < 0.5, estimate.line()
    assert abs(estimate.sharpness_px - estimate.centre_px) < 1.0, estimate.line()


@needs_shared
@pytest.mark.parametrize(
    ("name", "shape", "span_deg"),
    [
        ("ccpi-basalt-sinogram/sino_basalt.mat", (530, 1, 627), 179.8),
        ("tomobar-dendrite-sinogram/RealDataDend.mat", (360, 1, 1260), 179.5),
    ],
)
def test_the_real_mat_sinograms(name, shape, span_deg):
    scan = read_projections(PROJECTIONS / name)
    assert scan.projections.shape == shape and scan.values == "line-integrals"
    assert np.ptp(scan.angles_deg) == pytest.approx(span_deg, abs=0.05)  # radians detected
    values, report = line_integrals(scan.projections, values=scan.values)
    assert report.passed_through and np.all(np.isfinite(values))
    # log-corrected with an unknown scale: non-negative, and not empty
    assert np.mean(values >= 0) > 0.999 and np.percentile(values, 99) > 0
