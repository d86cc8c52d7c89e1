"""``lowdose iq``'s measurements on the QA phantom: every method, every module, in HU.

Synthetic phantom files (the phantom blurred by a known Gaussian as the "noise-free FBP", white
noise of a known sigma on top) make the expected answers known: no bias without noise, the
reference's own TTF, a blur that lowers noise, f50 and the NPS mean frequency, and a network
whose only effect is a known offset on its own scale. One test goes through the real simulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.scaling import hu_to_scaled
from lowdose.data.writer import write_dataset
from lowdose.evaluation.phantom_iq import (
    IqMethod,
    measure_image_quality,
    measure_methods,
    noisy_method,
)
from lowdose.evaluation.phantom_metrics import (
    IQ_COLUMNS,
    NPS_COLUMNS,
    TTF_COLUMNS,
    read_phantom_data,
)
from lowdose.image_quality.ttf import circular_edge_ttf
from lowdose.models.unet import UNet
from lowdose.phantoms.qa_phantom import qa_phantom

SIZE = 96
BLUR_PX = 1.0


def write_qa_file(path: Path, *, sigma_hu: float, n_realisations: int = 4, seed: int = 0):
    """A QA-phantom dataset: reference = phantom blurred by BLUR_PX, noisy = reference + white
    noise of ``sigma_hu``; returns (path, reference HU (3, H, W))."""
    phantom = qa_phantom(SIZE)
    reference = ndimage.gaussian_filter(phantom.hu.astype(np.float64), (0, BLUR_PX, BLUR_PX))
    rng = np.random.default_rng(seed)
    noisy = reference[:, None] + rng.normal(0.0, sigma_hu, (3, n_realisations, SIZE, SIZE))
    data_max = float(reference.max() + 1024)
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="gaussian",
        scaling_rule="dataset_max",
        scaling_offset=1024.0,
        raw_units="hu",
        noise_level=sigma_hu / data_max,
    ).with_extra(**phantom.to_attrs())
    write_dataset(
        path,
        clean=hu_to_scaled(reference, data_max, clip=True),
        noisy=hu_to_scaled(noisy, data_max),
        object_id=["qa-phantom"] * 3,
        split=["test"] * 3,
        scale=np.full(3, data_max),
        attrs=attrs,
    )
    return path, reference


def rows_of(frame, method: str, module: str):
    return frame[(frame["method"] == method) & (frame["module"] == module)].set_index("insert")


def test_without_noise_the_bias_is_zero_and_the_ttf_is_the_references(tmp_path):
    path, reference = write_qa_file(tmp_path / "qa.h5", sigma_hu=0.01)
    data = read_phantom_data(path)
    tables = measure_methods(data, [noisy_method()])
    sens = rows_of(tables.iq, "noisy", "sensitometry")
    uniform = rows_of(tables.iq, "noisy", "uniform")
    assert np.abs(sens["hu_bias"]).max() < 0.05  # float32 storage of ~2000 HU: ~1e-4 HU steps
    assert np.abs(uniform["hu_bias"]).max() < 0.05
    assert np.allclose(sens["sigma_hu"], 0.01, rtol=0.3)
    phantom = data.phantom
    for insert in phantom.inserts_in("sensitometry"):
        truth = circular_edge_ttf(
            reference[0], phantom.centre_px(insert), phantom.radius_px(insert), phantom.pixel_mm
        )
        assert sens.loc[insert.name, "f50"] == pytest.approx(truth.f50, rel=0.01), insert.name
        assert sens.loc[insert.name, "f10"] == pytest.approx(truth.f10, rel=0.01), insert.name


def gaussian_method(sigma_px: float) -> IqMethod:
    def run(hu, progress):
        return ndimage.gaussian_filter(hu, (0, 0, sigma_px, sigma_px), mode="mirror")

    return IqMethod("gauss", "", "none", run)


def test_a_blur_lowers_noise_resolution_and_the_nps_frequency(tmp_path):
    path, _ = write_qa_file(tmp_path / "qa.h5", sigma_hu=10.0, n_realisations=6)
    tables = measure_methods(read_phantom_data(path), [noisy_method(), gaussian_method(1.0)])
    iq = tables.iq
    noisy, blurred = rows_of(iq, "noisy", "uniform"), rows_of(iq, "gauss", "uniform")
    assert noisy.loc["nps", "sigma_hu"] == pytest.approx(10.0, rel=0.1)  # white noise as made
    assert blurred.loc["nps", "sigma_hu"] < 0.5 * noisy.loc["nps", "sigma_hu"]
    assert blurred.loc["nps", "nps_mean"] < 0.8 * noisy.loc["nps", "nps_mean"]
    sens_noisy, sens_blurred = (
        rows_of(iq, "noisy", "sensitometry"),
        rows_of(iq, "gauss", "sensitometry"),
    )
    for name in ("air", "delrin", "teflon"):  # contrasts far above the noise
        assert sens_blurred.loc[name, "f50"] < 0.9 * sens_noisy.loc[name, "f50"], name
    # white noise: the radial NPS is flat; the blur's is not
    nps = tables.nps
    flat = nps[nps["method"] == "noisy"]["nps_hu2mm2"].to_numpy()
    low_pass = nps[nps["method"] == "gauss"]["nps_hu2mm2"].to_numpy()
    assert flat.max() / flat.min() < 2.5
    assert low_pass[0] / low_pass[-1] > 20
    ttf = tables.ttf
    assert set(ttf["insert"]) == {i.name for i in qa_phantom(SIZE).inserts_in("sensitometry")}


def offset_checkpoint(path: Path, *, offset: float, divisor: float) -> Path:
    """A residual U-Net whose output is its input minus ``offset`` (network scale), trained
    (so its checkpoint says) on CT in HU with the dataset divisor ``divisor``."""
    torch.manual_seed(0)
    net = UNet(width=4, residual=True)  # the last conv starts at zero weights
    with torch.no_grad():
        net.dec_conv1.bias.fill_(offset)
    scaling = {
        "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0,
        "raw_units": "hu",
        "divisor": divisor,
        "data_range": 1.0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "hyper_parameters": {
                "model": net.config(),
                "mode": "n2n",
                "loss": "mse",
                "meta": {"scaling": scaling, "val_reference": "realisation"},
            },
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
            "global_step": 7,
        },
        path,
    )
    return path


def test_a_checkpoint_runs_on_its_own_scale_and_every_table_is_written(tmp_path):
    path, _ = write_qa_file(tmp_path / "qa.h5", sigma_hu=5.0)
    # output = input + 0.01 on the network's scale: +40 HU with the checkpoint's divisor 4000;
    # the file's own divisor (~2000) would give +20 HU
    checkpoint = offset_checkpoint(tmp_path / "run" / "best.ckpt", offset=-0.01, divisor=4000.0)
    calls = []
    tables = measure_image_quality(
        path,
        models=[checkpoint],
        filters=(),
        out_dir=tmp_path / "iq",
        progress=lambda *a: calls.append(a),
    )
    iq = tables.iq
    noisy, net = rows_of(iq, "noisy", "sensitometry"), rows_of(iq, "n2n-mse", "sensitometry")
    assert np.allclose(net["hu_bias"] - noisy["hu_bias"], 40.0, atol=0.05)
    assert np.allclose(net["sigma_hu"], noisy["sigma_hu"], rtol=1e-3)
    first = iq[iq["method"] == "n2n-mse"].iloc[0]
    assert (first["model"], first["selection"]) == ("unet-w4-res", "clean-free")
    assert ("n2n-mse", 12, 12) in calls  # every realisation of every slice went through it
    written = {p.name for p in (tmp_path / "iq").iterdir()}
    assert written == {"iq.csv", "iq_nps.csv", "iq_ttf.csv", "iq.json"}
    import pandas as pd

    saved = pd.read_csv(tmp_path / "iq" / "iq.csv")
    assert list(saved.columns) == list(IQ_COLUMNS)
    assert list(pd.read_csv(tmp_path / "iq" / "iq_nps.csv").columns) == list(NPS_COLUMNS)
    assert list(pd.read_csv(tmp_path / "iq" / "iq_ttf.csv").columns) == list(TTF_COLUMNS)
    # one row per method x insert or ROI: 6 rods, 5 NPS ROIs + the pooled NPS, 24 discs
    assert saved.groupby("method").size().to_dict() == {"noisy": 36, "n2n-mse": 36}
    discs = saved[saved["module"] == "low_contrast"]
    assert discs[["dprime_npw", "dprime_npwe", "cnr"]].notna().all().all()
    assert discs["f50"].isna().all() and discs["sigma_hu"].isna().all()  # not theirs
    big = discs[(discs["method"] == "noisy") & (discs["diameter_mm"] == 15)]
    assert big.set_index("nominal_hu")["dprime_npw"].sort_index().is_monotonic_increasing
    text = (tmp_path / "iq" / "iq.json").read_text()
    conventions = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in iq.json"))
    assert conventions["methods"]["n2n-mse"]["checkpoint"] == str(checkpoint)
    assert conventions["dprime"]["ttf_insert"] == "polystyrene"
    assert conventions["n_realisations"] == 4 and conventions["nps_rois"]["side_px"] >= 8


def test_blind_filters_take_sigma_from_the_pairs_and_lower_the_noise(tmp_path):
    path, _ = write_qa_file(tmp_path / "qa.h5", sigma_hu=20.0, n_realisations=3)
    tables = measure_image_quality(path, filters=("nlm",), out_dir=tmp_path / "iq")
    blind = tables.conventions["blind_sigma_hu"]
    assert all(v == pytest.approx(20.0, rel=0.08) for v in blind.values())
    uniform = rows_of(tables.iq, "nlm-blind", "uniform")
    assert (
        uniform.loc["nps", "sigma_hu"]
        < 0.6 * rows_of(tables.iq, "noisy", "uniform").loc["nps", "sigma_hu"]
    )
    assert set(uniform["selection"]) == {"blind"}


def test_spectrum_bm3d_lowers_correlated_noise_more_than_the_white_rule(tmp_path):
    """Low-pass correlated noise (FBP-like): BM3D given the pair spectrum removes more of it
    than BM3D told the pixel sd, and it reads only the realisations."""
    path, _ = write_qa_file(tmp_path / "qa.h5", sigma_hu=20.0, n_realisations=2)
    pytest.importorskip("bm3d")
    with __import__("h5py").File(path, "r+") as handle:  # correlate the noise, same sd
        noisy, clean = handle["noisy"][...], handle["clean"][...]
        noise = ndimage.gaussian_filter(noisy - clean[:, None], (0, 0, 1.0, 1.0))
        handle["noisy"][...] = clean[:, None] + noise * (noisy - clean[:, None]).std() / noise.std()
    tables = measure_image_quality(path, filters=("bm3d", "bm3d-psd"), out_dir=tmp_path / "iq")
    sigma = {
        m: rows_of(tables.iq, m, "uniform").loc["nps", "sigma_hu"]
        for m in ("noisy", "bm3d-blind", "bm3d-psd-blind")
    }
    assert sigma["bm3d-psd-blind"] < 0.8 * sigma["bm3d-blind"] < 0.8 * sigma["noisy"], sigma


def test_bad_inputs_name_the_file_and_the_fix(tmp_path, tiny_dataset, tiny_checkpoint):
    with pytest.raises(LowdoseInputError, match=r"tiny\.h5: not a QA-phantom dataset.*qa-phantom"):
        read_phantom_data(tiny_dataset)
    one, _ = write_qa_file(tmp_path / "one.h5", sigma_hu=5.0, n_realisations=1)
    with pytest.raises(LowdoseInputError, match=r"one\.h5: 1 realisation.*>= 2"):
        measure_image_quality(one, filters=(), out_dir=tmp_path / "out")
    good, _ = write_qa_file(tmp_path / "qa.h5", sigma_hu=5.0, n_realisations=2)
    with pytest.raises(LowdoseInputError, match=r"--filters 'median'.*nlm,bm3d,bm3d-psd"):
        measure_image_quality(good, filters=("median",), out_dir=tmp_path / "out")
    with pytest.raises(LowdoseInputError, match=r"best\.ckpt.*not CT in HU"):
        measure_image_quality(good, models=[tiny_checkpoint], filters=(), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_simulated_phantom_measures_end_to_end(tmp_path):
    from lowdose.physics.noise_levels import NoiseLevel
    from lowdose.simulate.ct import build_ct_dataset

    path = tmp_path / "qa.h5"
    level = NoiseLevel(photons_per_ray=1e5)
    build_ct_dataset(
        path, source="qa-phantom", noise="sinogram", level=level, realisations=4, size=SIZE
    )
    tables = measure_image_quality(path, filters=(), out_dir=tmp_path / "iq")
    sens = rows_of(tables.iq, "noisy", "sensitometry")
    assert sens["f50"].notna().all() and sens["cnr"].notna().all()
    data = read_phantom_data(path)
    phantom = data.phantom
    for name in ("air", "teflon"):  # high contrast: the ensemble mean's edge is the reference's
        insert = next(i for i in phantom.inserts if i.name == name)
        truth = circular_edge_ttf(
            data.reference_hu[0],
            phantom.centre_px(insert),
            phantom.radius_px(insert),
            phantom.pixel_mm,
        )
        assert sens.loc[name, "f50"] == pytest.approx(truth.f50, rel=0.05)
    assert sens.loc["air", "cnr"] > 50  # the rows are the modules they claim to be
    uniform = rows_of(tables.iq, "noisy", "uniform")
    assert np.isfinite(uniform.loc["nps", ["nps_peak", "nps_mean"]].astype(float)).all()
    assert tables.conventions["dataset_attrs"]["noise_model"] == "sinogram"
