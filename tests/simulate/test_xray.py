"""X-ray dataset builder: file layout, paper scaling, dose solve, determinism, CLI."""

import h5py
import numpy as np
import pytest
import typer.testing

import lowdose.cli
import lowdose.cli.simulate_xray_cmd  # noqa: F401  (registers `simulate xray`)
from lowdose.core.errors import LowdoseInputError
from lowdose.core.noise_correlation import NoiseCorrelation
from lowdose.data.split_plan import plan_split
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.physics.projection import projection_angles
from lowdose.simulate.xray import (
    PAPER_FRACTIONS,
    build_xray_dataset,
    simulate_phantom_projections,
    view_angles,
)

SMALL = {"phantoms": 4, "angles": 4, "size": 48, "realisations": 2, "seed": 11}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("xray") / "xray.h5"
    stages = []
    summary = build_xray_dataset(path, **SMALL, progress=lambda *args: stages.append(args))
    return path, summary, stages


def test_layout_counts_and_split_by_phantom(built):
    path, summary, stages = built
    with h5py.File(path, "r") as f:
        assert f["clean"].shape == (16, 48, 48) and f["noisy"].shape == (16, 2, 48, 48)
        ids = f["object_id"].asstr()[...]
        split = f["split"].asstr()[...]
        attrs = dict(f.attrs)
    for phantom in np.unique(ids):
        assert len(set(split[ids == phantom])) == 1  # a phantom never spans two splits
    assert set(split) == {"train", "val", "test"}
    assert attrs["n_train_images"] == summary.split_counts["train"] == np.sum(split == "train")
    assert attrs["n_train_pairs_n2n"] == summary.split_counts["train"] * 2
    assert attrs["modality"] == "xray" and attrs["scaling_rule"] == "per_image_max"
    assert attrs["raw_units"] == "transmission" and attrs["noise_model"] == "poisson"
    assert ("phantoms", 4, 4) in stages and ("noise", 4, 4) in stages


def test_paper_scaling_clean_max_one_noisy_same_divisor(built):
    path, summary, _ = built
    with h5py.File(path, "r") as f:
        clean, noisy, scale = f["clean"][...], f["noisy"][...], f["scale"][...]
    np.testing.assert_allclose(clean.max(axis=(1, 2)), 1.0, rtol=1e-6)
    assert np.all((scale > 0.5) & (scale <= 1.0))  # air around the body: t ~ 1
    assert noisy.max() > 1.0  # noisy copies share the clean divisor, so they may exceed 1
    counts = noisy * scale[:, None, None, None] * summary.noise_level
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-2)  # whole photon counts


def test_dose_is_solved_for_the_target_baseline(built):
    path, summary, _ = built
    assert abs(summary.achieved_psnr_db - 29.91) < 0.15  # 32 small images: sampling spread
    assert 100 < summary.noise_level < 1000
    with h5py.File(path, "r") as f:
        assert f.attrs["noise_level"] == pytest.approx(summary.noise_level)
        assert f.attrs["achieved_psnr_db"] == pytest.approx(summary.achieved_psnr_db)


def test_same_seed_same_file_whatever_the_worker_count(built, tmp_path):
    path, _, _ = built
    other = build_xray_dataset(tmp_path / "w2.h5", **SMALL, workers=2)
    with h5py.File(path, "r") as a, h5py.File(other.path, "r") as b:
        for key in ("clean", "noisy", "scale"):
            np.testing.assert_array_equal(a[key][...], b[key][...])
        np.testing.assert_array_equal(a["split"][...], b["split"][...])


def test_fixed_photons_and_bad_arguments(tmp_path):
    summary = build_xray_dataset(
        tmp_path / "p.h5",
        phantoms=2,
        angles=2,
        size=32,
        level=NoiseLevel(photons_per_pixel=500.0),
        geometry="cone",
        fractions=(0.5, 0.0, 0.5),
    )
    assert summary.noise_level == 500.0
    with h5py.File(summary.path, "r") as f:
        assert np.isnan(f.attrs["target_psnr_db"]) and f.attrs["noise_level"] == 500.0
    with pytest.raises(LowdoseInputError, match="exactly one"):
        NoiseLevel(target_psnr_db=29.91, photons_per_pixel=300.0)
    with pytest.raises(LowdoseInputError, match="photons_per_ray=300: an X-ray dataset takes"):
        build_xray_dataset(tmp_path / "x.h5", level=NoiseLevel(photons_per_ray=300.0))
    with pytest.raises(LowdoseInputError, match="geometry"):
        build_xray_dataset(tmp_path / "x.h5", geometry="fan")


def test_cli_writes_dataset_and_preview(tmp_path):
    out, png = tmp_path / "cli.h5", tmp_path / "preview.png"
    args = [
        "simulate",
        "xray",
        "--phantoms",
        "2",
        "--angles",
        "2",
        "--size",
        "32",
        "--val-fraction",
        "0",
        "--out",
        str(out),
        "--preview",
        str(png),
    ]
    result = typer.testing.CliRunner().invoke(lowdose.cli.app, args)
    assert result.exit_code == 0, result.output
    assert out.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "baseline" in result.output
    bad = typer.testing.CliRunner().invoke(
        lowdose.cli.app, ["simulate", "xray", "--photons", "-1", "--out", str(tmp_path / "b.h5")]
    )
    assert bad.exit_code == 1 and "photons" in bad.output


def mirror_pairs(views: np.ndarray, threshold: float = 0.999) -> set[tuple[int, int]]:
    """Ordered pairs (i, j), i != j, whose view i correlates above ``threshold`` with view j
    mirrored left-right about the rotation axis (detector column X // 2)."""
    width = views.shape[-1]
    mirrored = views[..., (2 * (width // 2) - np.arange(width)) % width]
    a = views.reshape(len(views), -1) - views.mean(axis=(1, 2))[:, None]
    m = mirrored.reshape(len(views), -1) - mirrored.mean(axis=(1, 2))[:, None]
    corr = (a @ m.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(m, axis=1))
    np.fill_diagonal(corr, -1.0)
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(corr > threshold), strict=True)}


def test_parallel_views_span_180_degrees_so_no_view_mirrors_another(built):
    path, _, _ = built
    assert view_angles(4).tolist() == [0.0, 45.0, 90.0, 135.0]
    assert view_angles(4, "cone").tolist() == [0.0, 90.0, 180.0, 270.0]
    with h5py.File(path, "r") as f:
        clean, ids = f["clean"][...], f["object_id"].asstr()[...]
        assert f.attrs["view_span_deg"] == 180.0 and "180 * k" in f.attrs["view_angles_rule"]
    for phantom in np.unique(ids):
        assert mirror_pairs(clean[ids == phantom]) == set()


def test_the_mirror_check_finds_the_pairs_of_views_over_360_degrees():
    rng = np.random.default_rng(3)
    _, _, old = simulate_phantom_projections(48, projection_angles(4), rng=rng)  # 0, 90, 180, 270
    assert mirror_pairs(old) == {(0, 2), (2, 0), (1, 3), (3, 1)}


def test_two_doses_draw_independent_noise_and_one_dose_repeats(tmp_path):
    small = {"phantoms": 2, "angles": 2, "size": 32, "fractions": (0.5, 0.5), "seed": 4}
    noise = []
    for name, photons in (("a", 300.0), ("b", 600.0), ("c", 300.0)):
        level = NoiseLevel(photons_per_pixel=photons)
        summary = build_xray_dataset(tmp_path / f"{name}.h5", level=level, **small)
        with h5py.File(summary.path, "r") as f:
            noise.append(f["noisy"][...] - f["clean"][...][:, None])
    assert abs(np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1]) < 0.05
    np.testing.assert_array_equal(noise[0], noise[2])


def test_two_phantoms_are_cut_into_slabs_of_views_written_block_by_block(tmp_path):
    level = NoiseLevel(photons_per_pixel=400.0)
    kwargs = {"phantoms": 2, "angles": 9, "size": 32, "seed": 3, "level": level}
    slab = build_xray_dataset(tmp_path / "slab.h5", **kwargs)
    whole = build_xray_dataset(tmp_path / "whole.h5", fractions=(0.5, 0.5), **kwargs)
    assert whole.attrs.extra["split_by"] == "patient"
    extra = slab.attrs.extra
    assert extra["split_by"] == "slab" and extra["split_gap"] == 2 and slab.n_images == 2 * 5
    ids = np.repeat(["phantom-0000", "phantom-0001"], 9)
    plan = plan_split(
        ids, image_shape=(32, 32), rng=np.random.default_rng(0), fractions=PAPER_FRACTIONS
    )
    with h5py.File(slab.path, "r") as a, h5py.File(whole.path, "r") as b:
        assert a["object_id"].asstr()[...].tolist() == plan.object_id.tolist()
        for key in ("clean", "noisy", "scale"):  # the kept views, unchanged
            np.testing.assert_array_equal(a[key][...], b[key][...][plan.source_index])
    correlation = NoiseCorrelation.from_attrs(extra)
    assert correlation.source == "pair-difference" and not correlation.is_correlated
    assert "split by slab" in slab.describe()
    one = build_xray_dataset(tmp_path / "one.h5", **{**kwargs, "phantoms": 1})  # no dead end
    assert one.n_images == 5 and one.split_counts == {"train": 3, "val": 1, "test": 1}
