"""ASDN: arbitrary-scale upscaling (Shen, Wang & Zhang, "ASDN: A Deep Convolutional Network for
Arbitrary Scale Image Super-Resolution", 2020), sized for a CPU.

**Laplacian frequency representation.** ``levels`` = L outputs for the scales
``r_l = 1 + l / (L - 1)`` (L = 11: 1.0, 1.1, ..., 2.0), all predicted on the output grid
of the requested scale. A scale ``r`` in (1, 2] is reconstructed from the two nearest
levels (:func:`blend_levels`)::

    i = ceil((r - 1)(L - 1)),  w_r = (L - 1)(r_i - r),  O_r = O_{r_i} + w_r (O_{r_{i-1}} - O_{r_i})

Level 0 (scale 1) is the bicubic base itself (an identity resize needs no detail), so
the network predicts L - 1 detail maps. Trained at the level scales (one per batch),
each level learns the detail that exists at its own scale; in-between scales interpolate
between two trained answers.

**Recursion past x2** (:func:`recursion_schedule`): ``N = ceil(log2 R)`` passes, x2 for the
first ``N - 1`` and ``R / 2^(N-1)`` for the last.

**Trunk, sized for this product.** The paper's 16 dense attention blocks (~22M
parameters) run at the output resolution; here every 3x3 convolution but the last runs
at the *input* resolution (``blocks`` EDSR residual blocks of ``feats`` channels), one
sub-pixel convolution lifts the features to the x2 grid, a separable linear resample
brings them to the exact output grid of any r <= 2 (a shrink from the x2 grid, so no
detail is invented by interpolation), and one 3x3 convolution there predicts the L - 1
detail maps added to the MATLAB-bicubic upscale. A luma model, like SRCNN and VDSR:
chroma is bicubic. Channel attention was left out: on networks this narrow it adds
latency for a gain within the noise of a CPU training budget.

Tiling: every operation maps output pixel ``j`` to input position ``(j + 0.5) / r - 0.5``
(the scale, not the size ratio, sets the phase), so a tile that starts on an integer
output position gives the whole image's pixels (the engine aligns tiles to the scale's
period).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..geometry import upscaled_size
from ..ops import imresize
from .base import ResamplingModel, fp32_section, in_fp32, widen
from .blocks import ResBlock, shrink_
from .registry import ModelFamily, register_architecture, register_family

__all__ = ["ASDN", "blend_levels", "level_index", "level_scales", "linear_resample", "recursion_schedule"]

_EPS = 1e-9


def level_scales(levels: int = 11) -> list[float]:
    """The scales ``r_l = 1 + l / (L - 1)`` of the Laplacian levels, l = 0..L-1."""
    return [1.0 + l / (levels - 1) for l in range(levels)]


def level_index(scale: float, levels: int = 11) -> tuple[int, float]:
    """``(i, w_r)`` for a scale in (1, 2]: the upper level and the weight of the lower one.

    ``i = ceil((r - 1)(L - 1))`` and ``w_r = (L - 1)(r_i - r)``, with a tolerance so that a
    level's own scale (1.1 is 1.0000000000000009 after the subtraction) picks that level
    with weight 0.
    """
    if not 1.0 < scale <= 2.0 + _EPS:
        raise ValueError(f"a single ASDN pass covers scales in (1, 2], not {scale:g}")
    i = min(levels - 1, max(1, math.ceil((scale - 1.0) * (levels - 1) - 1e-6)))
    weight = (levels - 1) * (1.0 + i / (levels - 1) - scale)
    return i, min(max(weight, 0.0), 1.0)


def blend_levels(outputs: list[torch.Tensor] | torch.Tensor, scale: float, levels: int = 11) -> torch.Tensor:
    """``O_r = O_{r_i} + w_r (O_{r_{i-1}} - O_{r_i})`` from the level outputs (a list, or dim 1 of a tensor)."""
    i, weight = level_index(scale, levels)
    upper = outputs[i] if isinstance(outputs, list) else outputs[:, i:i + 1]
    if weight == 0.0:
        return upper
    lower = outputs[i - 1] if isinstance(outputs, list) else outputs[:, i - 1:i]
    return upper + weight * (lower - upper)


def recursion_schedule(scale: float) -> list[float]:
    """The per-pass scales for ``scale`` >= 1: ``N = ceil(log2 R)`` passes, x2 then ``R / 2^(N-1)``."""
    if scale < 1:
        raise ValueError(f"ASDN upscales; scale {scale:g} is below 1")
    if scale <= 2.0 + _EPS:
        return [scale]
    passes = math.ceil(math.log2(scale) - 1e-9)
    return [2.0] * (passes - 1) + [scale / 2 ** (passes - 1)]


def linear_resample(x: torch.Tensor, size: tuple[int, int], step: float) -> torch.Tensor:
    """Separable linear resampling of ``x`` to ``size``: output ``j`` reads input ``(j + 0.5) * step - 0.5``.

    ``step`` (input pixels per output pixel) sets the phase rather than the size ratio,
    which keeps tiles exact; positions past the border are clamped to it.
    """
    for dim, out_len in ((2, size[0]), (3, size[1])):
        in_len = int(x.shape[dim])
        if out_len == in_len and abs(step - 1.0) < _EPS:
            continue
        pos = (torch.arange(out_len, dtype=torch.float64) + 0.5) * step - 0.5
        pos = pos.clamp_(0, in_len - 1)
        low = pos.floor().long().clamp_(max=in_len - 1)
        high = (low + 1).clamp_(max=in_len - 1)
        frac = (pos - low.to(torch.float64)).to(x.dtype).to(x.device)
        shape = [1, 1, 1, 1]
        shape[dim] = out_len
        frac = frac.view(shape)
        a = x.index_select(dim, low.to(x.device))
        b = x.index_select(dim, high.to(x.device))
        x = a + (b - a) * frac
    return x


@register_architecture("asdn", family="asdn", task="up",
                       summary="ASDN-style arbitrary-scale upscaler: Laplacian levels x1.1..x2, recursion past x2",
                       feats=48, blocks=6, levels=11)
class ASDN(ResamplingModel):
    """Luma upscaler for any real scale >= 1 (see the module docstring)."""

    color = "y"
    channels_last = True  # CPU: 0.131 -> 0.155 MP/s out at x2 (same run, loaded 2 cores)

    def __init__(self, feats: int = 48, blocks: int = 6, levels: int = 11) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError("ASDN needs at least 2 levels")
        self.levels = int(levels)
        self.head = nn.Conv2d(1, feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(feats, 0.0) for _ in range(blocks)])
        self.trunk = nn.Conv2d(feats, feats, 3, padding=1)
        self.lift = nn.Conv2d(feats, 4 * feats, 3, padding=1)
        self.tail = nn.Conv2d(feats, self.levels - 1, 3, padding=1)
        shrink_(self.tail, 0.1)  # starts near plain bicubic at every level
        # Input pixels of context per pass: head, 2 per block, trunk, lift (3x3 each), the
        # tail and the linear resample (under one input pixel each at r > 1), and bicubic's 2.
        self.pass_context = 1 + 2 * blocks + 1 + 1 + 1 + 2
        self.halo = self.context(4.0)

    def supports_scale(self, scale: float) -> bool:
        return scale >= 1

    def context(self, scale: float) -> int:
        """A pass needs ``pass_context``; each earlier x2 pass adds its own, the later ones' halved."""
        need = 0
        for _ in reversed(recursion_schedule(max(scale, 1.0))):
            need = self.pass_context + math.ceil(need / 2)
        return need

    def level_outputs(self, x: torch.Tensor, scale: float, size: tuple[int, int] | None = None) -> torch.Tensor:
        """All L level outputs ``(N, L, H, W)`` on the output grid of one pass at ``scale`` in (1, 2]."""
        size = size or upscaled_size(int(x.shape[-2]), int(x.shape[-1]), scale)
        base = in_fp32(lambda t: imresize(t, scale=scale, size=size), x)
        detail = self._detail(x, scale, size)
        with fp32_section(x):
            return torch.cat([base, base + detail], dim=1)

    def _detail(self, x: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
        """The L - 1 detail maps; under autocast the trunk runs in low precision, the resample and tail in fp32."""
        feat = self.head(x - 0.5)
        feat = self.trunk(self.body(feat)).add_(feat)
        grid2 = F.relu_(F.pixel_shuffle(self.lift(feat), 2))
        with fp32_section(x):
            grid2 = widen(grid2)
            if abs(scale - 2.0) > _EPS:
                grid2 = linear_resample(grid2, size, 2.0 / scale)
            return self.tail(grid2)

    def _single(self, x: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
        """One pass at ``scale`` in (1, 2]: bicubic plus the blend of the two nearest levels' detail."""
        base = in_fp32(lambda t: imresize(t, scale=scale, size=size), x)
        detail = self._detail(x, scale, size)  # channel c is level c + 1; level 0 adds nothing
        with fp32_section(x):
            levels = [torch.zeros_like(base), *detail.split(1, dim=1)]
            return base + blend_levels(levels, scale, self.levels)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """``(N, 1, h, w)`` luma in [0, 1] -> ``(N, 1, round(h * scale), round(w * scale))``, not clamped."""
        if scale < 1:
            raise ValueError(f"ASDN upscales; scale {scale:g} is below 1")
        final = upscaled_size(int(x.shape[-2]), int(x.shape[-1]), scale)
        if scale <= 1.0 + _EPS:
            return in_fp32(lambda t: imresize(t, scale=1.0, size=final), x)
        schedule = recursion_schedule(scale)
        for k, step in enumerate(schedule):
            last = k == len(schedule) - 1
            size = final if last else upscaled_size(int(x.shape[-2]), int(x.shape[-1]), step)
            x = self._single(x, step, size)
            if not last:
                x = x.clamp(0, 1)  # the next pass sees an image, as in training
        return x


FAMILY = register_family(ModelFamily("asdn", "any-scale", ("asdn",), "y",
                            summary="ASDN-style arbitrary-scale upscaler: Laplacian levels x1.1..x2, recursion past x2"))
