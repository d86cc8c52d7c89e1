"""Edge width of real images: the mean 10-90 % rise across the input's strongest edges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lowdose.image_quality.edge_width import edge_width_px, strong_edges

ERF_10_90 = 2.5631  # the 10-90 % span of a Gaussian-blurred step, in units of its sd


def _disc(size: int = 160, radius: float = 45.0) -> np.ndarray:
    # 8x supersampled pixel areas: a sampled round edge, not a staircase
    fine = np.mgrid[: size * 8, : size * 8] / 8 - (size - 1) / 2 - 7 / 16
    inside = np.hypot(*fine) < radius
    return inside.reshape(size, 8, size, 8).mean(axis=(1, 3))


@pytest.mark.parametrize("sd_px", [1.5, 2.0, 3.0])
def test_the_width_of_a_blurred_edge_is_its_erf_span(sd_px):
    sharp = _disc()
    edges = strong_edges(sharp)
    width = edge_width_px(ndimage.gaussian_filter(sharp, sd_px), edges)
    # the pixel aperture and linear interpolation add a little to the blur's own span
    assert width == pytest.approx(ERF_10_90 * sd_px, rel=0.1)


def test_noise_does_not_change_the_measured_width_but_blur_does():
    rng = np.random.default_rng(0)
    blurred = ndimage.gaussian_filter(_disc(), 1.5)
    noisy = blurred + rng.normal(0, 0.1, blurred.shape)  # contrast 1, SNR 10 per pixel
    edges = strong_edges(noisy)  # found in the noisy input, as lowdose fit does
    assert len(edges) > 100
    clean_width = edge_width_px(blurred, edges)
    assert edge_width_px(noisy, edges) == pytest.approx(clean_width, rel=0.1)
    assert edge_width_px(ndimage.gaussian_filter(noisy, 2.0), edges) > 1.3 * clean_width


def test_edges_stay_inside_the_mask_and_a_flat_image_has_none():
    mask = np.zeros((160, 160), bool)
    mask[:, :80] = True
    edges = strong_edges(_disc(), mask=mask, margin_px=10)
    assert len(edges) > 0 and np.all(edges.cols < 70)
    flat = strong_edges(np.ones((64, 64)))
    assert len(flat) == 0 and np.isnan(edge_width_px(np.ones((64, 64)), flat))
