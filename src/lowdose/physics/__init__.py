"""Noise models and levels, projectors, 2-D radon/FBP, CT noise and dose, noise estimation.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.physics.cone_beam import cone_projection
from lowdose.physics.ct_dose import dose_fraction_for_photons, photons_per_ray_for_dose
from lowdose.physics.noise import (
    add_gaussian,
    add_poisson_post_log,
    add_poisson_sinogram,
    add_poisson_transmission,
    realisations,
)
from lowdose.physics.noise_estimation import pair_noise_variance
from lowdose.physics.noise_levels import (
    NoiseLevel,
    SolvedLevel,
    achieved_psnr_db,
    solve_photons_for_psnr,
    solve_sigma_for_psnr,
)
from lowdose.physics.photon_starvation import post_log_bias, post_log_moments, post_log_variance
from lowdose.physics.projection import parallel_projection, projection_angles
from lowdose.physics.radon import FBP_FILTERS, fbp_2d, radon_2d

__all__ = [
    "FBP_FILTERS",
    "NoiseLevel",
    "SolvedLevel",
    "achieved_psnr_db",
    "add_gaussian",
    "add_poisson_post_log",
    "add_poisson_sinogram",
    "add_poisson_transmission",
    "cone_projection",
    "dose_fraction_for_photons",
    "fbp_2d",
    "pair_noise_variance",
    "parallel_projection",
    "photons_per_ray_for_dose",
    "post_log_bias",
    "post_log_moments",
    "post_log_variance",
    "projection_angles",
    "radon_2d",
    "realisations",
    "solve_photons_for_psnr",
    "solve_sigma_for_psnr",
]
