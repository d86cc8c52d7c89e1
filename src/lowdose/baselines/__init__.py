"""Classical filters, a generic parameter search, and oracle / blind tuning.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.baselines.bilateral import denoise_bilateral
from lowdose.baselines.filters import (
    apply_filter,
    denoise_bm3d,
    denoise_gaussian,
    denoise_nlm,
    get_filter,
)
from lowdose.baselines.median import denoise_median
from lowdose.baselines.search import search
from lowdose.baselines.tuning import tune_blind, tune_blind_pairs, tune_oracle

__all__ = [
    "apply_filter",
    "denoise_bilateral",
    "denoise_bm3d",
    "denoise_gaussian",
    "denoise_median",
    "denoise_nlm",
    "get_filter",
    "search",
    "tune_blind",
    "tune_blind_pairs",
    "tune_oracle",
]
