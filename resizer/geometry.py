"""Output-size geometry: the one rounding rule and the crop-or-pad that every layer uses.

Sizes round halves up (``floor(x + 0.5)``), never to even as Python's ``round`` does:
the pipeline, the models' natural outputs, pairing metadata and training patches must
all agree on the size of ``round(side * scale)`` and ``round(side / scale)``.
Pure Python: importing it costs nothing (the classical path stays free of torch).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def round_half_up(value: float) -> int:
    """``value`` rounded to the nearest integer, halves up (2.5 -> 3)."""
    return int(math.floor(value + 0.5))


def upscaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """An upscaler's output ``(height, width)``: each side times ``scale``, halves rounded up."""
    return math.floor(h * scale + 0.5), math.floor(w * scale + 0.5)


def downscaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """A downscaler's output ``(height, width)``: each side divided by ``scale``, halves up, at least 1."""
    return max(1, math.floor(h / scale + 0.5)), max(1, math.floor(w / scale + 0.5))


def fit_to_size(out: "torch.Tensor", target: tuple[int, int]) -> "torch.Tensor":
    """Bring an upscaler's natural output to exactly ``target`` ``(height, width)``.

    One pixel off (another rounding of ``size * scale``): crop, or repeat the last
    row/column. More (an aspect ratio change): MATLAB bicubic resize to ``target``.
    """
    height, width = int(out.shape[-2]), int(out.shape[-1])
    if (height, width) == target:
        return out
    dh, dw = target[0] - height, target[1] - width
    if abs(dh) <= 1 and abs(dw) <= 1:
        import torch

        out = out[..., : min(height, target[0]), : min(width, target[1])]
        if dh > 0 or dw > 0:
            out = torch.nn.functional.pad(out, (0, max(dw, 0), 0, max(dh, 0)), mode="replicate")
        return out.contiguous()
    from .ops import imresize

    return imresize(out, size=target)


def anchor_to(x: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """Crop, or pad by repeating the last row/column, at the bottom/right to ``size`` ``(height, width)``."""
    import torch

    x = x[..., : size[0], : size[1]]
    pad_h, pad_w = size[0] - int(x.shape[-2]), size[1] - int(x.shape[-1])
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x.contiguous()
