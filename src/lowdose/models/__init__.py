"""Denoising networks (the paper's U-Net), checkpoint loading with typed metadata, and export."""

from lowdose.models.checkpoint import CheckpointMeta, CheckpointModel, load_model
from lowdose.models.unet import UNet

__all__ = ["CheckpointMeta", "CheckpointModel", "UNet", "load_model"]
