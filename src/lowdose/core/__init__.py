"""Errors, atomic writes, argument checks, metrics, noise correlation, progress, environment.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from lowdose.core.environment import Environment, capture_environment
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, psnr_from_mse, psnr_hu_window, ssim
from lowdose.core.progress import Log, Progress, ProgressScope, StageCounter, no_progress

__all__ = [
    "Environment",
    "Log",
    "LowdoseInputError",
    "Progress",
    "ProgressScope",
    "StageCounter",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "capture_environment",
    "no_progress",
    "psnr",
    "psnr_from_mse",
    "psnr_hu_window",
    "ssim",
]
