"""CT dose as photons per ray: the full-dose reference, and a dose fraction at our geometry.

lowdose's sinogram noise is set by ``I0``, the unattenuated photons per detector bin and view
(:mod:`lowdose.physics.ct_noise`). A *dose fraction* ``F`` is relative to a full-dose reference:

**Reference** (:data:`FULL_DOSE_PHOTONS_PER_RAY` at :data:`FULL_DOSE_BIN_MM` and
:data:`FULL_DOSE_VIEWS`): 1e5 photons per 1.0 mm detector bin per view, 1000 parallel views over
180 degrees. This is a convention, not a measurement of a scanner: 1e5 unattenuated photons per
detector element is the figure simulation toolkits use for routine clinical dose (the TIGRE
toolbox's CT-noise demo: "1e5 is a standard clinical number"; many low-dose CT simulation papers
use 1e5-1e6), while its sources state neither the bin size nor the view count. We attach it to a
1 mm bin and 1000 views (clinical scanners read ~1000 views per rotation through ~0.5-1 mm
channels at the isocentre). Through 200 mm of water it leaves ~2,150 photons per ray, through a
320 mm abdomen ~200: the regime of real routine scans, not a starved one.

For orientation: LoDoPaB-CT (Leuschner et al. 2021, Sci. Data 8:109) simulates its *low-dose*
data with 4,096 photons per bin (:data:`LODOPAB_PHOTONS_PER_RAY`), 1000 views over 180 degrees
and 513 bins over the 0.26 m field's diagonal (0.717 mm): a fraction of ~0.057 of this reference
(:func:`dose_fraction_for_photons`). The AAPM/Mayo Low Dose CT Grand Challenge (2016) pairs
routine-dose scans with simulated *quarter-dose* ones: ``F = 0.25``.

**Rule at our geometry.** Dose is proportional to the photon fluence summed over views,
``I0 / (bin width x slice thickness) x views``; the slice thickness is the reference's (a 2-D
simulation does not model it). So ``I0 = F x I0_ref x (bin_mm / bin_ref_mm) x (views_ref /
views)``: with bins of the pixel size (our parallel-beam projector samples one bin per pixel) a
coarser grid catches more photons per bin at the same dose, and more views share the same dose.
"""

from __future__ import annotations

import math

from lowdose.core.validation import checked_positive

FULL_DOSE_PHOTONS_PER_RAY = 1.0e5
FULL_DOSE_BIN_MM = 1.0
FULL_DOSE_VIEWS = 1000
FULL_DOSE_REFERENCE = (
    "full dose = 1e5 photons per 1.0 mm detector bin and view, 1000 parallel views over 180 deg "
    "(convention: TIGRE's 'standard clinical' 1e5 photons per detector element, bin and views "
    "chosen by lowdose); I0 = F x 1e5 x (bin_mm / 1.0) x (1000 / views); "
    "LoDoPaB-CT low dose (4096 photons, 0.717 mm, 1000 views) ~ F 0.057; AAPM/Mayo quarter "
    "dose = F 0.25"
)
LODOPAB_PHOTONS_PER_RAY = 4096.0
LODOPAB_BIN_MM = 260.0 * math.sqrt(2.0) / 513  # 513 bins over the 0.26 m field's diagonal
LODOPAB_VIEWS = 1000


def photons_per_ray_for_dose(dose_fraction: float, *, bin_mm: float, views: int) -> float:
    """Unattenuated photons per bin and view (I0) that give ``dose_fraction`` of the reference.

    ``I0 = F * 1e5 * (bin_mm / 1.0 mm) * (1000 / views)`` (the module docstring's rule: dose is
    proportional to ``I0 * views / bin area``, at the reference slice thickness).

    Parameters
    ----------
    dose_fraction : float
        ``F`` > 0 (1 = full dose, 0.25 = quarter dose; > 1 allowed).
    bin_mm : float
        Detector bin width in mm (lowdose: the pixel size), > 0.
    views : int
        Projection views over 180 degrees, >= 1.

    Examples
    --------
    >>> photons_per_ray_for_dose(0.25, bin_mm=1.0, views=1000)
    25000.0
    >>> photons_per_ray_for_dose(1.0, bin_mm=2.0, views=500)  # 2x the bin, half the views
    400000.0
    """
    fraction = checked_positive(dose_fraction, "dose_fraction (--dose-fraction)")
    return fraction * FULL_DOSE_PHOTONS_PER_RAY * _geometry_factor(bin_mm, views)


def dose_fraction_for_photons(photons_per_ray: float, *, bin_mm: float, views: int) -> float:
    """The dose fraction ``F`` of ``photons_per_ray`` at a geometry (inverse of the rule above).

    >>> round(dose_fraction_for_photons(4096, bin_mm=LODOPAB_BIN_MM, views=1000), 3)  # LoDoPaB
    0.057
    """
    photons = checked_positive(photons_per_ray, "photons_per_ray (--photons-per-ray)")
    return photons / (FULL_DOSE_PHOTONS_PER_RAY * _geometry_factor(bin_mm, views))


def _geometry_factor(bin_mm: float, views: int) -> float:
    bin_mm = checked_positive(bin_mm, "bin_mm")
    views = checked_positive(views, "views")
    return (bin_mm / FULL_DOSE_BIN_MM) * (FULL_DOSE_VIEWS / views)
