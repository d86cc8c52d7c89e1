"""A denoiser in the user's units: the network's scaling, the U-Net, the scaling undone (torch).

Exports that run outside lowdose (the BioImage Model Zoo package of
:mod:`lowdose.models.bioimageio_export`) cannot call :func:`lowdose.data.scaling.scale_to_network`,
so :class:`RawUnitsDenoiser` does the same arithmetic inside the graph:
``scaled = (raw + offset) / divisor``, network, ``raw = output * divisor - offset``, with the
divisor of the checkpoint's rule: ``dataset_max`` the stored dataset divisor, ``per_image_max``
the maximum of a Gaussian-smoothed copy of each image (sigma 2 px, mirror borders, kernel radius
``int(4 sigma + 0.5)``: SciPy's ``gaussian_filter``), ``none`` 1. Results match
:func:`lowdose.inference.predict.denoise` to float32 round-off (a test checks it).

This module imports only torch and the U-Net: the BioImage export ships this file's code after
``unet.py``'s as the one self-contained architecture source (see ``architecture_source`` there).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from lowdose.models.unet import UNet

RULE_CODES = {"none": 0, "dataset_max": 1, "per_image_max": 2}
"""The scaling rules of :mod:`lowdose.data.scaling` as the ints TorchScript branches on."""


def gaussian_kernel_1d(sigma_px: float) -> torch.Tensor:
    """SciPy's ``gaussian_filter`` kernel: ``exp(-x^2 / 2 sigma^2)`` for ``|x| <= int(4 sigma +
    0.5)``, normalised to sum 1; float32, shape ``(2 r + 1,)``."""
    radius = int(4.0 * sigma_px + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    return (weights / weights.sum()).to(torch.float32)


class RawUnitsDenoiser(nn.Module):
    """``network`` wrapped so that it takes and returns images in their raw units (HU for CT).

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(B, 1, H, W)`` on the training scale to the same shape (the lowdose U-Net, or its
        TorchScript export).
    rule : int
        ``RULE_CODES[scaling_rule]``.
    offset : float
        Raw units added before dividing (1024 for HU).
    divisor : float
        The dataset divisor (``dataset_max``); unused for the other rules.
    smoothing_sigma_px : float
        Gaussian sigma of the ``per_image_max`` estimate.

    Notes
    -----
    ``forward`` takes ``(B, C, H, W)`` float32 with ``H, W >= 9`` for ``per_image_max`` (the
    mirror padding of the smoothing needs it) and returns ``(B, C, H, W)`` in the same units.
    The smoothing kernel is a non-persistent buffer: the state dict holds the network only.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        rule: int,
        offset: float,
        divisor: float,
        smoothing_sigma_px: float = 2.0,
    ) -> None:
        super().__init__()
        if rule not in RULE_CODES.values():
            raise ValueError(f"rule {rule} is not one of {RULE_CODES}")
        if rule == RULE_CODES["dataset_max"] and not (math.isfinite(divisor) and divisor > 0):
            raise ValueError(f"dataset_max needs a finite divisor > 0, got {divisor}")
        self.network = network
        self.rule = int(rule)
        self.offset = float(offset)
        self.divisor = float(divisor)
        kernel = gaussian_kernel_1d(smoothing_sigma_px)
        self.radius = int(kernel.numel() // 2)
        self.register_buffer("kernel", kernel.reshape(1, 1, 1, -1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = x + self.offset
        if self.rule == 2:
            divisor = self._smoothed_max(shifted)  # (B, 1, 1, 1)
        elif self.rule == 1:
            divisor = torch.full_like(shifted[:, :1, :1, :1], self.divisor)
        else:
            divisor = torch.ones_like(shifted[:, :1, :1, :1])
        return self.network(shifted / divisor) * divisor - self.offset

    def _smoothed_max(self, shifted: torch.Tensor) -> torch.Tensor:
        """Per-image max of the Gaussian-smoothed image (<= 0: 1), ``(B, 1, 1, 1)``."""
        batch, channels, height, width = shifted.shape
        planes = shifted.reshape(batch * channels, 1, height, width)
        r = self.radius
        # SciPy's 'mirror' border is torch's 'reflect'; rows then columns (separable)
        planes = F.conv2d(F.pad(planes, [r, r, 0, 0], mode="reflect"), self.kernel)
        planes = F.conv2d(F.pad(planes, [0, 0, r, r], mode="reflect"), self.kernel.transpose(2, 3))
        peak = planes.reshape(batch, -1).amax(dim=1).reshape(batch, 1, 1, 1)
        return torch.where(peak > 0, peak, torch.ones_like(peak))


def raw_units_unet(
    *,
    width: int,
    residual: bool,
    scaling_rule: str,
    scaling_offset: float,
    divisor: float | None,
    in_channels: int = 1,
    out_channels: int = 1,
) -> RawUnitsDenoiser:
    """A lowdose U-Net in a :class:`RawUnitsDenoiser`, from plain values (the BioImage
    architecture's ``kwargs``); load the exported ``state_dict`` into it."""
    network = UNet(in_channels, out_channels, width=width, residual=residual)
    return RawUnitsDenoiser(
        network,
        rule=RULE_CODES[scaling_rule],
        offset=scaling_offset,
        divisor=1.0 if divisor is None else divisor,
    )
