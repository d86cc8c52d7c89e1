"""Dose-based CT datasets: photons or dose fraction, the noise-free FBP reference, the
photon-starvation check, one scan split into view subsets, and the QA-phantom source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import hu_to_scaled
from lowdose.physics.ct_dose import photons_per_ray_for_dose
from lowdose.physics.ct_noise import angles_for, line_integrals, noisy_sinograms, reconstruct_hu
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct import build_ct_dataset, ct_noise_level
from lowdose.simulate.ct_levels import dose_stream, noise_stream
from lowdose.simulate.ct_source import load_ct_source
from lowdose.simulate.starvation_check import i0_without_starvation, starvation_warning

PHANTOM = {
    "source": "phantom",
    "size": 64,
    "n_phantoms": 3,
    "slices_per_phantom": 2,
    "fractions": (0.67, 0.33),
    "noise": "sinogram",
}
CHECK_KEYS = (
    "mean_bias_rms_hu",
    "mean_bias_p99_hu",
    "noise_sd_hu",
    "bias_to_noise",
    "photon_starved",
    "i0_without_starvation",
    "photons_per_ray",
    "dose_fraction",
    "full_dose_photons_per_ray",
    "full_dose_reference",
    "electronic_noise_counts",
    "filter_name",
    "views",
)


def read(path: Path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as handle:
        return {key: handle[key][()] for key in handle}, dict(handle.attrs)


def phantom_slices(seed: int = 0):
    return load_ct_source("phantom", size=64, seed=seed, n_phantoms=3, slices_per_phantom=2)


def noise_free_fbp(kernel="hann", views=None, seed=0) -> tuple[np.ndarray, float]:
    """The noise-free FBP of the PHANTOM slices on their dataset scale, and the divisor."""
    src = phantom_slices(seed)
    data_max = float(src.hu.max() + 1024)
    angles = angles_for(64, views)
    hu = reconstruct_hu(
        line_integrals(src.hu, src.pixel_mm, angles),
        src.pixel_mm,
        angles,
        size=64,
        filter_name=kernel,
    )
    return hu_to_scaled(hu, data_max), data_max


def test_a_starved_dose_warns_and_its_advice_builds_an_unstarved_set(tmp_path):
    starved = build_ct_dataset(tmp_path / "s.h5", level=NoiseLevel(photons_per_ray=50), **PHANTOM)
    _, attrs = read(starved.path)
    recorded = starved.details.noise.to_attrs()
    assert all(key in attrs and key in recorded for key in CHECK_KEYS)
    assert attrs["photon_starved"] and attrs["bias_to_noise"] > 0.1
    assert attrs["mean_bias_p99_hu"] >= attrs["mean_bias_rms_hu"] > 10.0
    line = starvation_warning(starved.details.sinogram.starvation, 50.0)
    assert line is not None and "\n" not in line and "HU" in line
    advice = float(re.search(r"--photons-per-ray >= (\d+)", line).group(1))
    assert advice >= attrs["i0_without_starvation"] > 50
    fine = build_ct_dataset(tmp_path / "f.h5", level=NoiseLevel(photons_per_ray=advice), **PHANTOM)
    check = fine.details.sinogram.starvation
    assert not check.photon_starved and check.bias_to_noise <= 0.1
    assert check.bias_to_noise > 0.03  # ... and the advice is not wildly generous
    assert starvation_warning(check, advice) is None


def test_a_generous_dose_is_not_starved_and_records_its_dose(tmp_path):
    summary = build_ct_dataset(tmp_path / "g.h5", level=NoiseLevel(photons_per_ray=1e7), **PHANTOM)
    arrays, attrs = read(summary.path)
    assert not attrs["photon_starved"] and attrs["bias_to_noise"] < 0.05
    assert attrs["noise_level"] == attrs["photons_per_ray"] == 1e7
    assert np.isnan(attrs["dose_fraction"])  # photons given, not a fraction
    assert np.isnan(attrs["target_psnr_db"]) and attrs["clean_reference"] == "fbp_noise_free"
    assert attrs["realisations_are"] == "independent_scans" and arrays["noisy"].shape[1] == 2


def test_dose_fraction_sets_photons_by_the_rule_at_the_datasets_geometry(tmp_path):
    summary = build_ct_dataset(
        tmp_path / "d.h5", level=NoiseLevel(dose_fraction=0.25), views=60, **PHANTOM
    )
    _, attrs = read(summary.path)
    expected = photons_per_ray_for_dose(0.25, bin_mm=512.0 / 64, views=60)
    assert attrs["photons_per_ray"] == pytest.approx(expected) and attrs["views"] == 60
    assert attrs["dose_fraction"] == 0.25 == pytest.approx(attrs["dose_fraction_equivalent"])


@pytest.mark.parametrize("kernel", ["hann", "shepp-logan"])
def test_the_clean_images_are_the_noise_free_fbp_on_both_paths(tmp_path, kernel):
    expected, data_max = noise_free_fbp(kernel)
    for name, level in (
        ("dose", NoiseLevel(photons_per_ray=1e5)),
        ("target", NoiseLevel(target_psnr_db=30.0)),
    ):
        summary = build_ct_dataset(
            tmp_path / f"{name}.h5", filter_name=kernel, level=level, **PHANTOM
        )
        arrays, attrs = read(summary.path)
        assert attrs["clean_reference"] == "fbp_noise_free" and attrs["filter_name"] == kernel
        assert summary.divisor == pytest.approx(data_max)
        np.testing.assert_allclose(arrays["clean"], expected, atol=1e-6)


def test_the_target_path_keeps_its_noise_draws(tmp_path):
    summary = build_ct_dataset(
        tmp_path / "t.h5", level=NoiseLevel(target_psnr_db=24.44), seed=4, **PHANTOM
    )
    arrays, attrs = read(summary.path)
    src = phantom_slices(seed=4)
    angles = angles_for(64)
    sinogram = line_integrals(src.hu[3:4], src.pixel_mm[3:4], angles)
    rng = np.random.default_rng([*noise_stream(4, "sinogram", 24.44, "data_range_1"), 3, 1])
    scan = noisy_sinograms(sinogram, attrs["i0_photons"], rngs=[rng])
    hu = reconstruct_hu(scan, src.pixel_mm[3:4], angles, size=64)
    np.testing.assert_allclose(
        arrays["noisy"][3, 1], hu_to_scaled(hu[0], summary.divisor), atol=1e-6
    )
    assert abs(summary.achieved_psnr_db - 24.44) <= 0.1  # against the noise-free FBP


def test_electronic_noise_raises_the_image_noise(tmp_path):
    level = NoiseLevel(photons_per_ray=2e3)
    quiet = build_ct_dataset(tmp_path / "q.h5", level=level, **PHANTOM).details.sinogram
    loud = build_ct_dataset(
        tmp_path / "l.h5", level=level, electronic_noise_counts=5.0, **PHANTOM
    ).details.sinogram
    assert loud.electronic_noise_counts == 5.0
    assert loud.starvation.noise_sd_hu > 1.05 * quiet.starvation.noise_sd_hu


def test_view_subsets_split_one_scan_and_average_to_its_full_view_fbp(tmp_path):
    summary = build_ct_dataset(
        tmp_path / "v.h5",
        level=NoiseLevel(photons_per_ray=1e4),
        view_subsets=3,
        views=90,
        seed=2,
        realisations=5,
        **PHANTOM,
    )
    arrays, attrs = read(summary.path)
    assert arrays["noisy"].shape == (6, 3, 64, 64)  # K images per slice, realisations ignored
    assert attrs["realisations_are"] == "view_subsets" and attrs["view_subsets"] == 3
    expected, data_max = noise_free_fbp(views=90, seed=2)
    np.testing.assert_allclose(arrays["clean"], expected, atol=1e-6)  # the full-view FBP
    src = phantom_slices(seed=2)
    angles = angles_for(64, 90)
    rng = np.random.default_rng([*dose_stream(2, 1e4, 0.0), 5, 0])
    scan = noisy_sinograms(line_integrals(src.hu[5:6], src.pixel_mm[5:6], angles), 1e4, rngs=[rng])
    full = hu_to_scaled(reconstruct_hu(scan, src.pixel_mm[5:6], angles, size=64)[0], data_max)
    np.testing.assert_allclose(arrays["noisy"][5].mean(axis=0), full, atol=1e-5)


def test_one_split_scan_is_the_first_of_two_scans_at_the_same_dose(tmp_path):
    # ct-dose's arms compare exactly paired: the split scan's input is the two-scan set's first
    options = {"level": NoiseLevel(photons_per_ray=1e4), "views": 90, "seed": 2, **PHANTOM}
    split = read(build_ct_dataset(tmp_path / "s.h5", view_subsets=2, **options).path)[0]
    two = read(build_ct_dataset(tmp_path / "t.h5", realisations=2, **options).path)[0]
    np.testing.assert_allclose(split["noisy"].mean(axis=1), two["noisy"][:, 0], atol=1e-5)
    assert not np.allclose(two["noisy"][:, 1], two["noisy"][:, 0], atol=1e-3)


def test_the_qa_phantom_is_one_test_object_with_its_geometry_in_the_file(tmp_path):
    summary = build_ct_dataset(
        tmp_path / "qa.h5",
        source="qa-phantom",
        noise="sinogram",
        level=NoiseLevel(photons_per_ray=1e5),
        size=64,
        split_by="slab",
    )
    arrays, attrs = read(summary.path)
    assert arrays["noisy"].shape == (3, 2, 64, 64)
    assert set(arrays["split"].astype(str)) == {"test"}
    assert set(arrays["object_id"].astype(str)) == {"qa-phantom"}
    geometry = json.loads(attrs["qa_phantom"])
    assert geometry["modules"] == ["sensitometry", "low_contrast", "uniform"]
    assert len(geometry["inserts"]) > 6 and attrs["qa_size"] == 64
    assert attrs["clean_reference"] == "fbp_noise_free" and not attrs["photon_starved"]


@pytest.mark.parametrize(
    ("levels", "options", "message"),
    [
        ({"photons_per_ray": 1e4, "dose_fraction": 0.5}, {}, "exclude each other"),
        ({"photons_per_ray": 1e4}, {"noise": "awgn"}, "--noise sinogram"),
        ({"photons_per_ray": 1e4, "target_psnr_db": 20.0}, {}, "--target-psnr"),
        ({}, {"electronic_noise_counts": 3.0}, "needs a dose"),
        ({}, {"view_subsets": 2}, "--view-subsets"),
        ({"photons_per_ray": 1e4}, {"view_subsets": 1}, "--view-subsets"),
        ({"dose_fraction": -1.0}, {}, "--dose-fraction"),
        ({}, {"filter_name": "cosine"}, "--kernel"),
    ],
)
def test_options_that_do_not_fit_are_one_line_errors_and_write_nothing(
    tmp_path, levels, options, message
):
    kwargs = {**PHANTOM, **options}
    with pytest.raises(LowdoseInputError, match=message) as error:
        level = ct_noise_level(kwargs["noise"], **levels)  # the command line's options
        build_ct_dataset(tmp_path / "x.h5", level=level, **kwargs)
    assert "\n" not in str(error.value) and not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    ("level", "message"),
    [({"photons_per_pixel": 300.0}, "photons_per_pixel=300"), ({"sigma": 0.1}, "sigma=0.1")],
)
def test_a_level_a_ct_dataset_cannot_take_is_a_one_line_error(tmp_path, level, message):
    with pytest.raises(LowdoseInputError, match=message):
        build_ct_dataset(tmp_path / "x.h5", level=NoiseLevel(**level), **PHANTOM)
    assert not (tmp_path / "x.h5").exists()


def test_i0_without_starvation_inverts_a_power_law_exactly():
    # bias 100 HU at I0 100 falling as 1/I0, SD 20 HU as 1/sqrt(I0): the ratio, 5 at 100
    # photons, goes as I0^-1/2 and reaches 0.1 at 100 x 50^2
    level = i0_without_starvation(100.0, 100.0, 20.0, lambda i0: 100.0 * 100.0 / i0)
    assert level == pytest.approx(250_000.0, rel=1e-6)
    # a bias falling as I0^-1.5 (ratio 5 x 100 / I0) is followed by the refinement: 5,000
    level = i0_without_starvation(100.0, 100.0, 20.0, lambda i0: 100.0 * (100.0 / i0) ** 1.5)
    assert level == pytest.approx(5_000.0, rel=0.02)
    # the SD may come from elsewhere (the builder scales it by the exact estimator variance)
    level = i0_without_starvation(
        100.0, 100.0, 20.0, lambda i0: 100.0 * 100.0 / i0, lambda i0: 20.0 * (100.0 / i0) ** 0.25
    )
    assert level == pytest.approx(100.0 * 50.0 ** (4 / 3), rel=0.02)
