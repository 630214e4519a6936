"""DSN: deep sampling networks (Chen et al., "Deep Sampling Networks"), a learned down/up pair.

- ``dsn-down`` (:class:`DownSNet`): three 3x3 convolutions of 64 channels with leaky ReLU
  (slope 0.05) at HR resolution, an ``s x s`` stride-``s`` convolution to RGB, plus the
  ``s x s`` average pool of the input (the *super-pixel residual*: the network learns
  what to add to a box-filtered thumbnail), then the quantized bilateral ReLU
  (:func:`qbrelu`): clipped to [0, 1] and rounded to 8 bits in the forward pass, with the
  gradient passed straight through inside the range and stopped outside it.
- ``dsn-up`` (:class:`UpSNet`): a dense pixel representation at LR resolution (dense
  blocks whose 3x3 layers see every earlier layer's features, each block closed by a 1x1
  bottleneck), a 1x1 convolution to ``3 s^2`` channels and the *sub-pixel residual*: the
  pixel shuffle of those channels added to the LR input tiled ``s x s`` (its
  nearest-neighbour enlargement).

One pair per integer scale (2, 3, 4), trained together by ``resizer train dsn --scale S``.
Sizes that are not multiples of the scale are handled like CAR's: the LR grid starts at the
top-left HR pixel, the HR image is padded by replication to whole blocks, and the LR side
is ``round(side / s)`` with halves up (:func:`resizer.geometry.downscaled_size`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..geometry import downscaled_size
from .base import ResamplingModel, fp32_section, widen
from .blocks import shrink_
from .registry import ModelFamily, register_architecture, register_family

__all__ = ["DSNLossWeights", "DownSNet", "UpSNet", "dsn_joint_loss", "qbrelu"]

_SCALES = (2, 3, 4)


def _check_scale(name: str, scale: float) -> int:
    if scale not in _SCALES:
        raise ValueError(f"{name} is built for x2, x3 or x4, not x{scale}")
    return int(scale)


class _QBReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, levels: int) -> torch.Tensor:  # noqa: D102
        inside = (x >= 0) & (x <= 1)
        ctx.save_for_backward(inside)
        return torch.round(x.clamp(0, 1) * levels) / levels

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        (inside,) = ctx.saved_tensors
        return grad * inside.to(grad.dtype), None


def qbrelu(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Quantized bilateral ReLU: ``round(clip(x, 0, 1) * levels) / levels``.

    Backward: the identity where ``0 <= x <= 1`` (straight through the rounding), zero
    outside (the clip's own gradient), so the downscaler learns to stay in range.
    """
    return _QBReLU.apply(x, int(levels))


@register_architecture("dsn-down", family="dsn", task="down",
                       summary="DSN Down-SNet (Chen et al.): super-pixel residual + quantized bilateral ReLU, RGB",
                       scale=2, feats=64)
class DownSNet(ResamplingModel):
    """Three 3x3 convolutions at HR, a stride-``s`` ``s x s`` convolution, plus the average pool; Q-BReLU."""

    color = "rgb"

    def __init__(self, scale: int = 2, feats: int = 64) -> None:
        super().__init__()
        self.scale = _check_scale("dsn-down", scale)
        self.body = nn.Sequential(
            nn.Conv2d(3, feats, 3, padding=1), nn.LeakyReLU(0.05, inplace=True),
            nn.Conv2d(feats, feats, 3, padding=1), nn.LeakyReLU(0.05, inplace=True),
            nn.Conv2d(feats, feats, 3, padding=1), nn.LeakyReLU(0.05, inplace=True),
        )
        self.sample = nn.Conv2d(feats, 3, self.scale, stride=self.scale)
        shrink_(self.sample, 0.1)  # starts near the box-filtered thumbnail
        # Three 3x3 layers reach 3 HR pixels; the stride-s layer stays inside its block.
        self.halo = 3 + self.scale

    def supports_scale(self, scale: float) -> bool:
        return scale == self.scale

    def output_size(self, h: int, w: int, scale: float) -> tuple[int, int]:
        return downscaled_size(h, w, self.scale)

    def pair_loss_weights(self, **terms: float) -> "DSNLossWeights":
        """The joint loss's weights (``--loss-weight lr_fidelity=0.01``); unknown names refused."""
        return DSNLossWeights(**terms)

    def pair_loss(self, up: "UpSNet", hr: torch.Tensor,
                  weights: "DSNLossWeights") -> tuple[torch.Tensor, dict[str, float]]:
        return dsn_joint_loss(self, up, hr, weights)

    def unquantized(self, x: torch.Tensor) -> torch.Tensor:
        """The thumbnail before Q-BReLU, ``(N, 3, round(H/s), round(W/s))``."""
        s = self.scale
        out_h, out_w = downscaled_size(int(x.shape[-2]), int(x.shape[-1]), s)
        pad_h, pad_w = -int(x.shape[-2]) % s, -int(x.shape[-1]) % s
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        hidden = self.body(x)
        with fp32_section(x):  # the last layer and the super-pixel residual in fp32 under autocast
            out = self.sample(widen(hidden)).add_(F.avg_pool2d(x, s))
        return out[:, :, :out_h, :out_w]

    def forward(self, x: torch.Tensor, scale: float, levels: int = 255) -> torch.Tensor:
        """``(N, 3, H, W)`` HR in [0, 1] -> the 8-bit-valued thumbnail ``(N, 3, round(H/s), round(W/s))``."""
        if scale != self.scale:
            raise ValueError(f"this dsn-down model was built for x{self.scale}, not x{scale}")
        return qbrelu(self.unquantized(x), levels)


class _DenseBlock(nn.Module):
    """``layers`` 3x3 convolutions (ReLU), each fed every earlier output; a 1x1 bottleneck back to ``feats``."""

    def __init__(self, feats: int, growth: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(feats + i * growth, growth, 3, padding=1) for i in range(layers))
        self.bottleneck = nn.Conv2d(feats + layers * growth, feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs:
            features.append(F.relu_(conv(torch.cat(features, dim=1))))
        return self.bottleneck(torch.cat(features, dim=1)).add_(x)


@register_architecture("dsn-up", family="dsn", task="up",
                       summary="DSN Up-SNet (Chen et al.): dense pixel representation + sub-pixel residual, RGB",
                       scale=2, feats=48, growth=24, layers=4, blocks=2)
class UpSNet(ResamplingModel):
    """Dense blocks at LR resolution, a 1x1 convolution to ``3 s^2`` channels, pixel shuffle + tiled LR."""

    color = "rgb"

    def __init__(self, scale: int = 2, feats: int = 48, growth: int = 24, layers: int = 4, blocks: int = 2) -> None:
        super().__init__()
        self.scale = _check_scale("dsn-up", scale)
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.Sequential(*[_DenseBlock(feats, growth, layers) for _ in range(blocks)])
        self.tail = nn.Conv2d(feats, 3 * self.scale ** 2, 1)
        shrink_(self.tail, 0.1)  # starts near the nearest-neighbour enlargement
        self.halo = 1 + blocks * layers

    def supports_scale(self, scale: float) -> bool:
        return scale == self.scale

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """``(N, 3, h, w)`` LR in [0, 1] -> ``(N, 3, h * s, w * s)`` (not clamped, like the other upscalers)."""
        if scale != self.scale:
            raise ValueError(f"this dsn-up model was built for x{self.scale}, not x{scale}")
        s = self.scale
        tiled = x.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
        feat = self.body(F.relu_(self.head(x - 0.5)))
        with fp32_section(x):  # the last layer and the sub-pixel residual in fp32 under autocast
            return F.pixel_shuffle(self.tail(widen(feat)), s).add_(tiled)


@dataclass(frozen=True)
class DSNLossWeights:
    """The joint objective: L1 reconstruction (weight 1) plus optional terms.

    ``lr_fidelity`` (default off) adds an L1 between the thumbnail (before rounding) and the
    MATLAB-bicubic downscale, for thumbnails that must look like ordinary ones.
    """

    lr_fidelity: float = 0.0
    levels: int = 255


def dsn_joint_loss(down: DownSNet, up: UpSNet, hr: torch.Tensor,
                   weights: DSNLossWeights | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """HR -> Down-SNet -> Q-BReLU -> Up-SNet -> L1 to HR (and the optional terms)."""
    from ..ops import imresize

    w = weights or DSNLossWeights()
    if down.scale != up.scale:
        raise ValueError(f"dsn-down is x{down.scale} but dsn-up is x{up.scale}")
    raw = down.unquantized(hr)
    sr = up(qbrelu(raw, w.levels), up.scale)
    terms = {"l1": F.l1_loss(sr, hr)}
    if w.lr_fidelity:
        target = imresize(hr, scale=1 / down.scale, size=tuple(raw.shape[-2:]))
        terms["lr_fidelity"] = w.lr_fidelity * F.l1_loss(raw, target)
    total = sum(terms.values())
    return total, {name: float(value.detach()) for name, value in terms.items()}


FAMILY = register_family(ModelFamily("dsn", "pair", ("dsn-down", "dsn-up"), "rgb", scales=(2, 3, 4), per_scale_config=True,
                            summary="DSN Down-SNet (Chen et al.): super-pixel residual + quantized bilateral ReLU, RGB"))
