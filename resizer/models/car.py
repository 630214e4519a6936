"""CAR: content adaptive resampler (Sun & Chen, "Learned Image Downscaling for Upscaling
using Content Adaptive Resampler", TIP 2020), sized for a CPU product.

Two networks trained together, one model per integer scale (2 or 4):

- ``car-down`` (:class:`CARDownscaler`): a small CNN looks at the HR image and predicts,
  for every LR pixel, a ``k x k`` resampling kernel (softmax: non-negative, sums to 1)
  and a per-tap offset ``(dx, dy)`` (tanh, at most ``max_offset`` HR pixels); the
  operator :func:`resizer.ops.adaptive_resample` applies them to the HR image. The LR
  is a convex combination of HR samples, so it is a real, viewable thumbnail in [0, 1].
- ``car-up`` (:class:`CARUpscaler`): an EDSR-style network at LR resolution predicting a
  residual over the MATLAB-bicubic upscale, pixel-shuffled to HR.

Where the paper's networks are large (a 5x5 conv of 64 channels at full HR resolution,
256-channel heads, k = 3s + 1, a 32 x 256 EDSR), these run the whole kernel network at
LR resolution after a stride-s stem, use k = 2s taps and one shared 1x1 head, and a
narrower EDSR: x4 downscaling costs ~0.6 CPU-seconds per 2 MP of input (measured on
the 2-core development machine: ~3 MP/s per free core, 2 MP/s or more on 2 cores
shared with two training jobs).

The joint-training pieces (quantiser, offset regularisers, the joint loss) are plain
functions at the end of the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ..geometry import downscaled_size, upscaled_size
from ..ops import adaptive_resample, imresize
from .base import ResamplingModel, fp32_section, in_fp32, widen
from .blocks import ResBlock, shrink_
from .registry import ModelFamily, register_architecture, register_family

__all__ = [
    "CARDownscaler", "CARLossWeights", "CARSample", "CARUpscaler", "car_joint_loss", "offset_distance_loss",
    "offset_tv_loss", "quantize",
]

_SCALES = (2, 4)
_BAND_SAMPLES = 1 << 21  # samples per band in inference (see resizer.ops._CAR_CHUNK_SAMPLES)


def _check_scale(name: str, scale: float) -> int:
    if scale not in _SCALES:
        raise ValueError(f"{name} is built for x2 or x4, not x{scale}")
    return int(scale)


class CARSample(NamedTuple):
    """What :meth:`CARDownscaler.resample` returns: the LR and the resampling parameters."""

    lr: torch.Tensor  # (N, C, h, w), in [0, 1]
    kernels: torch.Tensor  # (N, k*k, h, w), softmax weights
    offsets_x: torch.Tensor  # (N, k*k, h, w), HR pixels, |.| <= max_offset
    offsets_y: torch.Tensor


@register_architecture("car-down", family="car", task="down",
                       summary="CAR content adaptive resampler (Sun & Chen 2020), RGB, trained with car-up",
                       scale=4, kernel_size=None, feats=32, blocks=4, max_offset=None)
class CARDownscaler(ResamplingModel):
    """Kernel-and-offset network plus the adaptive resampler; one model per scale (2 or 4).

    ``kernel_size`` defaults to ``2 * scale`` taps a side (a 2-LR-pixel footprint; the
    paper's 3s + 1 costs ~2.6x the sampling at x4), ``max_offset`` to ``scale`` HR
    pixels (the paper's ``offset_unit``). The network runs at LR resolution: a stride-``s``
    stem (pixel-unshuffle and a 3x3 convolution, as one convolution), ``blocks`` residual
    blocks of ``feats`` channels, a 3x3 trunk convolution with a long skip, and one 1x1
    head giving ``k*k`` kernel logits and ``2 k*k`` offsets (a 3x3 head cost as much as
    the rest of the network together at x4).
    """

    color = "rgb"

    def __init__(self, scale: int = 4, kernel_size: int | None = None, feats: int = 32, blocks: int = 4,
                 max_offset: float | None = None) -> None:
        super().__init__()
        self.scale = _check_scale("car-down", scale)
        self.kernel_size = int(kernel_size) if kernel_size is not None else 2 * self.scale
        if self.kernel_size < 1:
            raise ValueError("kernel_size must be positive")
        self.max_offset = float(max_offset) if max_offset is not None else float(self.scale)
        kk = self.kernel_size ** 2
        # A 3s x 3s convolution of stride s: the same function as pixel-unshuffle then a
        # 3x3 convolution (the CAR code's stem), without the unshuffle's copy (2x faster).
        self.stem = nn.Conv2d(3, feats, 3 * self.scale, stride=self.scale, padding=self.scale)
        self.body = nn.Sequential(*[ResBlock(feats, 0.2) for _ in range(blocks)])
        self.trunk = nn.Conv2d(feats, feats, 3, padding=1)
        self.head = nn.Conv2d(feats, 3 * kk, 1)
        shrink_(self.head, 0.1)
        # LR-resolution 3x3 convolutions from HR input to head output (stem, blocks, trunk;
        # the head is 1x1): each reaches one LR pixel (``scale`` HR pixels) further. The taps
        # reach (k - s) / 2 + max_offset HR pixels beyond an LR pixel's block (the bilinear
        # neighbour is inside the ceil).
        self.lr_radius = 1 + 2 * blocks + 1
        reach = math.ceil((self.kernel_size - self.scale) / 2 + self.max_offset - 1e-9)
        self.halo = max(self.lr_radius * self.scale, reach, 0)

    def supports_scale(self, scale: float) -> bool:
        return scale == self.scale

    def context(self, scale: float) -> int:
        """HR pixels of context on each side (tiles must start on multiples of the scale)."""
        return self.halo

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features ``(N, feats, ceil(H/s), ceil(W/s))``; odd sizes padded bottom/right by replication."""
        s = self.scale
        pad_h, pad_w = -int(x.shape[-2]) % s, -int(x.shape[-1]) % s
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        feat = F.leaky_relu_(self.stem(x - 0.5), 0.2)
        # Standard layout for the heads and the resampler (int8 convolutions leave it channels-last, and
        # the resampler is slower so: 0.8x fp32's speed); a no-op in fp32.
        return self.trunk(self.body(feat)).add_(feat).contiguous()

    def _heads(self, feat: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Softmax kernels and tanh-bounded offsets, in ``dtype``.

        Always float32 or wider: under fp16 autocast the head's output is half precision,
        and half-precision sampling positions are off by up to a pixel past 1024.
        """
        kk = self.kernel_size ** 2
        logits, offsets = in_fp32(self.head, feat).to(dtype).split([kk, 2 * kk], dim=1)
        offsets = torch.tanh(offsets) * self.max_offset
        offsets_x, offsets_y = offsets.chunk(2, dim=1)
        return torch.softmax(logits, dim=1), offsets_x, offsets_y

    @staticmethod
    def _sampling_dtype(x: torch.Tensor) -> torch.dtype:
        return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32

    def parameters_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(kernels, offsets_x, offsets_y)``, each ``(N, k*k, ceil(H/s), ceil(W/s))``, for HR ``x``.

        Sizes that are not multiples of the scale are padded at the bottom/right by
        replication first (the LR grid always starts at the top-left HR pixel).
        """
        return self._heads(self._features(x), self._sampling_dtype(x))

    def resample(self, x: torch.Tensor) -> CARSample:
        """Downscale ``x`` ``(N, 3, H, W)`` in [0, 1]; also return the kernels and offsets (for the losses).

        LR pixel ``(X, Y)`` belongs to the HR block ``[sX, sX + s) x [sY, sY + s)``
        (the operator's grid: its taps are centred on that block). The LR size is
        ``round(H / s)`` with halves rounded up (:func:`downscaled_size`, the pipeline's
        rounding): the image is padded by replication to ``ceil(H / s) * s`` and, where
        ``round`` is below ``ceil`` (the last block would be mostly padding), the last LR
        row/column is dropped. The HR image is never cropped or stretched, so a tile
        whose origin is a multiple of ``s`` gives exactly the whole image's pixels.
        """
        out_h, out_w = downscaled_size(int(x.shape[-2]), int(x.shape[-1]), self.scale)
        kernels, offsets_x, offsets_y = self.parameters_for(x)
        kernels, offsets_x, offsets_y = (t[:, :, :out_h, :out_w] for t in (kernels, offsets_x, offsets_y))
        # Sampling the unpadded image: its border clamp is the replication padding.
        lr = adaptive_resample(x.to(kernels.dtype), kernels, offsets_x, offsets_y, self.scale)
        return CARSample(lr.clamp(0, 1), kernels, offsets_x, offsets_y)

    def _downscale_banded(self, x: torch.Tensor) -> torch.Tensor:
        """``resample(x).lr`` without autograd, the heads and the sampler run in bands of LR rows.

        The head's output is ``3 k^2`` channels (192 at x4), six times the trunk's: in
        bands of ~2M samples it never exists for the whole image (a 12 MP image would
        need ~1.2 GB for it), and the bands run faster (they stay in cache).
        """
        out_h, out_w = downscaled_size(int(x.shape[-2]), int(x.shape[-1]), self.scale)
        feat = self._features(x)[:, :, :out_h, :out_w]
        per_row = max(1, int(x.shape[0]) * int(x.shape[1]) * self.kernel_size ** 2 * out_w)
        rows = max(1, _BAND_SAMPLES // per_row)
        dtype = self._sampling_dtype(x)
        x = x.to(dtype)
        parts = []
        for r in range(0, out_h, rows):
            kernels, offsets_x, offsets_y = self._heads(feat[:, :, r:r + rows], dtype)
            parts.append(adaptive_resample(x, kernels, offsets_x, offsets_y, self.scale, row_start=r))
        return torch.cat(parts, dim=2).clamp_(0, 1)

    def pair_loss_weights(self, **terms: float) -> "CARLossWeights":
        """The joint loss's weights (``resizer train car --loss-weight offset=0.001``); unknown names refused."""
        return CARLossWeights(**terms)

    def pair_loss(self, up: "CARUpscaler", hr: torch.Tensor,
                  weights: "CARLossWeights") -> tuple[torch.Tensor, dict[str, float]]:
        return car_joint_loss(self, up, hr, weights)

    def output_size(self, h: int, w: int, scale: float) -> tuple[int, int]:
        return downscaled_size(h, w, self.scale)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """``(N, 3, H, W)`` HR in [0, 1] -> ``(N, 3, round(H / s), round(W / s))`` LR in [0, 1]."""
        if scale != self.scale:
            raise ValueError(f"this car-down model was built for x{self.scale}, not x{scale}")
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return self.resample(x).lr
        return self._downscale_banded(x)


@register_architecture("car-up", family="car", task="up",
                       summary="CAR's upscaler: EDSR-style residual over bicubic, RGB, trained with car-down",
                       scale=4, feats=48, blocks=8)
class CARUpscaler(ResamplingModel):
    """EDSR-style body at LR resolution, one pixel-shuffle, added to the MATLAB-bicubic upscale.

    Every convolution runs at LR resolution (the last one predicts ``3 s^2`` channels
    that the pixel shuffle turns into the HR residual), which is what makes it usable on
    a CPU; the bicubic base means an untrained or weak body still gives bicubic quality.
    """

    color = "rgb"

    def __init__(self, scale: int = 4, feats: int = 48, blocks: int = 8) -> None:
        super().__init__()
        self.scale = _check_scale("car-up", scale)
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(feats, 0.0) for _ in range(blocks)])
        self.trunk = nn.Conv2d(feats, feats, 3, padding=1)
        self.tail = nn.Conv2d(feats, 3 * self.scale ** 2, 3, padding=1)
        shrink_(self.tail, 0.1)
        # head + 2 per block + trunk + tail, in LR pixels; MATLAB bicubic at x2/x4 reads
        # at most 2 LR pixels beyond an output pixel's own, which the convolutions exceed.
        self.halo = max(1 + 2 * blocks + 1 + 1, 2)

    def supports_scale(self, scale: float) -> bool:
        return scale == self.scale

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """``(N, 3, h, w)`` LR in [0, 1] -> ``(N, 3, h * s, w * s)`` (not clamped, like the other upscalers)."""
        if scale != self.scale:
            raise ValueError(f"this car-up model was built for x{self.scale}, not x{scale}")
        size = upscaled_size(int(x.shape[-2]), int(x.shape[-1]), self.scale)
        base = in_fp32(lambda t: imresize(t, scale=self.scale, size=size), x)
        feat = self.head(x - 0.5)
        feat = self.trunk(self.body(feat)).add_(feat)
        with fp32_section(x):  # the last layer and the residual add in fp32 under autocast
            return F.pixel_shuffle(self.tail(widen(feat)), self.scale).add_(base)


# ------------------------------------------------------------------ joint-training pieces

def quantize(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Clamp to [0, 1] and round to ``levels`` steps in the forward pass; identity gradient (straight-through).

    Training the pair on the rounded thumbnail is what makes the upscaler work from the
    8-bit file the user actually stores; the straight-through gradient lets the
    reconstruction loss reach the downscaler through the rounding (CAR's quantiser).
    """
    rounded = torch.round(x.clamp(0, 1) * levels) / levels
    return x + (rounded - x).detach()


def offset_distance_loss(offsets_x: torch.Tensor, offsets_y: torch.Tensor, kernels: torch.Tensor | None = None,
                         margin: float = 0.0, eps: float = 1e-6) -> torch.Tensor:
    """Mean length of the offsets beyond ``margin`` HR pixels: keeps the taps near their grid.

    ``relu(|(dx, dy)| - margin)`` per tap, averaged over taps and pixels; with
    ``kernels``, each pixel's taps are weighted by their kernel weights instead (a tap
    that carries no weight is free to go anywhere). Without it the thumbnail can drift
    into a shuffled code of the HR image that only the upscaler can read: the offsets
    are only meant to bend the sampling grid along edges. Zero for zero offsets;
    ``sqrt(. + eps) - sqrt(eps)`` keeps the gradient finite there.
    """
    length = torch.sqrt(offsets_x * offsets_x + offsets_y * offsets_y + eps) - math.sqrt(eps)
    penalty = F.relu(length - margin)
    if kernels is not None:
        return (penalty * kernels).sum(dim=1).mean()
    return penalty.mean()


def offset_tv_loss(offsets_x: torch.Tensor, offsets_y: torch.Tensor, partial: bool = True) -> torch.Tensor:
    """Total variation of the offset fields between neighbouring LR pixels (mean absolute difference).

    ``partial`` (the default) takes only ``d(dx)/dx`` and ``d(dy)/dy``: the differences
    that change the spacing of neighbouring pixels' sampling grids (their folding over
    each other or leaving gaps), while letting the grid shear along an edge freely;
    ``partial=False`` adds ``d(dx)/dy`` and ``d(dy)/dx`` (the full anisotropic TV). Zero
    for constant offsets.
    """
    def along_x(t: torch.Tensor) -> torch.Tensor:
        return (t[..., :, 1:] - t[..., :, :-1]).abs().mean() if t.shape[-1] > 1 else t.new_zeros(())

    def along_y(t: torch.Tensor) -> torch.Tensor:
        return (t[..., 1:, :] - t[..., :-1, :]).abs().mean() if t.shape[-2] > 1 else t.new_zeros(())

    tv = along_x(offsets_x) + along_y(offsets_y)
    if not partial:
        tv = tv + along_y(offsets_x) + along_x(offsets_y)
    return tv


@dataclass(frozen=True)
class CARLossWeights:
    """Weights of the joint loss's terms (the reconstruction L1 has weight 1).

    Starting points, not tuned values: ``offset`` and ``tv`` are small next to an L1 of
    a few 1e-2 so they only rein in offsets that buy nothing; ``lr_fidelity`` (default
    off) adds an L1 between the thumbnail and the MATLAB-bicubic downscale, for a product
    that wants the thumbnail to look like an ordinary one.
    """

    offset: float = 1e-3
    offset_margin: float = 0.0
    tv: float = 5e-3
    tv_partial: bool = True
    lr_fidelity: float = 0.0
    levels: int = 255


def car_joint_loss(down: CARDownscaler, up: CARUpscaler, hr: torch.Tensor,
                   weights: CARLossWeights | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """One joint forward: HR -> ``down`` -> :func:`quantize` -> ``up`` -> L1 to HR, plus the regularisers.

    ``hr`` is ``(N, 3, H, W)`` in [0, 1] with ``H`` and ``W`` multiples of the scale
    (training patches). Returns the total loss (backpropagate it through both nets) and
    the float value of each term, for logging.
    """
    w = weights or CARLossWeights()
    if down.scale != up.scale:
        raise ValueError(f"car-down is x{down.scale} but car-up is x{up.scale}")
    s = down.scale
    if hr.shape[-2] % s or hr.shape[-1] % s:
        raise ValueError(f"training patches must be multiples of the scale {s}, got {tuple(hr.shape[-2:])}")
    sample = down.resample(hr)
    sr = up(quantize(sample.lr, w.levels), s)
    terms = {"l1": F.l1_loss(sr, hr)}
    if w.offset:
        terms["offset"] = w.offset * offset_distance_loss(sample.offsets_x, sample.offsets_y,
                                                          margin=w.offset_margin)
    if w.tv:
        terms["tv"] = w.tv * offset_tv_loss(sample.offsets_x, sample.offsets_y, partial=w.tv_partial)
    if w.lr_fidelity:
        target = imresize(hr, scale=1 / s, size=tuple(sample.lr.shape[-2:]))
        terms["lr_fidelity"] = w.lr_fidelity * F.l1_loss(sample.lr, target)
    total = sum(terms.values())
    return total, {name: float(value.detach()) for name, value in terms.items()}


FAMILY = register_family(ModelFamily("car", "pair", ("car-down", "car-up"), "rgb", scales=(2, 4), per_scale_config=True,
                            summary="CAR content adaptive resampler (Sun & Chen 2020), RGB, trained with car-up"))
