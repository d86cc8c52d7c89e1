"""The Noise2Noise U-Net of Lehtinen et al. (2018), as used by the paper, nothing else.

Architecture (width ``w``, paper: ``w = 48``; every convolution is 3x3, stride 1, zero padding 1):

=============  =========================  ==============================
layer          input -> output maps       spatial size (input H x W)
=============  =========================  ==============================
enc_conv0      in -> w                    H
enc_conv1      w -> w, max-pool 2         H -> H/2      (skip pool1)
enc_conv2..5   w -> w, max-pool 2 each    H/2 -> H/32   (skips pool2..4)
enc_conv6      w -> w                     H/32
dec_conv5a/b   upsample, cat pool4: 2w -> 2w -> 2w      H/16
dec_conv4a/b   upsample, cat pool3: 3w -> 2w -> 2w      H/8
dec_conv3a/b   upsample, cat pool2: 3w -> 2w -> 2w      H/4
dec_conv2a/b   upsample, cat pool1: 3w -> 2w -> 2w      H/2
dec_conv1a/b   upsample, cat input: 2w+in -> 4w/3 -> 2w/3  H
dec_conv1      2w/3 -> out, linear    H
=============  =========================  ==============================

At ``w = 48`` the last level is 64 -> 32 -> out as in the reference implementation
(NVlabs/noise2noise ``network.py``); for other widths those two layers scale with the width,
``round(4 w / 3)`` and ``round(2 w / 3)`` maps (21 and 11 at ``w = 16``). Upsampling is nearest
neighbour x2, activations LeakyReLU(0.1) except the linear output, weights He-normal
(``std = sqrt(2 / fan_in)``; the output layer ``sqrt(1 / fan_in)``), biases zero.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_DOWNSAMPLE = 32  # five 2x2 poolings


def _conv(in_maps: int, out_maps: int, *, gain: float = 2.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_maps, out_maps, kernel_size=3, padding=1)
    fan_in = in_maps * 9
    nn.init.normal_(conv.weight, std=(gain / fan_in) ** 0.5)
    nn.init.zeros_(conv.bias)
    return conv


class UNet(nn.Module):
    """The paper's six-level U-Net denoiser.

    ``OUTPUT_LAYER`` names the last convolution: zero in a residual net at initialisation, so
    that net (weights and bias zero there) is exactly the identity.

    Parameters
    ----------
    in_channels, out_channels
        Image channels (1 for X-ray projections and CT slices).
    width
        Encoder feature maps (paper: 48); the decoder uses ``2 * width``.
    residual
        If True the network predicts the noise and returns ``input - prediction``; the last
        convolution is then zero-initialised so the untrained network is the identity (a random
        last layer would start by adding noise). Needs ``in_channels == out_channels``.

    Notes
    -----
    ``forward`` takes ``(B, in_channels, H, W)`` float tensors of any ``H, W``; the input is
    reflect-padded to a multiple of 32 and the output cropped back, so the output is
    ``(B, out_channels, H, W)`` in the input's units.
    """

    OUTPUT_LAYER = "dec_conv1"

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, width: int = 48, residual: bool = False
    ) -> None:
        super().__init__()
        if width < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"UNet needs positive channels and width, got width={width}")
        if residual and in_channels != out_channels:
            raise ValueError("residual UNet needs in_channels == out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.width, self.residual = width, residual
        w, d = width, 2 * width
        last_a, last_b = round(4 * width / 3), round(2 * width / 3)
        self.enc_conv0 = _conv(in_channels, w)
        self.enc_conv1 = _conv(w, w)
        self.enc_conv2 = _conv(w, w)
        self.enc_conv3 = _conv(w, w)
        self.enc_conv4 = _conv(w, w)
        self.enc_conv5 = _conv(w, w)
        self.enc_conv6 = _conv(w, w)
        self.dec_conv5a = _conv(2 * w, d)
        self.dec_conv5b = _conv(d, d)
        self.dec_conv4a = _conv(d + w, d)
        self.dec_conv4b = _conv(d, d)
        self.dec_conv3a = _conv(d + w, d)
        self.dec_conv3b = _conv(d, d)
        self.dec_conv2a = _conv(d + w, d)
        self.dec_conv2b = _conv(d, d)
        self.dec_conv1a = _conv(d + in_channels, last_a)
        self.dec_conv1b = _conv(last_a, last_b)
        self.dec_conv1 = _conv(last_b, out_channels, gain=1.0)
        if residual:
            nn.init.zeros_(self.dec_conv1.weight)

    @property
    def name(self) -> str:
        """Short model name used in every output, e.g. ``"unet-w48"`` or ``"unet-w16-res"``."""
        return f"unet-w{self.width}" + ("-res" if self.residual else "")

    def config(self) -> dict:
        """Constructor arguments, enough to rebuild the network (stored in checkpoints)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "width": self.width,
            "residual": self.residual,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` of shape ``(B, C, H, W)``; returns ``(B, out_channels, H, W)``."""
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % _DOWNSAMPLE, -width % _DOWNSAMPLE
        padded = _reflect_pad(x, pad_h, pad_w) if (pad_h or pad_w) else x
        out = self._unet(padded)[..., :height, :width]
        return x - out if self.residual else out

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        act = nn.functional.leaky_relu
        skips = [x]
        h = act(self.enc_conv0(x), 0.1)
        h = F.max_pool2d(act(self.enc_conv1(h), 0.1), 2)  # (B, w, H/2, W/2)
        skips.append(h)
        for conv in (self.enc_conv2, self.enc_conv3, self.enc_conv4):
            h = F.max_pool2d(act(conv(h), 0.1), 2)
            skips.append(h)  # pool2, pool3, pool4
        h = F.max_pool2d(act(self.enc_conv5(h), 0.1), 2)  # (B, w, H/32, W/32)
        h = act(self.enc_conv6(h), 0.1)
        decoder = (
            (self.dec_conv5a, self.dec_conv5b),
            (self.dec_conv4a, self.dec_conv4b),
            (self.dec_conv3a, self.dec_conv3b),
            (self.dec_conv2a, self.dec_conv2b),
            (self.dec_conv1a, self.dec_conv1b),
        )
        for conv_a, conv_b in decoder:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = torch.cat([h, skips.pop()], dim=1)
            h = act(conv_b(act(conv_a(h), 0.1)), 0.1)
        return self.dec_conv1(h)  # linear output


def _reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    # Reflect padding needs pad < size; tiny images fall back to replicate for the remainder.
    height, width = x.shape[-2:]
    if pad_h < height and pad_w < width:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
