"""A differentiable approximation of baseline JPEG, and the IJG quantisation tables.

For training a down/up pair *through* the codec (DSN): the real codec has no gradient,
this one does. It follows libjpeg as Pillow drives it: JFIF YCbCr (JPEG's own full-range
colour transform, which is why it is written here and not taken from
:mod:`resizer.color`), 4:2:0 chroma (2x2 mean; decoded by the triangle filter of
libjpeg's "fancy" upsampling, which is bilinear at x2), 8x8 DCT-II blocks, the IJG tables
scaled by ``quality``, rounding with a straight-through gradient. The bits it returns are
a smooth rate proxy (sum of log2(1 + |coefficient / step|)), not an entropy coder.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["JPEG_LUMA_TABLE", "JPEG_CHROMA_TABLE", "jpeg_quant_tables", "jpeg_approximation"]

JPEG_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
JPEG_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32

_RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCBCR_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def jpeg_quant_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The IJG luma and chroma tables at ``quality`` (1..100), as libjpeg scales them (baseline: 1..255)."""
    q = min(max(int(quality), 1), 100)
    factor = 5000 // q if q < 50 else 200 - 2 * q
    tables = []
    for base in (JPEG_LUMA_TABLE, JPEG_CHROMA_TABLE):
        table = (np.asarray(base, dtype=np.int64) * factor + 50) // 100
        tables.append(np.clip(table, 1, 255).astype(np.float64).reshape(8, 8))
    return tables[0], tables[1]


@lru_cache(maxsize=None)
def _dct_matrix() -> np.ndarray:
    """The 8-point orthonormal DCT-II basis (float64, built once)."""
    n = np.arange(8)
    basis = np.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    basis[0] /= math.sqrt(2)
    return basis  # orthonormal DCT-II: coefficients = D @ block @ D.T


def _round_straight_through(x: torch.Tensor) -> torch.Tensor:
    """Round forward, identity backward: quantisation that still passes a gradient."""
    return x + (torch.round(x) - x).detach()


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` with H, W multiples of 8 -> ``(N, H/8, W/8, 8, 8)``."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(2, 3)


def _unblocks(blocks: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_blocks`."""
    n, bh, bw = blocks.shape[:3]
    return blocks.transpose(2, 3).reshape(n, bh * 8, bw * 8)


def _quantize_plane(plane: torch.Tensor, tables: torch.Tensor, dct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Level-shifted ``(N, H, W)`` samples -> (dequantized samples, rate proxy per image in bits)."""
    coefficients = dct @ _blocks(plane - 128.0) @ dct.T
    steps = tables[:, None, None]  # (N, 1, 1, 8, 8)
    scaled = coefficients / steps
    bits = torch.log2(1.0 + scaled.abs()).sum(dim=(1, 2, 3, 4))
    restored = dct.T @ (_round_straight_through(scaled) * steps) @ dct
    return _unblocks(restored) + 128.0, bits


def jpeg_approximation(x: torch.Tensor, qualities: "list[int] | int") -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable baseline JPEG of ``(N, 3, H, W)`` RGB in [0, 1]: ``(decoded, bits per pixel)``.

    ``qualities``: one IJG quality per image (or one for all). The decoded image is in [0, 1]
    (clamped, rounded to 8 bits with a straight-through gradient); ``bits per pixel`` is
    the rate proxy of each image, ``(N,)``, per input pixel.
    """
    n, _, h, w = x.shape
    if isinstance(qualities, int):
        qualities = [qualities] * n
    if len(qualities) != n:
        raise ValueError(f"{len(qualities)} qualities for {n} images")
    pad_h, pad_w = -h % 16, -w % 16  # whole 16x16 MCUs, edges replicated as libjpeg does
    x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
    dtype, device = x.dtype, x.device
    to_ycc = torch.tensor(_RGB_TO_YCBCR, dtype=dtype, device=device)
    ycc = torch.einsum("ij,njhw->nihw", to_ycc, x * 255.0)
    ycc = ycc + torch.tensor([0.0, 128.0, 128.0], dtype=dtype, device=device)[:, None, None]
    luma_tables, chroma_tables = zip(*(jpeg_quant_tables(q) for q in qualities))
    luma_tables = torch.tensor(np.stack(luma_tables), dtype=dtype, device=device)
    chroma_tables = torch.tensor(np.stack(chroma_tables), dtype=dtype, device=device)
    dct = torch.tensor(_dct_matrix(), dtype=dtype, device=device)
    luma, bits = _quantize_plane(ycc[:, 0], luma_tables, dct)
    chroma = F.avg_pool2d(ycc[:, 1:], 2)
    planes = []
    for c in range(2):
        plane, plane_bits = _quantize_plane(chroma[:, c], chroma_tables, dct)
        planes.append(plane)
        bits = bits + plane_bits
    chroma = F.interpolate(torch.stack(planes, dim=1), scale_factor=2, mode="bilinear", align_corners=False)
    ycc = torch.cat([luma[:, None], chroma], dim=1) - torch.tensor([0.0, 128.0, 128.0], dtype=dtype,
                                                                    device=device)[:, None, None]
    rgb = torch.einsum("ij,njhw->nihw", torch.tensor(_YCBCR_TO_RGB, dtype=dtype, device=device), ycc) / 255.0
    decoded = _round_straight_through(rgb.clamp(0, 1) * 255.0) / 255.0
    return decoded[:, :, :h, :w], bits / (h * w)
