"""Layers several model families share, so no model module imports another's private helpers.

CAR, ASDN and DAIR build their bodies from the same EDSR-style residual block and start
their output layers the same way (:func:`shrink_`); DSN shares the latter; VDSR and dejpeg share a
plain convolution stack (:func:`plain_conv_stack`). They live here
once instead of in ``car.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResBlock", "plain_conv_stack", "shrink_"]


class ResBlock(nn.Module):
    """conv-activation-conv with an identity skip (no batch norm, as in EDSR).

    ``slope`` 0 is ReLU (EDSR), else LeakyReLU (the CAR kernel network). The activation
    and the skip run in place (autograd-safe: neither convolution's backward needs its
    output), which saves two feature maps per block on whole-image runs.
    """

    def __init__(self, feats: int, slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv2 = nn.Conv2d(feats, feats, 3, padding=1)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.conv1(x)
        hidden = F.leaky_relu_(hidden, self.slope) if self.slope else F.relu_(hidden)
        return self.conv2(hidden).add_(x)


def shrink_(conv: nn.Conv2d, factor: float) -> None:
    """Scale an output layer's initial weights down and zero its bias.

    The network then starts near its fixed base (CAR's heads near uniform kernels and
    zero offsets, the upscalers near plain bicubic): joint training starts from a sane
    pair instead of random sampling positions. Not zero, so gradients reach every layer
    from the first step.
    """
    with torch.no_grad():
        conv.weight.mul_(factor)
        conv.bias.zero_()


def plain_conv_stack(in_channels: int, out_channels: int, channels: int, depth: int) -> nn.Sequential:
    """``depth`` 3x3 convolutions with ReLUs between them (VDSR's body), He-initialised, biases zero.

    The layer indices (``0``, ``2``, ... ``2 * (depth - 1)``) are the weights files' keys.
    """
    layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
    body = nn.Sequential(*layers)
    for module in body:
        if isinstance(module, nn.Conv2d):  # He initialisation, as in the VDSR paper
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return body
