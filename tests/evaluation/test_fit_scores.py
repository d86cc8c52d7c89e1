"""Clean-free scores of ``lowdose fit`` against cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lowdose.evaluation.fit_scores import (
    MethodScores,
    flat_blocks,
    flat_region,
    flat_sigma,
    lag1_autocorrelation,
    preferred_method,
    score_method,
)
from lowdose.physics.noise_estimation import single_image_noise_sigma


def piecewise_image(size: int = 128) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    image = np.where((rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size / 3) ** 2, 1.0, 0.2)
    image[size // 4 : size // 3, size // 4 : 3 * size // 4] = 0.6
    return image


def test_flat_sigma_of_white_noise_is_its_sd_and_ignores_edges():
    rng = np.random.default_rng(0)
    clean = piecewise_image()
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    blocks = flat_blocks(noisy)
    assert len(blocks) >= 4
    assert flat_sigma(noisy, blocks) == pytest.approx(0.05, rel=0.15)
    assert flat_sigma(clean, blocks) == pytest.approx(0.0, abs=1e-9)  # no edge inside a block


def test_constant_padding_blocks_are_never_chosen():
    rng = np.random.default_rng(1)
    noisy = piecewise_image() + rng.normal(0, 0.05, (128, 128))
    noisy[:, :48] = -3.0  # padding: flat, but noiseless
    for rows, cols in flat_blocks(noisy):
        assert np.ptp(noisy[rows, cols]) > 0


def test_lag1_autocorrelation_white_and_blurred():
    rng = np.random.default_rng(2)
    white = rng.normal(size=(256, 256))
    assert abs(lag1_autocorrelation(white)) < 0.02
    blurred = ndimage.gaussian_filter(white, 1.0)
    # Gaussian-filtered white noise: rho(1) = exp(-1 / (4 sigma^2)) = 0.78 for sigma = 1 px
    assert lag1_autocorrelation(blurred) == pytest.approx(np.exp(-0.25), abs=0.03)


def test_score_method_residual_and_upsnr():
    rng = np.random.default_rng(3)
    clean = np.stack([piecewise_image(), piecewise_image()[::-1]])
    y1, y2 = (clean + rng.normal(0, 0.05, clean.shape) for _ in range(2))
    noisy_scores = score_method("noisy", y1, y1, second=y2)
    assert np.isnan(noisy_scores.residual_lag1)
    assert noisy_scores.upsnr_db == pytest.approx(10 * np.log10(1 / 0.05**2), abs=0.3)
    oracle = score_method("oracle", y1, clean, second=y2)  # removes exactly the noise
    assert abs(oracle.residual_lag1) < 0.03 and oracle.flat_sigma < 1e-9
    assert oracle.upsnr_db > noisy_scores.upsnr_db + 20
    blur = np.stack([ndimage.gaussian_filter(im, 3.0) for im in y1])
    blurred = score_method("blur", y1, blur, second=y2)
    assert blurred.residual_lag1 > oracle.residual_lag1 + 0.05  # edges went into the residual


def test_preferred_method_uses_upsnr_with_pairs_and_says_heuristic_without():
    scores = [
        MethodScores("noisy", 0.05, np.nan, 26.0),
        MethodScores("a", 0.01, 0.0, 35.0),
        MethodScores("b", 0.005, 0.3, 33.0),
    ]
    assert preferred_method(scores)[0] == "a"
    single = [MethodScores(s.method, s.flat_sigma, s.residual_lag1, np.nan) for s in scores]
    method, reason = preferred_method(single)
    assert method == "a" and "heuristic" in reason  # b is smoother but removed structure
    # view-split halves of one scan: uPSNR favours smoothers, so it does not decide
    smoother = [*scores, MethodScores("nlm", 0.02, 0.05, 57.0)]
    method, reason = preferred_method(smoother, view_split=True)
    assert method == "a" and "anti-correlated streaks" in reason
    assert preferred_method(smoother)[0] == "nlm"


def test_single_image_noise_sigma_ignores_padding():
    rng = np.random.default_rng(4)
    image = piecewise_image(256) + rng.normal(0, 0.05, (256, 256))
    rows, cols = np.mgrid[0:256, 0:256]
    padded = np.where((rows - 128) ** 2 + (cols - 128) ** 2 > 120**2, -3.0, image)
    assert single_image_noise_sigma(image) == pytest.approx(0.05, rel=0.08)
    assert single_image_noise_sigma(padded) == pytest.approx(0.05, rel=0.08)


def test_padding_outside_the_mask_neither_dilutes_nor_flatters_the_scores():
    rng = np.random.default_rng(5)
    clean = np.stack([piecewise_image(), piecewise_image()[::-1]])
    y1, y2 = (clean + rng.normal(0, 0.05, clean.shape) for _ in range(2))
    blur = np.stack([ndimage.gaussian_filter(im, 1.0) for im in y1])
    plain = score_method("blur", y1, blur, second=y2)
    inside = np.zeros(clean.shape, bool)
    inside[:, 16:112, 16:112] = True
    padded = [np.where(inside, a, -3.0) for a in (y1, y2, blur)]  # constant, noiseless outside
    cropped = score_method(
        "blur", *(a[:, 16:112, 16:112] for a in (y1, blur)), second=y2[:, 16:112, 16:112]
    )
    masked = score_method("blur", padded[0], padded[2], second=padded[1], mask=inside)
    unmasked = score_method("blur", padded[0], padded[2], second=padded[1])
    assert masked.upsnr_db == pytest.approx(cropped.upsnr_db, abs=1e-6)
    assert masked.residual_lag1 == pytest.approx(cropped.residual_lag1, abs=1e-3)
    assert unmasked.upsnr_db > masked.upsnr_db + 1  # the padding flatters an unmasked score
    assert np.isfinite(plain.upsnr_db)


def air_and_body_phantom(seed: int, *, clip_air: bool) -> tuple[np.ndarray, float]:
    """A CT slice on the dataset scale: a 0 HU disc (noise 16 HU) in air (noise 3.5 HU)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:192, 0:192]
    body = (rows - 96) ** 2 + (cols - 96) ** 2 < 70**2
    hu = np.where(body, rng.normal(0.0, 16.0, body.shape), rng.normal(-1000.0, 3.5, body.shape))
    if clip_air:
        hu = np.maximum(hu, -1002.0)  # a clip floor: most air pixels sit on it
    divisor = 2048.0
    return (hu + 1024.0) / divisor, divisor


@pytest.mark.parametrize("clip_air", [False, True])
def test_ct_flat_blocks_lie_in_the_body_and_read_its_noise_in_hu(clip_air):
    scaled, divisor = air_and_body_phantom(6, clip_air=clip_air)
    stack = scaled[None]  # (1, H, W)
    region = flat_region(stack, hu_divisor=np.array([divisor]))
    rows, cols = np.mgrid[0:192, 0:192]
    in_disc = (rows - 96) ** 2 + (cols - 96) ** 2 < 70**2
    blocks = flat_blocks(scaled, region=region[0])
    assert len(blocks) >= 4
    assert all(in_disc[window].all() for window in blocks)  # never a pixel of air
    scores = score_method("noisy", stack, stack, region=region)
    assert scores.flat_sigma * divisor == pytest.approx(16.0, rel=0.1)  # tissue's, not air's 3.5


def test_clip_floor_blocks_are_left_out_without_a_region():
    scaled, _ = air_and_body_phantom(7, clip_air=True)
    floor = scaled.min()
    for window in flat_blocks(scaled):  # no region: the clipped air still never counts
        assert not np.any(scaled[window] == floor)


def test_flat_region_without_hu_is_the_field_of_view():
    stack = np.zeros((2, 32, 32))
    fov = np.ones((2, 32, 32), bool)
    assert flat_region(stack) is None
    assert flat_region(stack, fov=fov) is not None and flat_region(stack, fov=fov).all()


def test_edges_are_placed_in_the_second_realisation_so_noise_does_not_read_as_sharpness():
    rng = np.random.default_rng(1)
    clean = ndimage.gaussian_filter(piecewise_image(160), 1.5)[None]  # (1, H, W)
    noisy, second = (clean + rng.normal(0, 0.5, clean.shape) for _ in range(2))
    # the perfect denoiser returns the clean image: its edges are those of the noisy input
    with_pair = [score_method(m, noisy, e, second=second) for m, e in (("n", noisy), ("c", clean))]
    assert with_pair[1].edge_width_px == pytest.approx(with_pair[0].edge_width_px, rel=0.15)
    # edges found in the input's own noise follow it: the input reads far sharper than clean
    alone = [score_method(m, noisy, e) for m, e in (("n", noisy), ("c", clean))]
    assert alone[0].edge_width_px < 0.8 * alone[1].edge_width_px
    # the pair score: raw MSE to the second realisation, the uMSE plus the pair's noise
    expected = 10 * np.log10(1 / np.mean((clean - second) ** 2))
    assert with_pair[1].pair_psnr_db == pytest.approx(expected, abs=0.05)
