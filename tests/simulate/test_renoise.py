"""A dataset file re-noised to a lower dose from its noisy realisations alone.

Statistical checks allow 5 standard errors of the sample statistic: a wrong noise model (a
variance off by the factor p, shared draws between realisations) fails them, chance does not.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import write_tiny_dataset
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split, read_attrs, read_info
from lowdose.data.writer import write_dataset
from lowdose.simulate.renoise import renoise_dataset

DATA_MAX = 3000.0  # CT divisor: scaled = (HU + 1024) / DATA_MAX


def _write_awgn(
    path: Path, *, sigma=0.02, noise_model="gaussian", with_clean=True, seed=0, level=None
):
    """A CT-like AWGN file: 6 smooth 64x64 slices of 3 patients, N = 2, one fov mask.

    ``level``: the ``noise_level`` attribute, if not ``sigma``.
    """
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, 64)
    clean = 0.3 + 0.2 * np.sin(6 * rows[None, :, None] + rng.uniform(0, 6, (6, 1, 1))) * rows
    clean = np.broadcast_to(clean, (6, 64, 64)).astype(np.float32)
    noisy = clean[:, None] + sigma * rng.standard_normal((6, 2, 64, 64))
    attrs = DatasetAttrs(
        modality="ct",
        noise_model=noise_model,
        scaling_rule="dataset_max",
        noise_level=sigma if level is None else level,
        target_psnr_db=33.98,
        scaling_offset=1024.0,
        raw_units="hu",
        seed=seed,
        description="tests/simulate/test_renoise.py AWGN file",
    ).with_extra(sigma_hu=sigma * DATA_MAX, achieved_psnr_hu_window_db=1.0, split_by="patient")
    fov = np.ones((6, 64, 64), bool)
    fov[:, :4] = False
    return write_dataset(
        path,
        clean=clean if with_clean else None,
        noisy=noisy.astype(np.float32),
        object_id=np.repeat(["p0", "p1", "p2"], 2),
        split=np.repeat(["train", "val", "test"], 2),
        scale=np.full(6, DATA_MAX),
        attrs=attrs,
        fov=fov,
    )


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with h5py.File(path, "r") as handle:
        return handle["noisy"][()], handle["clean"][()] if "clean" in handle else None


def test_thinned_xray_file_is_poisson_at_p_times_the_dose(tmp_path):
    photons, p = 1000.0, 0.25
    source = write_tiny_dataset(tmp_path / "x.h5", photons_per_pixel=photons, n_realisations=3)
    summary = renoise_dataset(source, tmp_path / "x-q.h5", p, seed=3)
    noisy, clean = _arrays(summary.path)
    scale = np.asarray(h5py.File(source, "r")["scale"][()], np.float64)[:, None, None, None]
    assert summary.attrs.noise_level == pytest.approx(p * photons)
    counts = noisy * scale * p * photons  # back on the integer count grid of the new dose
    assert np.allclose(counts, np.rint(counts), atol=2e-3)
    # stored = Poisson(p N t) / (p N) / peak, clean = t / peak: variance clean / (p N peak)
    z = (noisy - clean[:, None]) / np.sqrt(clean[:, None] / (p * photons * scale))
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert z.var() == pytest.approx(1.0, abs=5 * math.sqrt(3 / n))  # Poisson kurtosis: <= 3/n


def test_added_gaussian_noise_reaches_sigma_over_sqrt_p_and_psnr_is_measured_again(tmp_path):
    source = _write_awgn(tmp_path / "ct.h5", sigma=0.02)
    summary = renoise_dataset(source, tmp_path / "ct-q.h5", 0.25)
    noisy, clean = _arrays(summary.path)
    residual = (noisy - clean[:, None]).astype(np.float64)
    assert summary.attrs.noise_level == pytest.approx(0.04)
    assert residual.std() == pytest.approx(0.04, rel=5 / math.sqrt(2 * residual.size))
    stack = noisy.reshape(-1, 64, 64)
    measured = np.mean(psnr(np.repeat(clean, 2, axis=0), stack, data_range=1.0))
    assert summary.attrs.achieved_psnr_db == pytest.approx(measured, abs=1e-6)
    assert summary.attrs.achieved_psnr_db == pytest.approx(-20 * math.log10(0.04), abs=0.1)
    assert math.isnan(summary.attrs.target_psnr_db)  # the level follows from p, not a target
    # the HU-window PSNR is measured again (the stale source value 1.0 is gone)
    assert summary.attrs.extra["achieved_psnr_hu_window_db"] > 20
    assert "sigma_hu" not in summary.attrs.extra


def test_realisations_are_re_noised_independently(tmp_path):
    source = _write_awgn(tmp_path / "ct.h5", sigma=0.02)
    out = renoise_dataset(source, tmp_path / "ct-q.h5", 0.1).path
    before, _ = _arrays(source)
    after, _ = _arrays(out)
    added = (after - before).astype(np.float64)  # (I, 2, H, W): the extra noise of each
    first, second = added[:, 0].ravel(), added[:, 1].ravel()
    assert abs(np.corrcoef(first, second)[0, 1]) < 5 / math.sqrt(first.size)
    # and the thinning of two Poisson realisations removes independent photons
    xray = write_tiny_dataset(tmp_path / "x.h5", n_realisations=2)
    thinned, _ = _arrays(renoise_dataset(xray, tmp_path / "x-q.h5", 0.5).path)
    removed = (_arrays(xray)[0] - thinned).astype(np.float64)
    corr = np.corrcoef(removed[:, 0].ravel(), removed[:, 1].ravel())[0, 1]
    assert abs(corr) < 5 / math.sqrt(removed[:, 0].size)


def test_clean_is_copied_untouched_and_never_shapes_the_noise(tmp_path):
    with_clean = _write_awgn(tmp_path / "a.h5", with_clean=True)
    without = _write_awgn(tmp_path / "b.h5", with_clean=False)
    source_bytes = with_clean.read_bytes()
    a = renoise_dataset(with_clean, tmp_path / "a-q.h5", 0.3, seed=1).path
    b = renoise_dataset(without, tmp_path / "b-q.h5", 0.3, seed=1).path
    (noisy_a, clean_a), (noisy_b, clean_b) = _arrays(a), _arrays(b)
    assert np.array_equal(noisy_a, noisy_b)  # the same noise whether or not clean exists
    assert clean_b is None and math.isnan(read_attrs(b).achieved_psnr_db)
    assert np.array_equal(clean_a, _arrays(with_clean)[1])
    assert with_clean.read_bytes() == source_bytes  # the source file is not modified
    info, source_info = read_info(a), read_info(with_clean)
    assert np.array_equal(info.object_id, source_info.object_id)
    assert np.array_equal(info.split, source_info.split)
    fov = load_split(a, "test").fov
    assert fov is not None and not fov[:, :4].any() and fov[:, 4:].all()


def test_same_seed_same_file_other_seed_other_noise_full_dose_copies(tmp_path):
    source = write_tiny_dataset(tmp_path / "x.h5")
    first = _arrays(renoise_dataset(source, tmp_path / "1.h5", 0.4, seed=5).path)[0]
    again = _arrays(renoise_dataset(source, tmp_path / "2.h5", 0.4, seed=5).path)[0]
    other = _arrays(renoise_dataset(source, tmp_path / "3.h5", 0.4, seed=6).path)[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    full = _arrays(renoise_dataset(source, tmp_path / "4.h5", 1.0).path)[0]
    assert np.allclose(full, _arrays(source)[0], rtol=1e-6)


def test_provenance_attributes_name_the_source_and_the_fraction(tmp_path):
    source = write_tiny_dataset(tmp_path / "x.h5", photons_per_pixel=800.0)
    attrs = renoise_dataset(source, tmp_path / "x-q.h5", 0.5, seed=2).attrs
    extra = attrs.extra
    assert extra["renoised_from"] == "x.h5" and extra["renoised_dose_fraction"] == 0.5
    assert extra["renoised_from_noise_level"] == 800.0 and extra["renoise_seed"] == 2
    assert extra["renoised_from_achieved_psnr_db"] == pytest.approx(
        read_attrs(source).achieved_psnr_db
    )
    assert extra["noise_corr_source"] and abs(extra["noise_corr_lag1_row"]) < 0.1  # white noise
    assert attrs.description.startswith("Re-noised to 0.5 of the dose of x.h5")
    assert attrs.achieved_psnr_db < read_attrs(source).achieved_psnr_db - 2.5  # ~3 dB lower


def test_a_failed_write_leaves_no_file_and_keeps_an_old_one(tmp_path):
    source = write_tiny_dataset(tmp_path / "x.h5")

    def interrupt(stage, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        renoise_dataset(source, tmp_path / "new.h5", 0.5, progress=interrupt)
    assert not (tmp_path / "new.h5").exists()
    old = tmp_path / "old.h5"
    old.write_bytes(b"previous file")
    with pytest.raises(KeyboardInterrupt):
        renoise_dataset(source, old, 0.5, progress=interrupt)
    assert old.read_bytes() == b"previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5", "x.h5"]  # no temporaries


@pytest.mark.parametrize(
    ("noise_model", "needle"), [("sinogram", "sinogram"), ("measured", "measured")]
)
def test_noise_that_cannot_be_re_noised_is_one_error_line(tmp_path, noise_model, needle):
    source = _write_awgn(tmp_path / "s.h5", noise_model=noise_model)
    with pytest.raises(LowdoseInputError) as error:
        renoise_dataset(source, tmp_path / "q.h5", 0.5)
    message = str(error.value)
    assert "\n" not in message and str(source) in message and needle in message
    assert not (tmp_path / "q.h5").exists()


@pytest.mark.parametrize(
    ("fraction", "seed", "needle"),
    [(0.0, 0, "dose_fraction"), (1.5, 0, "above the acquired dose"), (0.5, -1, "seed=-1")],
)
def test_bad_fraction_or_seed_is_one_error_line(tmp_path, fraction, seed, needle):
    source = write_tiny_dataset(tmp_path / "x.h5")
    with pytest.raises(LowdoseInputError, match=needle) as error:
        renoise_dataset(source, tmp_path / "q.h5", fraction, seed=seed)
    assert "\n" not in str(error.value)


def test_the_copy_may_not_overwrite_its_source(tmp_path):
    source = write_tiny_dataset(tmp_path / "x.h5")
    with pytest.raises(LowdoseInputError, match="would overwrite its source"):
        renoise_dataset(source, tmp_path / "." / "x.h5", 0.5)


def test_a_file_without_its_noise_level_says_to_rebuild(tmp_path):
    source = _write_awgn(tmp_path / "ct.h5", level=float("nan"))
    with pytest.raises(LowdoseInputError, match="noise_level is nan.*rebuild"):
        renoise_dataset(source, tmp_path / "q.h5", 0.5)


def test_a_noise_level_that_does_not_match_the_stored_counts_is_refused(tmp_path):
    source = write_tiny_dataset(tmp_path / "x.h5", photons_per_pixel=1000.0)
    with h5py.File(source, "a") as handle:
        handle.attrs["noise_level"] = 1300.0  # not the photons the values were stored with
    with pytest.raises(LowdoseInputError, match="noise_level .* or scale does not match") as error:
        renoise_dataset(source, tmp_path / "q.h5", 0.5)
    assert str(error.value).startswith(f"{source}: ") and "\n" not in str(error.value)
    assert not (tmp_path / "q.h5").exists()
