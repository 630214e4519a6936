"""DAIR: deep adaptive image resampling (upscaling by per-pixel learned interpolation kernels).

Every HR pixel is a weighted sum of the ``f x f`` LR pixels around its LR parent: the
nearest-neighbour enlargement of the input sampled with interval ``s`` (the paper's eq. 1),
or with interval ``s * d`` for each dilation ``d`` of an atrous spatial pyramid, the levels
summed (eq. 2). A fully convolutional network on the LR image predicts the kernels,
``s^2 f^2`` channels per LR pixel per level, which a sub-pixel layer assigns to the ``s^2``
HR pixels of that LR pixel.

:func:`adaptive_interpolate` does this at LR resolution: the LR neighbourhoods are unfolded
once (``f^2`` planes of the LR size), each sub-pixel phase's output is their weighted sum,
and one pixel shuffle puts the phases in place, so no HR-sized neighbour stack is ever
built and memory stays proportional to the output.

Kernels are a fixed bicubic kernel for each phase plus a learned, zero-sum correction
(``delta - mean(delta)``): every kernel sums to one (flat areas stay flat), and an
untrained network is a bicubic interpolator, which makes training on a CPU start from
bicubic quality instead of from noise.

Variants (config): ``progressive`` x4 runs two x2 stages, the second seeing the first's
result concatenated with the nearest-neighbour enlargement of the input; ``recursions``
refines the result ``R`` times with one shared network that sees the current estimate
concatenated with the nearest-neighbour image and resamples the estimate again (scale 1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from .base import ResamplingModel, fp32_section, widen
from .blocks import ResBlock, shrink_
from .registry import ModelFamily, register_architecture, register_family

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DAIR", "adaptive_interpolate", "adaptive_interpolate_reference", "bicubic_phase_kernels"]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    from ..ops import cubic

    return cubic(x)


def bicubic_phase_kernels(scale: int, size: int) -> torch.Tensor:
    """``(s^2, f^2)``: for each sub-pixel phase ``(dy, dx)``, the separable bicubic weights of its LR neighbours.

    HR pixel ``i = s * parent + dy`` sits at LR position ``parent + (dy + 0.5) / s - 0.5``;
    neighbour ``parent + a`` gets ``cubic(t - a)``. Normalised to sum 1 per phase.
    """
    half = (size - 1) // 2
    taps = torch.arange(-half, size - half, dtype=torch.float64)
    phases = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5
    w1 = _cubic(phases[:, None] - taps[None, :])  # (s, f)
    w1 = w1 / w1.sum(dim=1, keepdim=True)
    kernels = w1[:, None, :, None] * w1[None, :, None, :]  # (s, s, f, f): dy, dx, a, b
    return kernels.reshape(scale * scale, size * size).float()


def _unfold(x: torch.Tensor, size: int, dilation: int) -> torch.Tensor:
    """``(N, C, f^2, h, w)``: each LR pixel's ``f x f`` neighbours at ``dilation``, borders replicated."""
    n, c, h, w = x.shape
    pad = dilation * ((size - 1) // 2)
    pad_end = dilation * (size - 1 - (size - 1) // 2)
    padded = F.pad(x, (pad, pad_end, pad, pad_end), mode="replicate")
    cols = F.unfold(padded, size, dilation=dilation)  # (N, C*f*f, h*w)
    return cols.view(n, c, size * size, h, w)


def adaptive_interpolate(x: torch.Tensor, kernels: list[torch.Tensor], scale: int, size: int,
                         dilations: tuple[int, ...] = (1,)) -> torch.Tensor:
    """Resample ``x`` ``(N, C, h, w)`` by ``scale`` with per-HR-pixel kernels, at LR resolution.

    ``kernels[l]`` is ``(N, s^2 * f^2, h, w)`` for dilation ``dilations[l]``: for LR pixel
    ``(y, x)`` and phase ``p = dy * s + dx``, channels ``p * f^2 .. p * f^2 + f^2 - 1`` weight
    its ``f x f`` neighbours (row-major) spaced ``dilation`` LR pixels apart. Returns
    ``(N, C, h * s, w * s)``; HR pixel ``(s y + dy, s x + dx)`` is the sum over levels.
    """
    n, c, h, w = x.shape
    s2, f2 = scale * scale, size * size
    out = None
    for weights, dilation in zip(kernels, dilations):
        neighbours = _unfold(x, size, dilation)  # (N, C, f2, h, w)
        phases = torch.einsum("npkyx,nckyx->ncpyx", weights.view(n, s2, f2, h, w), neighbours)
        out = phases if out is None else out + phases
    return F.pixel_shuffle(out.reshape(n, c * s2, h, w), scale)


def adaptive_interpolate_reference(x: torch.Tensor, kernels: list[torch.Tensor], scale: int, size: int,
                                   dilations: tuple[int, ...] = (1,)) -> torch.Tensor:
    """The slow, obvious version of :func:`adaptive_interpolate` (for tests): loops over HR pixels.

    It builds the nearest-neighbour enlargement ``U`` and reads ``U`` at interval ``s * d``
    around each HR pixel (eq. 1 / eq. 2), clamping at the borders.
    """
    n, c, h, w = x.shape
    half = (size - 1) // 2
    big_h, big_w = h * scale, w * scale
    nn_up = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)  # U
    out = torch.zeros(n, c, big_h, big_w, dtype=x.dtype)
    for weights, dilation in zip(kernels, dilations):
        # phase-major (p * f^2 + k) -> one f^2 kernel per HR pixel
        per_pixel = F.pixel_shuffle(
            weights.view(n, scale * scale, size * size, h, w).transpose(1, 2).reshape(n, -1, h, w), scale)
        for i in range(big_h):
            for j in range(big_w):
                for a in range(size):
                    for b in range(size):
                        yi = min(max(i + scale * dilation * (a - half), 0), big_h - 1)
                        xj = min(max(j + scale * dilation * (b - half), 0), big_w - 1)
                        out[:, :, i, j] += per_pixel[:, a * size + b, i, j, None] * nn_up[:, :, yi, xj]
    return out


class _KernelNet(nn.Module):
    """LR features -> ``levels`` kernel sets of ``s^2 f^2`` channels (zero-sum corrections to bicubic)."""

    def __init__(self, in_channels: int, scale: int, size: int, levels: int, feats: int, blocks: int) -> None:
        super().__init__()
        self.scale, self.size, self.levels = scale, size, levels
        self.head = nn.Conv2d(in_channels, feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(feats, 0.0) for _ in range(blocks)])
        self.tail = nn.Conv2d(feats, levels * scale * scale * size * size, 3, padding=1)
        shrink_(self.tail, 0.1)
        self.register_buffer("base", bicubic_phase_kernels(scale, size).reshape(-1, 1, 1), persistent=False)
        self.depth = 1 + 2 * blocks + 1  # 3x3 layers: the receptive radius in input pixels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feat = F.relu_(self.head(x - 0.5))
        hidden = self.body(feat)
        with fp32_section(x):  # the last layer and the kernels in fp32 under autocast
            return self._kernels(self.tail(widen(hidden)))

    def _kernels(self, delta: torch.Tensor) -> list[torch.Tensor]:
        """The tail's output as zero-sum corrections added to the bicubic phase kernels."""
        n, _, h, w = delta.shape
        s2, f2 = self.scale ** 2, self.size ** 2
        delta = delta.view(n, self.levels, s2, f2, h, w)
        # zero-sum over every tap of every level: the kernels of a phase keep summing to one
        delta = delta - delta.mean(dim=(1, 3), keepdim=True)
        kernels = [delta[:, level].reshape(n, s2 * f2, h, w) for level in range(self.levels)]
        kernels[0] = kernels[0] + self.base.to(delta.dtype)
        return kernels


@register_architecture("dair", family="dair", task="up",
                       summary="DAIR (deep adaptive image resampling): learned per-pixel kernels, luma",
                       scale=2, kernel_size=5, feats=48, blocks=6, dilations=[1], progressive=True, recursions=0)
class DAIR(ResamplingModel):
    """Per-pixel learned interpolation kernels on the NN-enlarged luma; one model per scale (2, 3, 4)."""

    color = "y"

    def __init__(self, scale: int = 2, kernel_size: int = 5, feats: int = 48, blocks: int = 6,
                 dilations: list[int] | tuple[int, ...] = (1,), progressive: bool = True, recursions: int = 0) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"dair is built for x2, x3 or x4, not x{scale}")
        if kernel_size < 1 or not dilations:
            raise ValueError("dair needs kernel_size >= 1 and at least one dilation")
        self.scale, self.kernel_size = int(scale), int(kernel_size)
        self.dilations = tuple(int(d) for d in dilations)
        self.stages = [2, 2] if (self.scale == 4 and progressive) else [self.scale]
        levels = len(self.dilations)
        self.nets = nn.ModuleList(
            _KernelNet(1 if k == 0 else 2, stage, self.kernel_size, levels, feats, blocks)
            for k, stage in enumerate(self.stages))
        self.recursions = int(recursions)
        self.refiner = _KernelNet(2, 1, self.kernel_size, levels, feats, blocks) if self.recursions else None
        # Input pixels of context: each stage's network and its f x f x dilation neighbourhood,
        # divided by the upscaling already done; refinements run at HR.
        reach = max(self.dilations) * ((self.kernel_size - 1) // 2 + 1)
        need, done = 0.0, 1
        for k, stage in enumerate(self.stages):
            need += (self.nets[k].depth + reach) / done
            done *= stage
        if self.refiner is not None:
            need += self.recursions * (self.refiner.depth + reach) / done
        self.halo = math.ceil(need) + 1

    def supports_scale(self, scale: float) -> bool:
        return scale == self.scale

    def _nearest(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)

    def kernels_for(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The first stage's kernels for LR luma ``x`` (what ``resizer kernels`` draws)."""
        return self.nets[0](x)

    @torch.no_grad()
    def kernel_image(self, x: torch.Tensor, max_side: int = 256, gap: int = 2) -> "np.ndarray":
        """The predicted kernels as a picture: an ``f x f`` grid of the tap weight maps (uint8, grey).

        Map ``(a, b)`` shows, at every LR pixel of ``x`` ``(1, 1, h, w)``, the weight the first
        stage gives its neighbour ``(a - f//2, b - f//2)`` for the HR pixel at the LR pixel's
        top-left phase (summed over dilation levels). Grey 128 is zero, white and black are
        the largest positive and negative weights: flat areas show the fixed bicubic pattern,
        edges and texture show how the kernels bend. Maps are shrunk (area) to ``max_side``.
        """
        import numpy as np

        f2, s2 = self.kernel_size ** 2, self.stages[0] ** 2
        kernels = sum(k.view(1, s2, f2, *k.shape[-2:])[:, 0] for k in self.kernels_for(x.float()))
        maps = kernels[0]  # (f^2, h, w)
        h, w = maps.shape[-2:]
        shrink = max(1.0, max(h, w) / max_side)
        if shrink > 1:
            maps = F.adaptive_avg_pool2d(maps[None], (max(1, round(h / shrink)), max(1, round(w / shrink))))[0]
        peak = float(maps.abs().max()) or 1.0
        tiles = (128 + 127 * maps / peak).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        f, (th, tw) = self.kernel_size, tiles.shape[-2:]
        grid = np.full((f * th + (f - 1) * gap, f * tw + (f - 1) * gap), 255, np.uint8)
        for k in range(f2):
            a, b = divmod(k, f)
            grid[a * (th + gap):a * (th + gap) + th, b * (tw + gap):b * (tw + gap) + tw] = tiles[k]
        return grid

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """``(N, 1, h, w)`` luma in [0, 1] -> ``(N, 1, h * s, w * s)``, not clamped."""
        if scale != self.scale:
            raise ValueError(f"this dair model was built for x{self.scale}, not x{scale}")
        current, done = x, 1
        for k, (net, stage) in enumerate(zip(self.nets, self.stages)):
            guide = current if k == 0 else torch.cat([current, self._nearest(x, done)], dim=1)
            current = self._interpolate(current, net(guide), stage)
            done *= stage
        if self.refiner is not None:
            nearest = self._nearest(x, done)
            for _ in range(self.recursions):
                kernels = self.refiner(torch.cat([current, nearest], dim=1))
                current = self._interpolate(current, kernels, 1)
        return current

    def _interpolate(self, x: torch.Tensor, kernels: list[torch.Tensor], stage: int) -> torch.Tensor:
        """:func:`adaptive_interpolate`, in fp32 under autocast (its einsum would otherwise run in low precision)."""
        with fp32_section(x):
            return adaptive_interpolate(widen(x), [widen(k) for k in kernels], stage, self.kernel_size,
                                        self.dilations)


FAMILY = register_family(ModelFamily("dair", "single", ("dair",), "y", scales=(2, 3, 4), per_scale_config=True, draws_kernels=True,
                            summary="DAIR (deep adaptive image resampling): learned per-pixel kernels, luma"))
