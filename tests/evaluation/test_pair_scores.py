"""Clean-free scores of a denoiser from two realisations: the estimate tracks the truth, and
`lowdose dataset score-pairs` prints them from a dataset and a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.dataset_cmd  # noqa: F401  (registers the commands)
from lowdose.core.errors import LowdoseInputError
from lowdose.evaluation.pair_scores import clean_free_metrics, score_pairs


def test_clean_free_metrics_estimate_the_truth():
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[:128, :128]
    clean = 0.5 + 0.3 * np.sin(rows / 9.0) * np.cos(cols / 13.0)
    clean = np.stack([clean, clean.T])
    sigma = 0.08
    y1, y2 = (clean + sigma * rng.standard_normal(clean.shape) for _ in range(2))

    def smooth(stack):
        return np.stack([ndimage.gaussian_filter(im, 2.0) for im in stack])

    f1, f2 = smooth(y1), smooth(y2)
    scores = clean_free_metrics(y1, y2, f1, f2, noise_variance=sigma**2)
    true_psnr = 10 * np.log10(1 / np.mean((f1 - clean) ** 2, axis=(1, 2)))
    corrected = scores["psnr_vs_other_realisation_corrected_db"]
    assert np.all(np.abs(corrected - true_psnr) < 1.0)
    assert np.all(scores["psnr_vs_other_realisation_raw_db"] < true_psnr - 5)
    true_residual = np.var(f1 - smooth(clean), axis=(1, 2))
    assert np.allclose(scores["residual_noise_variance"], true_residual, rtol=0.15)
    identity = clean_free_metrics(y1, y2, y1, y2, noise_variance=sigma**2)
    assert identity["mean_noise_reduction_factor"] == pytest.approx(1.0, rel=0.05)


def test_an_mse_estimate_at_or_below_zero_gives_nan_not_inf():
    y = np.zeros((1, 16, 16))
    scores = clean_free_metrics(y, y + 0.1, y + 0.1, y + 0.2, noise_variance=0.02)
    assert np.isnan(scores["psnr_vs_other_realisation_raw_db"][0])  # f(y1) == y2 exactly
    assert np.isnan(scores["mean_psnr_vs_other_realisation_corrected_db"])


def test_score_pairs_reports_absolute_progress(tiny_dataset, tiny_checkpoint):
    checkpoint = tiny_checkpoint
    calls = []
    result = score_pairs(tiny_dataset, checkpoint.parent, progress=lambda *a: calls.append(a))
    assert result.split == "test" and result.n_images == 2
    assert result.input_noise_variance > 0
    assert set(result.scores) >= {"mean_residual_noise_variance", "residual_noise_variance"}
    for stage in ("denoise y1", "denoise y2"):
        done = [c[1] for c in calls if c[0] == stage]
        assert done == sorted(done) and done[-1] == result.n_images


def test_score_pairs_needs_two_realisations(make_tiny_dataset, tiny_checkpoint):
    path = make_tiny_dataset(n_realisations=1, name="single.h5")
    with pytest.raises(LowdoseInputError, match="N >= 2"):
        score_pairs(path, tiny_checkpoint)


def test_cli_score_pairs_prints_the_scores(tiny_dataset, tiny_checkpoint):
    checkpoint = tiny_checkpoint
    result = CliRunner().invoke(
        lowdose.cli.app,
        ["dataset", "score-pairs", "--data", str(tiny_dataset), "--model", str(checkpoint)],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "test: 2 images" in text and "noise reduction x" in text and "no clean" in text
