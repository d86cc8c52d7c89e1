"""Split-projection datasets (Noise2Inverse-style) from single scans, and sinogram reading.

Sinograms are made from a few shared TCGA-LUAD slices (downsampled to 128^2) with Poisson noise
(lowdose.physics.radon.radon_2d + lowdose.physics.noise.add_poisson_post_log).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.dataset_cmd  # noqa: F401  (registers the commands)
from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import load_split, read_info
from lowdose.io.images import read_ct
from lowdose.io.sinogram import parse_angles, read_sinogram_stack
from lowdose.owndata.split_sinogram import build_from_sinogram, split_reconstructions, view_subsets
from lowdose.physics.flat_field import log_normalise
from lowdose.physics.noise import ZERO_COUNT_FLOOR, add_poisson_post_log
from lowdose.physics.radon import fbp_2d, radon_2d

N_VIEWS = 120
I0 = 2e4


@pytest.fixture(scope="module")
def scans(tmp_path_factory, tcga_dir):
    """Noisy and clean sinograms of 4 slices (4 patients, one .npy each), and the angles."""
    stack = read_ct(tcga_dir)
    rows = [0, 10, 20, 30]
    hu = stack.hu[rows].reshape(4, 128, 4, 128, 4).mean(axis=(2, 4))
    mu = np.clip(hu + 1024.0, 0, None) / 1024.0 * 0.0195 * 0.78 * 4  # 1/pixel
    angles = np.arange(N_VIEWS) * (180.0 / N_VIEWS)
    clean = np.maximum(radon_2d(mu, angles), 0)  # (4, A, D)
    noisy = add_poisson_post_log(clean, I0, rng=np.random.default_rng(0))
    root = tmp_path_factory.mktemp("sino")
    noisy_paths, clean_paths = [], []
    for k in range(4):
        noisy_paths.append(root / f"scan{k}.npy")
        clean_paths.append(root / f"scan{k}_clean.npy")
        np.save(noisy_paths[-1], noisy[k])
        np.save(clean_paths[-1], clean[k])
    return root, noisy_paths, clean_paths, angles, clean, noisy


def test_view_subsets_are_disjoint_interleaved_and_complete():
    subsets = view_subsets(10, 3)
    assert [s.tolist() for s in subsets] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(LowdoseInputError):
        view_subsets(10, 1)


def test_split_dataset_has_independent_noise_across_splits(scans):
    root, noisy_paths, clean_paths, angles, clean, noisy = scans
    summary = build_from_sinogram(
        noisy_paths,
        root / "split.h5",
        angles_deg="0:180",
        splits=2,
        output_size=128,
        clean_sinogram_paths=clean_paths,
        fractions=(0.5, 0.25, 0.25),
    )
    info = read_info(summary.path)
    assert info.shape == (4, 2, 128, 128) and info.has_clean
    assert info.attrs.extra["clean_reference"].startswith(
        "full-view FBP of the noise-free sinogram"
    )
    assert summary.details.views_per_split == (60, 60)
    with h5py.File(summary.path, "r") as handle:
        stored, reference = handle["noisy"][()], handle["clean"][()]
    # clean = full-view FBP of the noise-free sinogram, on the dataset scale
    expected = fbp_2d(clean, angles, output_size=128, filter_name="ramp") / summary.divisor
    np.testing.assert_allclose(reference, expected, atol=1e-5)
    # the noise of each split: its FBP minus the same split's FBP of the noise-free sinogram
    noise = stored - split_reconstructions(clean, angles, splits=2, output_size=128) / (
        summary.divisor
    )
    inside = np.hypot(*np.mgrid[-64:64, -64:64]) < 60  # the reconstructed disc
    first, second = noise[:, 0][:, inside].ravel(), noise[:, 1][:, inside].ravel()
    assert np.std(first) > 0.01 and np.std(second) > 0.01
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.02
    # the two halves average to the full-view noisy FBP (FBP is linear)
    full = fbp_2d(noisy, angles, output_size=128, filter_name="ramp") / summary.divisor
    np.testing.assert_allclose(stored.mean(axis=1), full, atol=1e-4)
    assert load_split(summary.path, "train").noisy.shape[1] == 2


def test_cli_from_sinogram_with_tiff_and_hdf5(scans, tmp_path):
    _root, _paths, _clean_paths, _angles, _clean, noisy = scans
    tifffile.imwrite(tmp_path / "a.tif", noisy[:2].astype(np.float32))
    with h5py.File(tmp_path / "b.h5", "w") as handle:
        handle["entry/sino"] = noisy[2:]
        handle["entry/other"] = np.zeros(3)
    np.savetxt(tmp_path / "angles.txt", np.arange(N_VIEWS) * 1.5)
    assert read_sinogram_stack(tmp_path / "b.h5", dataset_key="entry/sino").shape[0] == 2
    with pytest.raises(LowdoseInputError, match="dataset-key"):
        read_sinogram_stack(tmp_path / "b.h5")
    runner = CliRunner()
    args = [
        "dataset",
        "from-sinogram",
        str(tmp_path / "a.tif"),
        "--angles",
        str(tmp_path / "angles.txt"),
        "--out",
        str(tmp_path / "t.h5"),
        "--objects",
        "image",
        "--fractions",
        "0.5,0.5",
    ]
    result = runner.invoke(lowdose.cli.app, args)
    assert result.exit_code == 0, result.output
    assert "2 view subsets" in result.output and read_info(tmp_path / "t.h5").shape[:2] == (2, 2)
    bad = runner.invoke(lowdose.cli.app, [*args[:4], "0:180:90", *args[5:]])
    assert bad.exit_code == 1 and "90 finite values" in bad.output


def test_pre_log_counts_use_the_noise_modules_floor():
    rng = np.random.default_rng(5)
    line = np.abs(rng.normal(3.0, 2.0, size=(30, 40)))
    photons = 200.0
    expected = add_poisson_post_log(line, photons, rng=np.random.default_rng(9))
    counts = np.random.default_rng(9).poisson(photons * np.exp(-line))
    dark = 7.0
    got = log_normalise(counts + dark, np.full(40, photons + dark), np.full(40, dark))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.any(counts == 0) and ZERO_COUNT_FLOOR == 0.5
    with pytest.raises(LowdoseInputError, match="flat - dark"):
        log_normalise(counts, np.zeros(40), None)


def test_angle_specifications():
    assert np.allclose(parse_angles("0:180", 4), [0, 45, 90, 135])
    assert np.allclose(parse_angles("0:360:3", 3), [0, 120, 240])
    assert np.allclose(parse_angles(np.arange(3.0), 3), [0, 1, 2])
    for spec in ("0:180:x", "nonsense.txt"):
        with pytest.raises(LowdoseInputError):
            parse_angles(spec, 4)


def test_one_scan_of_a_few_slices_is_cut_into_slabs(scans, tmp_path):
    _root, _paths, _clean, _angles, _, noisy = scans
    np.save(tmp_path / "volume.npy", noisy)  # one file: 4 slices of one object
    one = [tmp_path / "volume.npy"]
    summary = build_from_sinogram(
        one, tmp_path / "slab.h5", angles_deg="0:180", output_size=64, fractions=(0.5, 0.5)
    )
    info = read_info(summary.path)
    assert info.attrs.extra["split_by"] == "slab" and info.shape[0] == 4 - 2
    assert info.object_id.tolist() == ["volume:slab-train", "volume:slab-test"]
    legacy = build_from_sinogram(
        [tmp_path / "volume.npy"],
        tmp_path / "image.h5",
        angles_deg="0:180",
        output_size=64,
        split_by="image",
    )
    assert legacy.attrs.extra["split_by"] == "patient" and legacy.n_objects == 4  # per slice
    with pytest.raises(LowdoseInputError, match="1,0,0"):  # 64 px: no room for 3 tiles
        build_from_sinogram(
            [tmp_path / "volume.npy"], tmp_path / "x.h5", angles_deg="0:180", output_size=64
        )
