"""Denoising networks (the paper's U-Net), checkpoint loading with typed metadata, and export.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.models.checkpoint import CheckpointMeta, load_model
from lowdose.models.export import export_model
from lowdose.models.unet import UNet

__all__ = ["CheckpointMeta", "UNet", "export_model", "load_model"]
