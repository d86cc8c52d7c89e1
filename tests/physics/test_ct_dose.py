"""Dose fraction <-> photons per ray at our geometry, against the documented full-dose reference."""

from __future__ import annotations

import doctest

import pytest

import lowdose.physics.ct_dose as ct_dose
from lowdose.core.errors import LowdoseInputError
from lowdose.physics.ct_dose import (
    FULL_DOSE_BIN_MM,
    FULL_DOSE_PHOTONS_PER_RAY,
    FULL_DOSE_VIEWS,
    dose_fraction_for_photons,
    photons_per_ray_for_dose,
)


def test_full_dose_at_the_reference_geometry_is_the_reference_photon_count():
    at_reference = {"bin_mm": FULL_DOSE_BIN_MM, "views": FULL_DOSE_VIEWS}
    assert photons_per_ray_for_dose(1.0, **at_reference) == FULL_DOSE_PHOTONS_PER_RAY
    assert photons_per_ray_for_dose(0.25, **at_reference) == FULL_DOSE_PHOTONS_PER_RAY / 4


@pytest.mark.parametrize("fraction", [0.1, 0.25, 1.0, 2.0])
@pytest.mark.parametrize(("bin_mm", "views"), [(0.75, 720), (1.37, 360), (8.0, 90)])
def test_dose_goes_as_photons_times_views_over_bin_width(fraction, bin_mm, views):
    photons = photons_per_ray_for_dose(fraction, bin_mm=bin_mm, views=views)
    # the same dose on twice the bin width or half the views puts twice the photons in a bin
    assert photons_per_ray_for_dose(fraction, bin_mm=2 * bin_mm, views=views) == pytest.approx(
        2 * photons
    )
    assert photons_per_ray_for_dose(fraction, bin_mm=bin_mm, views=views // 2) == pytest.approx(
        photons * views / (views // 2)
    )
    # photons x views / bin width is the dose, whatever the geometry
    dose_measure = photons * views / bin_mm
    reference_measure = FULL_DOSE_PHOTONS_PER_RAY * FULL_DOSE_VIEWS / FULL_DOSE_BIN_MM
    assert dose_measure / reference_measure == pytest.approx(fraction)
    assert dose_fraction_for_photons(photons, bin_mm=bin_mm, views=views) == pytest.approx(fraction)


def test_lodopab_low_dose_is_about_a_seventeenth_of_the_reference():
    fraction = dose_fraction_for_photons(
        ct_dose.LODOPAB_PHOTONS_PER_RAY, bin_mm=ct_dose.LODOPAB_BIN_MM, views=ct_dose.LODOPAB_VIEWS
    )
    assert 0.05 < fraction < 0.065
    assert "1e5" in ct_dose.FULL_DOSE_REFERENCE and "convention" in ct_dose.FULL_DOSE_REFERENCE


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), "a lot"])
def test_bad_fractions_and_geometries_are_one_line_errors(bad):
    with pytest.raises(LowdoseInputError, match="dose_fraction"):
        photons_per_ray_for_dose(bad, bin_mm=1.0, views=100)
    with pytest.raises(LowdoseInputError, match="bin_mm"):
        photons_per_ray_for_dose(0.5, bin_mm=bad, views=100)


def test_docstring_examples_hold():
    assert doctest.testmod(ct_dose, raise_on_error=False).failed == 0
