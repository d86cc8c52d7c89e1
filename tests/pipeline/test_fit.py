"""``lowdose fit`` end to end on what users have: one DICOM series, one image pair, one stack.

Each case runs the real command with a few seconds of training budget and checks the contract:
the route chosen from the inputs, denoised output in the input's format (a DICOM series with new
UIDs, HU kept), a self-contained report naming its clean-free scores, and a resumed fit that
reuses every finished stage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

import lowdose.cli
from lowdose.data.dataset import read_info
from lowdose.pipeline.fit import FitOptions, plan_fit

BUDGET = "00:00:06"


def phantom_hu(n_slices: int, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """(S, size, size) HU: a water ellipse with a few inserts in air, slowly varying along z."""
    rows, cols = np.mgrid[0:size, 0:size] / size - 0.5
    volume = np.full((n_slices, size, size), -1000.0)
    for z in range(n_slices):
        body = (rows / 0.42) ** 2 + (cols / 0.36) ** 2 < 1
        volume[z][body] = 40.0
        for k, (y, x, hu) in enumerate(
            [(-0.15, 0.1, 300.0), (0.12, -0.1, -100.0), (0.0, 0.2, 80.0)]
        ):
            radius = 0.05 + 0.01 * np.sin(z / 4 + k)
            volume[z][(rows - y) ** 2 + (cols - x) ** 2 < radius**2] = hu
    return volume


def write_ct_series(folder: Path, hu: np.ndarray, *, patient: str = "P1") -> Path:
    """A one-patient CT series: int16, slope 1, intercept -1024, 2 mm slices."""
    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    for z, image in enumerate(hu):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", patient, "Test^Fit"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = z + 1
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.8, 0.8]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.round(image + 1024).astype(np.int16).tobytes()
        ds.save_as(folder / f"slice{z:03d}.dcm", enforce_file_format=True)
    return folder


def run_fit_cli(*args: str):
    return CliRunner().invoke(lowdose.cli.app, ["fit", *args])


def test_plan_follows_the_inputs(tmp_path):
    one, two = [tmp_path / "a.npy"], [tmp_path / "a.npy", tmp_path / "b.npy"]
    assert plan_fit(one, FitOptions()).mode == "nb2nb"
    assert plan_fit(one, FitOptions(mode="n2v")).mode == "n2v"
    assert plan_fit(two, FitOptions()).route == "repeats"
    assert plan_fit(one, FitOptions(angles="0:180")).route == "sinogram"
    with pytest.raises(Exception, match="two acquisitions"):
        plan_fit(one, FitOptions(mode="n2n"))
    assert plan_fit(one, FitOptions(mode="blend")).mode == "blend"
    with pytest.raises(Exception, match="one CT scan"):
        plan_fit(two, FitOptions(mode="blend"))


@pytest.mark.slow
def test_one_patient_dicom_series_fits_and_comes_back_as_dicom(tmp_path):
    rng = np.random.default_rng(0)
    clean = phantom_hu(20, 128, rng=rng)
    series = write_ct_series(tmp_path / "scan", clean + rng.normal(0, 25, clean.shape))
    out = tmp_path / "fit"
    result = run_fit_cli(str(series), "--out", str(out), "--budget", BUDGET)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "fit.json").read_text())
    # one CT scan in HU: the built-in model + spectrum BM3D, no training
    assert record["plan"]["route"] == "single" and record["plan"]["mode"] == "blend"
    assert record["run_dir"] is None and not (out / "train").exists()
    assert record["checkpoint"] == "builtin:ct-sinogram"
    choice = json.loads((out / "compare" / "choice.json").read_text())
    assert choice["preferred"] == "blend" and choice["flat_region"] == "body"
    assert choice["scored_on"].startswith("every image") and len(choice["object_id"]) == 8
    assert "HU" in result.output  # the terminal's flat-region sd is in HU too
    methods = [line.split(",")[0] for line in (out / "compare" / "scores.csv").read_text().split()]
    assert {"builtin", "bm3d-psd", "blend"} <= set(methods)
    info = read_info(out / "dataset" / "dataset.h5")
    assert info.shape[1] == 1 and set(info.split.tolist()) == {"train", "val", "test"}
    written = sorted((out / "denoised").rglob("*.dcm"))
    assert len(written) == 20
    inputs = {pydicom.dcmread(p).SOPInstanceUID for p in series.iterdir()}
    outputs = [pydicom.dcmread(p) for p in written]
    assert not inputs & {ds.SOPInstanceUID for ds in outputs}
    assert len({ds.SeriesInstanceUID for ds in outputs}) == 1
    assert "BM3D" in str(outputs[0].DerivationDescription)
    hu = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in outputs]
    )
    body = clean > -500
    assert abs(float(np.median(hu[body] - clean[body]))) < 30  # HU kept on the water scale
    report = (out / "report.html").read_text()
    assert "Clean-free scores" in report and "lowdose would use" in report
    assert "report" in result.output and str(out / "report.html") in result.output.replace("\n", "")


@pytest.mark.slow
def test_single_image_pair_is_split_into_regions_and_resumes(tmp_path):
    rng = np.random.default_rng(1)
    clean = phantom_hu(1, 256, rng=rng)[0] / 1000 + 1.0  # a 2-D image in arbitrary units
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"shot{k}.npy")
        np.save(paths[-1], (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32))
    out = tmp_path / "fit"
    result = run_fit_cli(*map(str, paths), "--out", str(out), "--budget", BUDGET)
    assert result.exit_code == 0, result.output
    info = read_info(out / "dataset" / "dataset.h5")
    assert info.shape[1] == 2 and info.attrs.extra["split_by"] == "region"
    scores = (out / "compare" / "scores.csv").read_text()
    assert "upsnr" in scores.splitlines()[0]
    assert (out / "denoised" / "shot0.npy").is_file() and (out / "denoised" / "shot1.npy").is_file()
    denoised = np.load(out / "denoised" / "shot0.npy")
    assert denoised.shape == clean.shape
    again = run_fit_cli(*map(str, paths), "--out", str(out), "--budget", BUDGET)
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output
    (out / "report.html").unlink()  # the report is rebuilt from the saved files alone
    rebuilt = CliRunner().invoke(lowdose.cli.app, ["report", str(out)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Clean-free scores" in (out / "report.html").read_text()


@pytest.mark.slow
def test_single_noisy_stack_denoises_with_n2v(tmp_path):
    rng = np.random.default_rng(2)
    clean = phantom_hu(12, 96, rng=rng) / 1000 + 1.0
    path = tmp_path / "stack.npy"
    np.save(path, (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32))
    out = tmp_path / "fit"
    result = run_fit_cli(str(path), "--out", str(out), "--budget", BUDGET, "--mode", "n2v")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "fit.json").read_text())["plan"]["mode"] == "n2v"
    assert np.load(out / "denoised" / "stack.npy").shape == clean.shape
    assert (out / "figures" / "fit_noisy.png").is_file()  # one figure per method


@pytest.mark.slow
def test_one_sinogram_with_angles_fits_by_split_views(tmp_path):
    from lowdose.physics.noise import add_poisson_post_log
    from lowdose.physics.radon import radon_2d

    rng = np.random.default_rng(3)
    mu = (phantom_hu(8, 96, rng=rng) + 1000.0) / 1000.0 * 0.02  # attenuation per pixel
    angles = np.arange(120) * 1.5
    sinograms = add_poisson_post_log(np.maximum(radon_2d(mu, angles), 0), 2e4, rng=rng)
    path = tmp_path / "scan.npy"
    np.save(path, sinograms.astype(np.float32))  # (8 slices, 120 views, n_det)
    out = tmp_path / "fit"
    args = (str(path), "--out", str(out), "--budget", BUDGET, "--angles", "0:180:120")
    result = run_fit_cli(*args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "fit.json").read_text())
    assert record["plan"]["route"] == "sinogram" and record["plan"]["mode"] == "n2n"
    info = read_info(out / "dataset" / "dataset.h5")
    assert info.shape[1] == 2 and info.attrs.extra["split_by"] == "slab"
    denoised = np.load(out / "denoised" / "scan_denoised.npy")
    assert denoised.shape == (8, *info.shape[2:]) and np.isfinite(denoised).all()


@pytest.mark.parametrize(("model_db", "warns"), [(4.91, True), (52.0, False)])
def test_fit_warns_for_a_model_worse_than_its_input_when_trained_and_when_reused(
    tmp_path, tiny_dataset, monkeypatch, model_db, warns
):
    import types

    import lowdose.pipeline.fit as fit
    from lowdose.models.validation_scores import ValidationScores

    scores = ValidationScores("val_upsnr_db", model_db=model_db, identity_db=46.40)

    def trained(config, *, resume):  # the manifest a finished training leaves (tested there)
        Path(config.runtime.out, "manifest.json").write_text(
            json.dumps({"validation_scores": scores.to_dict()})
        )
        return types.SimpleNamespace(
            global_step=4, monitor=scores.monitor, best_val_psnr_db=model_db
        )

    monkeypatch.setattr(fit, "train", trained)
    plan = plan_fit([tmp_path / "a.dcm", tmp_path / "b.dcm"], FitOptions())
    for _ in range(2):  # trained, then the finished stage reused
        lines: list[str] = []
        run_dir = fit._train_stage(
            tiny_dataset, "key", tmp_path / "out", plan, FitOptions(), log=lines.append
        )
        warnings = [line for line in lines if line.startswith("warning:")]
        if warns:
            assert len(warnings) == 1 and str(run_dir) in warnings[0]
            assert "4.91 dB" in warnings[0] and "46.40 dB" in warnings[0]
        else:
            assert warnings == []
    assert any(line.startswith("training: reusing") for line in lines)


@pytest.mark.slow
def test_one_ct_scan_without_the_bm3d_extra_uses_the_builtin_model_and_keeps_its_work(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    rng = np.random.default_rng(5)
    clean = phantom_hu(12, 96, rng=rng)
    series = write_ct_series(tmp_path / "scan", clean + rng.normal(0, 25, clean.shape))
    out = tmp_path / "fit"
    result = run_fit_cli(str(series), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "lowdose[bm3d]" in result.output.replace("\n", "")
    record = json.loads((out / "fit.json").read_text())
    assert record["plan"]["mode"] == "builtin" and record["run_dir"] is None
    assert len(sorted((out / "denoised").rglob("*.dcm"))) == 12
    methods = {line.split(",")[0] for line in (out / "compare" / "scores.csv").read_text().split()}
    assert methods == {"method", "noisy", "builtin", "nlm-blind"}
    assert json.loads((out / "compare" / "choice.json").read_text())["preferred"] == "builtin"
    asked = run_fit_cli(str(series), "--out", str(tmp_path / "asked"), "--mode", "blend")
    assert asked.exit_code == 1 and "lowdose[bm3d]" in asked.output.replace("\n", "")
    assert "Traceback" not in asked.output and not (tmp_path / "asked").exists()


def test_an_error_after_the_dataset_keeps_every_finished_stage(tmp_path, monkeypatch):
    import lowdose.pipeline.fit as fit_module
    from lowdose.core.errors import LowdoseInputError

    def failing_compare(*args, **kwargs):
        raise LowdoseInputError("the comparison failed")

    monkeypatch.setattr(fit_module, "_compare_stage", failing_compare)
    rng = np.random.default_rng(6)
    clean = phantom_hu(12, 64, rng=rng)
    series = write_ct_series(tmp_path / "scan", clean + rng.normal(0, 25, clean.shape))
    out = tmp_path / "fit"
    result = run_fit_cli(str(series), "--out", str(out), "--mode", "blend")
    assert result.exit_code == 1 and "the comparison failed" in result.output
    assert len(sorted((out / "denoised").rglob("*.dcm"))) == 12  # kept for the rerun
    assert any((out / "dataset").iterdir())


def test_fit_refuses_a_display_image_as_ct_before_any_work(tmp_path):
    import imageio.v3 as iio

    yy, xx = np.mgrid[:96, :96] - 47.5
    display = np.where(np.hypot(yy, xx) < 38, 140, 0).astype(np.uint8)
    iio.imwrite(tmp_path / "slice.png", display)
    out = tmp_path / "fit"
    result = run_fit_cli(str(tmp_path / "slice.png"), "--modality", "ct", "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "8-bit display image" in result.output and "--units" in result.output
    assert not out.exists()
    stated = run_fit_cli(str(tmp_path / "slice.png"), "--units", "window:40,400", "--out", str(out))
    assert stated.exit_code == 1 and "fit trains on the values as read" in stated.output
