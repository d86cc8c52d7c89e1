"""Denoising networks. Only the paper's U-Net lives here."""

from lowdose.models.unet import UNet

__all__ = ["UNet"]
