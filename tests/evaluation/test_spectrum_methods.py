"""BM3D given the noise power spectrum: the PSD path runs (np.trapz guarded), beats the white
rule on correlated noise, and its clean-free tunings never read a clean image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi

from lowdose.baselines.filters import denoise_bm3d
from lowdose.baselines.spectrum_tuning import tune_psd_scale_oracle, tune_psd_scale_pairs
from lowdose.baselines.tuning_kinds import parse_tunings
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.writer import write_dataset
from lowdose.evaluation.evaluate import evaluate
from lowdose.physics.noise_spectrum import pair_noise_psd

pytest.importorskip("bm3d")
SIZE = 64
SIGMA = 0.05


def _phantom(rng: np.random.Generator) -> np.ndarray:
    """(SIZE, SIZE) piecewise-smooth image in [0.2, 0.8]: discs on a smooth background."""
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    image = 0.3 + 0.2 * xx
    for _ in range(4):
        cy, cx, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.08, 0.2)]
        image = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, rng.uniform(0.4, 0.8), image)
    return image


def _correlated_noise(shape, rng: np.random.Generator) -> np.ndarray:
    """Noise of sd SIGMA, low-pass correlated like FBP noise (lag-1 correlation ~0.6)."""
    white = rng.normal(size=shape)
    smooth = ndi.gaussian_filter(white, sigma=(0,) * (len(shape) - 2) + (1.0, 1.0))
    return SIGMA * smooth / smooth.std()


def _write(path, clean, noisy, object_id, split) -> None:
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="gaussian",
        noise_level=SIGMA,
        scaling_rule="dataset_max",
        raw_units="scaled",
        seed=0,
        description="correlated-noise test data",
    )
    scale = np.ones(len(noisy))
    write_dataset(
        path, clean=clean, noisy=noisy, object_id=object_id, split=split, scale=scale, attrs=attrs
    )


@pytest.fixture(scope="module")
def twin_files(tmp_path_factory):
    """The same noisy data twice: with its clean images, and with the clean images zeroed."""
    rng = np.random.default_rng(0)
    n = 6  # objects o0..o5 cycle train / val / test
    clean = np.stack([_phantom(rng) for _ in range(n)]).astype(np.float32)
    noisy = (clean[:, None] + _correlated_noise((n, 2, SIZE, SIZE), rng)).astype(np.float32)
    object_id = np.array([f"o{i}" for i in range(n)])
    split = np.array([("train", "val", "test")[i % 3] for i in range(n)])
    folder = tmp_path_factory.mktemp("twin")
    _write(folder / "clean.h5", clean, noisy, object_id, split)
    _write(folder / "zeroed.h5", np.zeros_like(clean), noisy, object_id, split)
    _write(folder / "noisy-only.h5", None, noisy, object_id, split)
    return folder / "clean.h5", folder / "zeroed.h5", folder / "noisy-only.h5"


def test_psd_path_runs_and_beats_the_white_rule_on_correlated_noise():
    rng = np.random.default_rng(1)
    clean = _phantom(rng)
    pairs = _correlated_noise((8, 2, SIZE, SIZE), rng)
    psd = pair_noise_psd(pairs[:, 0], pairs[:, 1])  # two independent draws of the noise
    noisy = clean + _correlated_noise((1, 1, SIZE, SIZE), rng)[0, 0]
    before = noisy.copy()
    white = denoise_bm3d(noisy, sigma=SIGMA)
    coloured = denoise_bm3d(noisy, psd=psd)
    np.testing.assert_array_equal(noisy, before)  # the input is not modified
    assert coloured.shape == noisy.shape and coloured.dtype == noisy.dtype
    white_db, coloured_db = (psnr(clean, out, data_range=1.0) for out in (white, coloured))
    assert coloured_db > white_db + 1.0, (white_db, coloured_db)


def test_bm3d_takes_exactly_one_noise_description():
    image = np.zeros((SIZE, SIZE))
    with pytest.raises(LowdoseInputError, match="exactly one"):
        denoise_bm3d(image)
    with pytest.raises(LowdoseInputError, match="exactly one"):
        denoise_bm3d(image, sigma=0.1, psd=np.ones((SIZE, SIZE)))
    with pytest.raises(LowdoseInputError, match="shaped like the image"):
        denoise_bm3d(image, psd=np.ones((8, 8)))


def test_pair_tuning_moves_a_wrong_spectrum_level_towards_the_oracle():
    """A spectrum given at 1/8 of its level: the clean-free uMSE search scales it up, and lands
    near the strength the clean images would choose."""
    rng = np.random.default_rng(2)
    clean = np.stack([_phantom(rng) for _ in range(3)])
    noise = _correlated_noise((3, 2, SIZE, SIZE), rng)
    first, second = clean + noise[:, 0], clean + noise[:, 1]
    psd = pair_noise_psd(first, second) / 8.0
    blind = tune_psd_scale_pairs(first, second, psd)
    oracle = tune_psd_scale_oracle(first, clean, psd, data_range=1.0)
    oracle_scale = float(np.exp(np.mean([np.log(t.psd_scale) for t in oracle])))
    assert blind.objective == "pair uMSE" and blind.psd_scale > 4.0  # past the grid's top (4)
    assert 0.5 < blind.psd_scale / oracle_scale < 2.0, (blind.psd_scale, oracle_scale)


def test_a_file_with_only_noisy_scans_gets_the_clean_free_rows(twin_files, tmp_path):
    frame = evaluate(
        twin_files[2],
        filters=["bm3d"],
        tuning="blind-psd,single-psd,oracle-psd",
        out_dir=tmp_path / "r",
    )
    assert set(frame["tuning"]) == {"none", "blind-psd", "single-psd"}  # oracle left out
    upsnr = frame.groupby("tuning")["upsnr_db"].mean()
    assert upsnr["blind-psd"] > upsnr["none"] + 1.0 and upsnr["single-psd"] > upsnr["none"]


def test_comma_separated_tunings_and_unknown_names():
    assert parse_tunings("oracle+blind-sigma,blind-psd") == ("oracle", "blind-sigma", "blind-psd")
    with pytest.raises(LowdoseInputError, match="unknown tuning 'psd'"):
        parse_tunings("blind,psd")


def test_spectrum_rows_and_no_clean_image_reaches_the_clean_free_tunings(twin_files, tmp_path):
    clean_file, zeroed_file, _ = twin_files
    clean_free = "blind-psd,single-psd"
    frames = [
        evaluate(path, filters=["bm3d"], tuning=tuning, out_dir=tmp_path / path.stem)
        for path, tuning in (
            (clean_file, f"{clean_free},oracle-psd,blind-sigma"),
            (zeroed_file, clean_free),
        )
    ]
    with_clean = frames[0].set_index(["tuning", "image_index"])
    assert set(frames[0]["tuning"]) == {
        "none",
        "blind-psd",
        "single-psd",
        "oracle-psd",
        "blind-sigma",
    }
    for kind in ("blind-psd", "single-psd"):
        params = [json.loads(v) for v in with_clean.loc[kind, "params"]]
        assert all(p["seconds_per_image"] > 0 and p["psd_scale"] > 0 for p in params)
        assert all("noise_sd_hu" not in p for p in params)  # not CT in HU: data units only
        zeroed = frames[1].set_index(["tuning", "image_index"]).loc[kind]
        # the clean-free numbers (outputs scored against the second scan) are the same; BM3D
        # itself is reproducible only to float32 rounding (threaded), hence the tolerance
        np.testing.assert_allclose(with_clean.loc[kind, "umse"], zeroed["umse"], rtol=1e-5)
        zeroed_params = [json.loads(v) for v in zeroed["params"]]
        for a, b in zip(params, zeroed_params, strict=True):
            assert a["psd_scale"] == b["psd_scale"] and a["psd_from"] == b["psd_from"]
            assert a["noise_sd"] == pytest.approx(b["noise_sd"], rel=1e-6)
    scores = frames[0].groupby("tuning")["psnr_db"].mean()
    assert scores["oracle-psd"] >= scores["blind-psd"] - 0.05
    assert scores["blind-psd"] > scores["blind-sigma"] > scores["none"]
