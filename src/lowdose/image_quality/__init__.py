"""CT image quality as a physicist measures it: ROI noise, HU bias, CNR, NPS, TTF, detectability.

A face for users (docs/architecture.md): lowdose modules never import through it. Definitions
follow ICRU Report 87 (2012) and AAPM TG-233 (Samei et al. 2019); numpy only (scipy.special for
the disc task's Bessel function, imported when needed).
"""

from lowdose.image_quality.cho import ChoResult, cho_dprime, laguerre_gauss_channels
from lowdose.image_quality.detectability import (
    disc_task,
    dprime_npw,
    dprime_npwe,
    eye_filter,
    ttf_2d,
)
from lowdose.image_quality.nps import (
    Nps2D,
    NpsSummary,
    noise_rois,
    nps_2d,
    nps_summary,
    nps_variance,
    radial_nps,
)
from lowdose.image_quality.roi import (
    RoiStats,
    annulus_mask,
    contrast_to_noise,
    disc_mask,
    ensemble_sigma,
    hu_bias,
    roi_statistics,
)
from lowdose.image_quality.ttf import Ttf, circular_edge_ttf

__all__ = [
    "ChoResult",
    "Nps2D",
    "NpsSummary",
    "RoiStats",
    "Ttf",
    "annulus_mask",
    "cho_dprime",
    "circular_edge_ttf",
    "contrast_to_noise",
    "disc_mask",
    "disc_task",
    "dprime_npw",
    "dprime_npwe",
    "ensemble_sigma",
    "eye_filter",
    "hu_bias",
    "laguerre_gauss_channels",
    "noise_rois",
    "nps_2d",
    "nps_summary",
    "nps_variance",
    "radial_nps",
    "roi_statistics",
    "ttf_2d",
]
