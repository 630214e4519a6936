"""Colour conversions: MATLAB ``rgb2ycbcr`` (BT.601, Y in [16, 235]), said once.

The papers' tables are measured on this luma and the Y-channel models were trained on
it, so the benchmark, training data and the luma networks' inputs all come from here.
(JPEG's full-range JFIF transform is the codec's own; it lives with the JPEG operator.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# MATLAB rgb2ycbcr on [0, 255] values: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
BT601_MATRIX: tuple[tuple[float, float, float], ...] = (
    (65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
BT601_OFFSET: tuple[float, float, float] = (16.0, 128.0, 128.0)
_Y = BT601_MATRIX[0]


def luma(pixels: np.ndarray) -> np.ndarray:
    """The channel the papers score: MATLAB ``rgb2ycbcr`` Y for colour, raw values for grey.

    ``pixels`` is ``(H, W, C)`` (or ``(H, W)``); alpha is ignored. Y is float64 in the
    [16, 235] range and deliberately not rounded (the common evaluation code keeps it
    float; rounding costs up to ~0.02 dB). 16-bit images are brought to the 8-bit scale
    so that ``peak=255`` still applies.
    """
    a = np.asarray(pixels)
    scale = 255.0 / 65535.0 if a.dtype == np.uint16 else 1.0
    a = a.astype(np.float64) * scale
    if a.ndim == 2:
        return a
    if a.ndim != 3:
        raise ValueError(f"expected (H, W, C) pixels, got shape {a.shape}")
    if a.shape[2] in (1, 2):
        return a[:, :, 0]
    if a.shape[2] in (3, 4):
        r, g, b = a[:, :, 0], a[:, :, 1], a[:, :, 2]
        return BT601_OFFSET[0] + (_Y[0] * r + _Y[1] * g + _Y[2] * b) / 255.0
    raise ValueError(f"unsupported channel count {a.shape[2]}")


def luma_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of a uint8 RGB array, rounded to uint8 as MATLAB returns it: ``(H, W, 1)``."""
    x = rgb.astype(np.float64) / 255.0
    y = BT601_OFFSET[0] + _Y[0] * x[..., 0] + _Y[1] * x[..., 1] + _Y[2] * x[..., 2]
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)[:, :, None]


_CACHE: dict[str, "torch.Tensor"] = {}


def _tables() -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """The float64 matrix, its inverse and the offset, built once (torch is imported lazily)."""
    if not _CACHE:
        import torch

        matrix = torch.tensor(BT601_MATRIX, dtype=torch.float64) / 255.0
        _CACHE["matrix"] = matrix
        _CACHE["inverse"] = torch.linalg.inv(matrix)
        _CACHE["offset"] = torch.tensor(BT601_OFFSET, dtype=torch.float64) / 255.0
    return _CACHE["matrix"], _CACHE["inverse"], _CACHE["offset"]


def rgb_to_ycbcr(rgb: "torch.Tensor") -> "torch.Tensor":
    """MATLAB ``rgb2ycbcr`` on ``(..., 3, H, W)`` tensors in [0, 1]; output in [0, 1] units."""
    import torch

    matrix, _, offset = _tables()
    out = torch.einsum("ij,...jhw->...ihw", matrix.to(rgb.device, rgb.dtype), rgb)
    return out + offset.to(rgb.device, rgb.dtype).view(3, 1, 1)


def ycbcr_to_rgb(ycbcr: "torch.Tensor") -> "torch.Tensor":
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb``)."""
    import torch

    _, inverse, offset = _tables()
    offset = offset.to(ycbcr.device, ycbcr.dtype)
    return torch.einsum("ij,...jhw->...ihw", inverse.to(ycbcr.device, ycbcr.dtype), ycbcr - offset.view(3, 1, 1))
