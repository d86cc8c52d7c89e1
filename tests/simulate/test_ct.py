"""CT datasets: paper scaling, AWGN and sinogram noise at a target PSNR, splits, CLI, preview."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.simulate_ct_cmd  # noqa: F401  (registers `simulate ct`)
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, psnr_hu_window
from lowdose.core.noise_correlation import NoiseCorrelation
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.scaling import hu_to_scaled, scaled_to_hu
from lowdose.physics.ct_noise import neighbour_correlation, solve_i0_for_psnr
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct import build_ct_dataset
from lowdose.simulate.ct_levels import noise_stream
from lowdose.simulate.ct_source import load_ct_source

TCGA = Path(__file__).parents[3] / "shared/data/ct/tcga-luad"
needs_tcga = pytest.mark.skipif(
    not TCGA.is_dir(), reason=f"real CT slices not found at {TCGA} (../shared of the repo)"
)
PHANTOM = {"source": "phantom", "size": 64, "n_phantoms": 3, "slices_per_phantom": 2}


@pytest.fixture(scope="module")
def tcga_subset(tmp_path_factory) -> Path:
    """Links to 6 TCGA slices of 3 patients (two each) in a temporary folder; nothing copied."""
    import pydicom

    by_patient: dict[str, list[Path]] = {}
    for path in sorted(TCGA.glob("*.dcm")):
        patient = pydicom.dcmread(path, stop_before_pixels=True).PatientID
        by_patient.setdefault(patient, []).append(path)
    chosen = [paths[:2] for paths in by_patient.values() if len(paths) >= 2][:3]
    folder = tmp_path_factory.mktemp("tcga")
    for path in (p for pair in chosen for p in pair):
        (folder / path.name).symlink_to(path)
    return folder


def read(path: Path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as handle:
        arrays = {key: handle[key][()] for key in handle}
        return arrays, dict(handle.attrs)


def test_scale_is_hu_plus_1024_clipped_over_the_dataset_max():
    hu = np.array([[-3024.0, -1024.0, 0.0, 3072.0]])
    scaled = hu_to_scaled(hu, 4096.0, clip=True)
    assert scaled.tolist() == [[0.0, 0.0, 0.25, 1.0]]
    assert np.allclose(scaled_to_hu(scaled, 4096.0)[0, 1:], hu[0, 1:])


def test_hu_window_psnr_clips_both_images_to_the_window():
    clean = np.zeros((8, 8))
    assert psnr_hu_window(clean - 2000.0, clean - 5000.0) == np.inf  # both clip to -1000
    assert psnr_hu_window(clean, clean + 20.0) == pytest.approx(20 * np.log10(2000 / 20))


def test_neighbour_correlation_tells_white_from_smooth_noise():
    from scipy.ndimage import gaussian_filter

    white = np.random.default_rng(0).standard_normal((4, 64, 64))
    assert abs(neighbour_correlation(white)) < 0.03
    assert neighbour_correlation(gaussian_filter(white, (0, 1, 1))) > 0.5


def test_i0_solver_meets_target_and_survives_a_capped_model():
    def log_law(i0):
        return 10 * np.log10(i0) - 20.0

    i0, value = solve_i0_for_psnr(log_law, 24.44)
    assert abs(value - 24.44) <= 0.02 and i0 == pytest.approx(10**4.444, rel=0.01)

    def saturating(i0):  # starvation-like: gains flatten, so log-linear steps overshoot
        return 30.0 * (1 - np.exp(-np.log10(i0) / 3.0))

    _, value = solve_i0_for_psnr(saturating, 20.0)
    assert abs(value - 20.0) <= 0.02


@pytest.mark.parametrize("noise", ["awgn", "sinogram"])
def test_phantom_dataset_meets_target_with_paper_scaling(tmp_path, noise):
    summary = build_ct_dataset(
        tmp_path / "ct.h5",
        noise=noise,
        level=NoiseLevel(target_psnr_db=24.44),
        seed=3,
        fractions=(0.34, 0.33, 0.33),
        **PHANTOM,
    )
    arrays, attrs = read(summary.path)
    assert arrays["noisy"].shape == (6, 2, 64, 64) and arrays["clean"].shape == (6, 64, 64)
    assert abs(summary.achieved_psnr_db - 24.44) <= 0.1
    assert attrs["scaling_rule"] == "dataset_max" and attrs["scaling_offset"] == 1024.0
    assert attrs["raw_units"] == "hu" and attrs["modality"] == "ct"
    assert np.all(arrays["scale"] == np.float32(summary.divisor))
    assert "hu_window" in attrs and np.isfinite(attrs["achieved_psnr_hu_window_db"])
    if noise == "awgn":  # the original slices; sinogram noise's clean is the noise-free FBP
        assert arrays["clean"].max() == pytest.approx(1.0) and arrays["clean"].min() >= 0.0
    else:
        assert attrs["clean_reference"] == "fbp_noise_free" and "photon_starved" in attrs
    for phantom in np.unique(arrays["object_id"]):  # a phantom never spans two splits
        assert len(np.unique(arrays["split"][arrays["object_id"] == phantom])) == 1
    assert set(arrays["split"].astype(str)) == {"train", "val", "test"}


def test_sinogram_noise_is_correlated_and_awgn_is_white(tmp_path):
    level = NoiseLevel(target_psnr_db=24.44)
    kwargs = {"level": level, "seed": 0, "fractions": (0.67, 0.33), **PHANTOM}
    awgn = build_ct_dataset(tmp_path / "a.h5", noise="awgn", **kwargs)
    sinogram = build_ct_dataset(tmp_path / "s.h5", noise="sinogram", **kwargs)
    assert awgn.details.noise_neighbour_correlation < 0.03
    assert sinogram.details.noise_neighbour_correlation > 0.1
    arrays, _ = read(sinogram.path)  # measured again from the file, not trusted from attrs
    noise = arrays["noisy"] - arrays["clean"][:, None]
    assert neighbour_correlation(noise) > 0.1
    assert np.abs(noise[:, 0] - noise[:, 1]).mean() > 0  # realisations are independent draws
    recorded = {
        name: NoiseCorrelation.from_attrs(summary.attrs.extra)
        for name, summary in (("awgn", awgn), ("sinogram", sinogram))
    }
    assert not recorded["awgn"].is_correlated and recorded["sinogram"].is_correlated
    assert recorded["awgn"].source == "pair-difference"


def test_one_phantom_is_cut_into_slabs_and_the_file_says_so(tmp_path):
    summary = build_ct_dataset(
        tmp_path / "one.h5", source="phantom", size=64, n_phantoms=1, slices_per_phantom=9, seed=1
    )
    arrays, attrs = read(summary.path)
    assert attrs["split_by"] == "slab" and attrs["split_gap"] == 2 and len(arrays["split"]) == 5
    assert arrays["object_id"].astype(str).tolist()[0] == "phantom-000:slab-train"
    assert "split by slab" in summary.describe() and "noise lag-1" in summary.describe()


def test_one_slice_is_cut_into_tiles_of_the_whole_slice(tmp_path):
    kwargs = {"source": "phantom", "size": 160, "n_phantoms": 1, "slices_per_phantom": 1}
    tiles, attrs = read(build_ct_dataset(tmp_path / "r.h5", fractions=(0.5, 0.5), **kwargs).path)
    whole, _ = read(build_ct_dataset(tmp_path / "w.h5", fractions=(1.0, 0.0), **kwargs).path)
    assert attrs["split_by"] == "region" and attrs["split_tile_px"] == 64
    assert tiles["tile_origin"].tolist() == [[0, 0], [0, 72], [72, 0], [72, 72]]  # 8 px gaps
    # all four tiles are equally far from the centre: grid order breaks the tie
    assert tiles["split"].astype(str).tolist() == ["test", "test", "train", "train"]
    for k, (row, col) in enumerate(tiles["tile_origin"]):
        window = (slice(row, row + 64), slice(col, col + 64))
        assert np.array_equal(tiles["clean"][k], whole["clean"][0][window])
        assert np.array_equal(tiles["noisy"][k], whole["noisy"][0][(slice(None), *window)])


def test_same_seed_same_file_other_seed_other_noise(tmp_path):
    kwargs = {"noise": "sinogram", "fractions": (0.67, 0.33), **PHANTOM}
    first, _ = read(build_ct_dataset(tmp_path / "1.h5", seed=5, **kwargs).path)
    again, _ = read(build_ct_dataset(tmp_path / "2.h5", seed=5, **kwargs).path)
    other, _ = read(build_ct_dataset(tmp_path / "3.h5", seed=6, **kwargs).path)
    assert np.array_equal(first["noisy"], again["noisy"])
    assert np.array_equal(first["split"], again["split"])
    assert not np.array_equal(first["clean"], other["clean"])  # other phantoms


@needs_tcga
@pytest.mark.parametrize("noise", ["awgn", "sinogram"])
@pytest.mark.parametrize("target", [24.44, 18.66])
def test_tcga_slices_reach_both_paper_levels(tmp_path, tcga_subset, noise, target):
    summary = build_ct_dataset(
        tmp_path / "ct.h5",
        source=tcga_subset,
        noise=noise,
        size=128,
        level=NoiseLevel(target_psnr_db=target),
        fractions=(0.34, 0.33, 0.33),
    )
    arrays, attrs = read(summary.path)
    assert abs(summary.achieved_psnr_db - target) <= 0.1
    assert summary.n_objects == 3  # PatientID, not file
    assert "resized 512x512 -> 128x128" in attrs["source"]
    assert attrs["target_psnr_scale"].startswith("data_range 1")
    assert summary.divisor == pytest.approx(
        float(np.max(load_ct_source(tcga_subset, size=128).hu)) + 1024
    )
    if noise == "sinogram":
        assert attrs["i0_photons"] == summary.noise_level > 0
        assert attrs["fbp_bias_rmse_hu"] < attrs["target_noise_rmse_hu"]


@needs_tcga
def test_a_bad_file_stops_the_build_before_writing_unless_skip_bad(tmp_path, tcga_subset):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in list(tcga_subset.iterdir())[:3]:
        (folder / path.name).symlink_to(path.resolve())
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    out = tmp_path / "ct.h5"
    with pytest.raises(LowdoseInputError, match="broken.dcm"):
        build_ct_dataset(out, source=folder, size=64, fractions=(0.5, 0.5))
    assert not out.exists()
    summary = build_ct_dataset(out, source=folder, size=64, fractions=(0.5, 0.5), skip_bad=True)
    assert [p.name for p, _ in summary.skipped] == ["broken.dcm"] and summary.n_images == 3


def test_bad_choices_are_one_line_errors(tmp_path):
    with pytest.raises(LowdoseInputError, match="noise="):
        build_ct_dataset(tmp_path / "x.h5", noise="speckle", **PHANTOM)
    with pytest.raises(LowdoseInputError, match="split_by="):
        build_ct_dataset(tmp_path / "x.h5", split_by="image", **PHANTOM)
    assert not (tmp_path / "x.h5").exists()


def test_cli_builds_a_dataset_and_a_preview(tmp_path):
    out, preview = tmp_path / "ct.h5", tmp_path / "preview.png"
    result = CliRunner().invoke(
        lowdose.cli.app,
        [
            "simulate",
            "ct",
            "--source",
            "phantom",
            "--noise",
            "awgn",
            "--target-psnr",
            "18.66",
            "--size",
            "64",
            "--seed",
            "1",
            "--out",
            str(out),
            "--preview",
            str(preview),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "18.6" in result.output and out.exists()
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(
        lowdose.cli.app,
        ["simulate", "ct", "--source", str(tmp_path / "no"), "--out", str(tmp_path / "n.h5")],
    )
    assert bad.exit_code == 1 and "no such file" in " ".join(bad.output.split())


@needs_tcga
@pytest.mark.parametrize("noise", ["awgn", "sinogram"])
def test_hu_window_target_is_met_in_the_window(tmp_path, tcga_subset, noise):
    summary = build_ct_dataset(
        tmp_path / "ct.h5",
        source=tcga_subset,
        noise=noise,
        size=128,
        level=NoiseLevel(target_psnr_db=24.44),
        target_scale="hu_window",
        fractions=(0.34, 0.33, 0.33),
    )
    arrays, attrs = read(summary.path)
    clean_hu = scaled_to_hu(np.repeat(arrays["clean"], 2, axis=0), summary.divisor)
    noisy_hu = scaled_to_hu(arrays["noisy"].reshape(-1, 128, 128), summary.divisor)
    window_db = float(np.mean(psnr_hu_window(clean_hu, noisy_hu)))  # measured from the file
    assert abs(window_db - 24.44) <= 0.1
    assert window_db == pytest.approx(attrs["achieved_psnr_hu_window_db"], abs=1e-3)
    assert attrs["target_scale"] == "hu_window" and attrs["target_psnr_scale"].startswith("hu_win")
    flat_clean = np.repeat(arrays["clean"], 2, axis=0)  # both PSNRs stay in attrs
    unit_db = float(np.mean(psnr(flat_clean, arrays["noisy"].reshape(-1, 128, 128), data_range=1)))
    assert unit_db == pytest.approx(attrs["achieved_psnr_db"], abs=1e-3)
    if noise == "sinogram":  # not photon-starved (~360 at 128^2 whose pixels are 2.8 mm)
        assert attrs["i0_photons"] > 100


def test_default_awgn_is_the_papers_draws_unchanged(tmp_path):
    from lowdose.physics.noise import add_gaussian

    summary = build_ct_dataset(
        tmp_path / "a.h5", noise="awgn", seed=2, fractions=(0.67, 0.33), **PHANTOM
    )
    arrays, attrs = read(summary.path)
    assert attrs["target_scale"] == "data_range_1"
    stream = noise_stream(2, "awgn", 24.44, "data_range_1")
    expected = add_gaussian(
        arrays["clean"][4], attrs["noise_level"], rng=np.random.default_rng([*stream, 4, 1])
    )
    assert np.array_equal(arrays["noisy"][4, 1], expected)


def test_sweep_sinogram_model_meets_targets_with_correlated_noise():
    from lowdose.evaluation.sweep import noise_model_for

    src = load_ct_source("phantom", size=64, n_phantoms=1, slices_per_phantom=2)
    data_max = float(src.hu.max() + 1024)
    clean, scale = hu_to_scaled(src.hu, data_max, clip=True), np.full(2, data_max)
    attrs = DatasetAttrs(modality="ct", noise_model="sinogram", scaling_rule="dataset_max")
    attrs = attrs.with_extra(
        views=90, pixel_mm_mean=float(src.pixel_mm[0]), filter_name="hann", mu_water_per_mm=0.0192
    )
    name, add_noise, solve = noise_model_for(attrs)
    levels = []
    for target in (20.0, 35.0):
        i0 = solve(clean, scale, target)
        noisy = add_noise(clean, scale, i0, np.random.default_rng(7))
        assert noisy.shape == clean.shape and noisy.dtype == np.float32
        assert abs(float(np.mean(psnr(clean, noisy, data_range=1.0))) - target) <= 0.5
        assert neighbour_correlation(noisy - clean) > 0.1
        levels.append(i0)
    assert name == "sinogram" and levels[1] > levels[0] > 0


def test_two_levels_draw_independent_awgn_and_one_level_repeats(tmp_path):
    kwargs = {"noise": "awgn", "seed": 0, "fractions": (0.67, 0.33), **PHANTOM}
    noise = []
    for name, target in (("ct24", 24.44), ("ct18", 18.66), ("again", 24.44)):
        arrays, _ = read(
            build_ct_dataset(
                tmp_path / f"{name}.h5", level=NoiseLevel(target_psnr_db=target), **kwargs
            ).path
        )
        noise.append(arrays["noisy"] - arrays["clean"][:, None])
    assert abs(np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1]) < 0.05  # was exactly 1
    np.testing.assert_array_equal(noise[0], noise[2])


def test_noise_streams_differ_by_model_level_and_scale_only():
    ct24 = noise_stream(0, "awgn", 24.44, "data_range_1")
    assert ct24 == noise_stream(0, "awgn", 24.44, "data_range_1")
    others = [
        noise_stream(0, "awgn", 18.66, "data_range_1"),
        noise_stream(0, "sinogram", 24.44, "data_range_1"),
        noise_stream(0, "awgn", 24.44, "hu_window"),
        noise_stream(1, "awgn", 24.44, "data_range_1"),
    ]
    assert len({tuple(stream) for stream in [ct24, *others]}) == 5
