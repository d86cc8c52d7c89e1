"""Datasets from users' own noisy data: repeated acquisitions, split sinograms, single scans.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.owndata.repeats import build_from_repeats
from lowdose.owndata.single import build_from_single
from lowdose.owndata.split_sinogram import build_from_sinogram

__all__ = ["build_from_repeats", "build_from_single", "build_from_sinogram"]
