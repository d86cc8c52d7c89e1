"""Flat/dark correction: the analytic -log, the rules for reference frames, clipping, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.flat_field import line_integrals, log_ratio
from lowdose.physics.noise import ZERO_COUNT_FLOOR

N_ANGLES, ROWS, COLS = 6, 4, 10


def _scan(flat_level=1000.0, dark_level=100.0, seed=0):
    """Noise-free counts of a known attenuation: P = D + (F - D) exp(-L)."""
    rng = np.random.default_rng(seed)
    line = rng.uniform(0.0, 3.0, size=(N_ANGLES, ROWS, COLS))
    open_beam = flat_level * rng.uniform(0.8, 1.2, size=(ROWS, COLS))  # a beam profile
    dark = dark_level + rng.uniform(-5, 5, size=(ROWS, COLS))
    counts = dark + open_beam * np.exp(-line)
    return line, counts, dark + open_beam, dark


def test_line_integrals_equal_the_analytic_minus_log():
    line, counts, flat, dark = _scan()
    values, report = line_integrals(counts, flat, dark)
    assert values.dtype == np.float32 and values.shape == (N_ANGLES, ROWS, COLS)
    np.testing.assert_allclose(values, line, atol=2e-5)
    assert report.nonpositive_pixels == 0 and report.fraction_clipped == 0.0
    assert report.n_flats == 1 and report.flat_rule == "one frame, used as is"
    assert any("-log((P - D) / (F - D))" in line for line in report.lines())


def test_several_frames_are_reduced_by_their_median():
    line, counts, flat, dark = _scan()
    zinger = flat.copy()
    zinger[1, 3] *= 50  # one frame hit by a zinger: the median ignores it, a mean would not
    flats = np.stack([flat, zinger, flat * 1.0])
    darks = np.stack([dark, dark, dark - 400])  # one broken dark frame
    values, report = line_integrals(counts, flats, darks)
    np.testing.assert_allclose(values, line, atol=2e-5)
    assert report.flat_rule == "median of 3 frames" and report.dark_rule == "median of 3 frames"
    _, two = line_integrals(counts, np.stack([flat - 10, flat + 10]), dark)
    assert two.flat_rule == "mean of 2 frames"


def test_darks_before_and_after_the_scan_are_reduced_together():
    line, counts, flat, dark = _scan(dark_level=105.0)
    before, after = np.full((3, ROWS, COLS), -5.0), np.full((3, ROWS, COLS), 5.0)
    darks = np.concatenate([dark + before, dark + after])  # drifted by +10 counts over the scan
    values, report = line_integrals(counts, flat[None], darks)
    # the median of 3 frames at D - 5 and 3 at D + 5 is D: the scan's dark at mid-time
    np.testing.assert_allclose(values, line, atol=2e-5)
    assert report.n_darks == 6 and report.dark_rule == "median of 6 frames"


def test_flats_per_row_normalise_each_projection_by_its_own_frame():
    line, counts, flat, dark = _scan()
    beam = np.linspace(1.0, 0.7, N_ANGLES)[:, None, None]  # the source decays during the scan
    counts_decaying = dark + (flat - dark) * beam * np.exp(-line)
    flats = dark + (flat - dark) * beam  # one flat recorded with every projection
    values, report = line_integrals(counts_decaying, flats, dark, per_row=True)
    np.testing.assert_allclose(values, line, atol=2e-5)
    assert report.flat_rule.startswith("per projection")
    median, _ = line_integrals(counts_decaying, flats, dark)  # without per_row: the median flat
    assert np.abs(median - line).max() > 0.1
    with pytest.raises(LowdoseInputError, match="one frame per projection"):
        line_integrals(counts, flats[:3], dark, per_row=True)


def test_a_single_sinograms_flat_given_per_view_is_used_per_view():
    line, counts, flat, dark = _scan()
    sinogram = counts[:, :1]  # (n_angles, 1, cols): one detector row
    per_view = np.repeat(flat[None, :1], N_ANGLES, axis=0)  # (n_angles, 1, cols)
    values, report = line_integrals(sinogram, per_view, dark[:1])
    np.testing.assert_allclose(values, line[:, :1], atol=2e-5)
    assert report.flat_rule.startswith("per projection")


def test_a_flat_profile_serves_every_row():
    rng = np.random.default_rng(1)
    line = rng.uniform(0, 2, size=(N_ANGLES, ROWS, COLS))
    profile = np.linspace(900, 1100, COLS)
    values, _ = line_integrals(profile * np.exp(-line), profile)
    np.testing.assert_allclose(values, line, atol=2e-5)


def test_zero_and_negative_counts_are_clipped_and_counted():
    line, counts, flat, dark = _scan()
    counts[0, 0, :3] = dark[0, :3]  # P - D = 0
    counts[1, 2, 5] = dark[2, 5] - 7  # P - D < 0 (read noise below the dark)
    dead_flat = flat.copy()
    dead_flat[3, 9] = dark[3, 9]  # a dead detector pixel: F - D = 0 in every projection
    values, report = line_integrals(counts, dead_flat, dark)
    assert np.all(np.isfinite(values))
    expected = -np.log(ZERO_COUNT_FLOOR / (flat[0, :3] - dark[0, :3]))
    np.testing.assert_allclose(values[0, 0, :3], expected, rtol=1e-5)
    assert report.nonpositive_pixels == 4 + N_ANGLES and report.dead_flat_pixels == 1
    assert report.fraction_clipped == pytest.approx((4 + N_ANGLES) / counts.size)
    assert any("clipped" in line for line in report.lines())


def test_counts_without_flats_are_refused_naming_flat():
    _, counts, _, dark = _scan()
    with pytest.raises(LowdoseInputError, match="--flat") as error:
        line_integrals(counts, None, dark, source="scan.h5")
    assert str(error.value).startswith("scan.h5: ") and "\n" not in str(error.value)


def test_line_integrals_pass_through_unchanged():
    line, _, flat, _ = _scan()
    values, report = line_integrals(line, values="line-integrals")
    np.testing.assert_array_equal(values, line.astype(np.float32))
    assert report.passed_through and "passed through unchanged" in report.lines()[0]
    with pytest.raises(LowdoseInputError, match="line integrals already"):
        line_integrals(line, flat, values="line-integrals")


def test_frames_that_do_not_fit_are_refused_with_the_shapes_wanted():
    _, counts, flat, _ = _scan()
    with pytest.raises(LowdoseInputError, match=f"\\({ROWS}, {COLS}\\)"):
        line_integrals(counts, flat[:, :5])
    with pytest.raises(LowdoseInputError, match="do not fit"):
        log_ratio(counts, flat[:, :5])


def test_inputs_are_not_modified():
    _, counts, flat, dark = _scan()
    copies = [a.copy() for a in (counts, flat, dark)]
    line_integrals(counts, flat, dark)
    for before, after in zip(copies, (counts, flat, dark), strict=True):
        np.testing.assert_array_equal(before, after)
