"""The models shipped in the package denoise users' files on a fresh install (issue 16).

No training and no ``../shared`` here: test-made inputs -- the QA phantom in HU written as a DICOM
series and as a TIFF, with the noise each model was trained for (white Gaussian noise at its
acquired sigma; Poisson noise in the sinogram at a quarter of full dose then FBP), and a
synthetic X-ray transmission projection with Poisson noise -- go through ``lowdose denoise
--model builtin:NAME``; the outputs must come back in the input's units and format and be
closer to the noise-free image than the input is (RMSE inside the object).
"""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.models.builtin import BUILTIN_DIR_ENV, builtin_names
from lowdose.models.checkpoint import load_model
from lowdose.phantoms.qa_phantom import qa_phantom

SIZE = 256
SHIPPED = ("ct-awgn", "ct-sinogram", "xray-poisson")


@pytest.fixture(autouse=True)
def package_folder(monkeypatch):
    monkeypatch.delenv(BUILTIN_DIR_ENV, raising=False)  # the package's own folder


def test_the_package_ships_the_three_models():
    assert set(SHIPPED) <= set(builtin_names())


@pytest.fixture(scope="module")
def phantom():
    """(clean HU (3, 256, 256) float32, pixel mm): the QA phantom's three modules."""
    rendered = qa_phantom(SIZE)
    return rendered.hu, rendered.pixel_mm


def write_series(folder, hu: np.ndarray, pixel_mm: float):
    """One CT series (int16, rescale 1/-1024) of the slices ``hu`` (B, H, W) in HU."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    for k, image in enumerate(hu):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{k:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
            "CT",
            "PHANTOM",
            study,
            series,
        )
        ds.InstanceNumber, ds.ImagePositionPatient = k + 1, [0.0, 0.0, 5.0 * k]
        ds.ImageOrientationPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [pixel_mm, pixel_mm]
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = np.round(image + 1024).astype(np.int16).tobytes()
        ds.save_as(path, enforce_file_format=True)
    return folder


def read_series_hu(folder) -> np.ndarray:
    import pydicom

    slices = sorted(
        (pydicom.dcmread(p) for p in folder.rglob("*.dcm")), key=lambda ds: int(ds.InstanceNumber)
    )
    return np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
    )


def rmse_inside(estimate, clean, inside) -> float:
    return float(np.sqrt(np.mean((estimate - clean)[inside] ** 2)))


def awgn_sigma_hu(name: str) -> float:
    """The model's acquired noise sigma in HU: its validity range's trained sigma x divisor."""
    _, meta = load_model(f"builtin:{name}")
    return float(meta.validity.trained_sigma * meta.scaling.divisor)


def quarter_dose_scan(phantom_hu, pixel_mm) -> tuple[np.ndarray, np.ndarray]:
    """(noise-free FBP, FBP of Poisson noise in the sinogram at a quarter of full dose) in HU.

    The simulator's physics; the noise-free FBP is the reference, as in the training data.
    """
    from lowdose.physics.ct_dose import photons_per_ray_for_dose
    from lowdose.physics.ct_noise import (
        angles_for,
        line_integrals,
        reconstruct_hu,
        sinogram_noisy_hu,
    )

    angles = angles_for(SIZE)
    pixels = np.full(len(phantom_hu), pixel_mm)
    i0 = photons_per_ray_for_dose(0.25, bin_mm=pixel_mm, views=len(angles))
    sinograms = line_integrals(phantom_hu, pixels, angles)
    rngs = [np.random.default_rng([7, k]) for k in range(len(phantom_hu))]
    noisy = sinogram_noisy_hu(sinograms, pixels, angles, i0, rngs=rngs, size=SIZE)
    return reconstruct_hu(sinograms, pixels, angles, size=SIZE), noisy


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ct-awgn", "ct-sinogram"])
def test_a_ct_model_denoises_a_dicom_series_and_a_tiff_in_hu(name, phantom, tmp_path, invoke_cli):
    import tifffile

    clean, pixel_mm = phantom
    if name == "ct-awgn":
        rng = np.random.default_rng(3)
        noisy = clean + awgn_sigma_hu(name) * rng.standard_normal(clean.shape)
    else:
        clean, noisy = quarter_dose_scan(clean, pixel_mm)
    noisy = np.round(noisy).astype(np.float32)  # what an int16 series holds
    series = write_series(tmp_path / "series", noisy, pixel_mm)
    tifffile.imwrite(tmp_path / "slices.tif", noisy)
    out = tmp_path / "out"
    result = invoke_cli(
        [
            "denoise",
            "--model",
            f"builtin:{name}",
            "--out",
            str(out),
            str(series),
            str(tmp_path / "slices.tif"),
        ]
    )
    assert result.exit_code == 0, result.output
    from_dicom = read_series_hu(out)
    from_tiff = tifffile.imread(out / "slices.tif")
    assert from_dicom.shape == from_tiff.shape == clean.shape
    np.testing.assert_allclose(from_dicom, from_tiff, atol=1.0)  # same HU, int16 rounding apart
    inside = np.broadcast_to(clean > -900, clean.shape)  # the phantom, not the air around it
    before, after = rmse_inside(noisy, clean, inside), rmse_inside(from_tiff, clean, inside)
    assert after < 0.6 * before, (name, before, after)  # at least 4.4 dB closer to the truth
    water = np.abs(clean[2]) < 1  # module 3: water background of the low-contrast discs
    assert abs(float(np.mean(from_tiff[2][water]))) < 5.0  # HU kept: water stays at 0 HU


@pytest.mark.slow
def test_the_xray_model_denoises_a_projection_tiff(tmp_path, invoke_cli):
    import tifffile

    y, x = np.mgrid[:SIZE, :SIZE] / SIZE
    body = np.exp(-((((x - 0.5) / 0.35) ** 2 + ((y - 0.5) / 0.45) ** 2) ** 2))
    spine = np.exp(-(((x - 0.5) / 0.04) ** 2))
    clean = np.exp(-(2.0 * body + 1.0 * spine * body)).astype(np.float32)  # transmission
    photons = 438.3  # the model's acquired dose (docs/results.md): 29.9 dB on this scale
    rng = np.random.default_rng(5)
    noisy = (rng.poisson(photons * clean) / photons).astype(np.float32)
    tifffile.imwrite(tmp_path / "projection.tif", noisy)
    out = tmp_path / "out"
    result = invoke_cli(
        [
            "denoise",
            "--model",
            "builtin:xray-poisson",
            "--out",
            str(out),
            str(tmp_path / "projection.tif"),
        ]
    )
    assert result.exit_code == 0, result.output
    denoised = tifffile.imread(out / "projection.tif")
    inside = np.ones_like(clean, dtype=bool)
    before, after = rmse_inside(noisy, clean, inside), rmse_inside(denoised, clean, inside)
    assert after < 0.6 * before, (before, after)
