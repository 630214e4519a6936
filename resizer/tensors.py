"""Conversions between pictures (numpy, uint8/uint16) and float tensors, and colour spaces.

Kept apart from ``image_io`` so that the classical path never imports torch.
The YCbCr conversion is MATLAB's ``rgb2ycbcr`` (BT.601, Y in [16, 235]): the papers'
tables are measured on that luma, and the Y-channel models were trained on it.
"""

from __future__ import annotations

import numpy as np
import torch

_RGB_TO_YCBCR = torch.tensor(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
    dtype=torch.float64,
) / 255.0
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0


def pixels_to_tensor(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, C)`` uint8/uint16 array -> ``(1, C, H, W)`` float32 tensor in [0, 1]."""
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    array = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    tensor = torch.from_numpy(array.astype(np.float32)).to(device)
    return tensor.div_(peak).unsqueeze(0)


def tensor_to_pixels(tensor: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` float tensor in [0, 1] -> rounded ``(H, W, C)`` array."""
    peak = 65535.0 if np.dtype(dtype) == np.uint16 else 255.0
    if tensor.dim() == 4:
        tensor = tensor[0]
    scaled = tensor.detach().float().mul(peak).round_().clamp_(0, peak)
    return np.ascontiguousarray(scaled.permute(1, 2, 0).cpu().numpy().astype(dtype))


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2ycbcr`` on ``(..., 3, H, W)`` tensors in [0, 1]; output in [0, 1] units."""
    matrix = _RGB_TO_YCBCR.to(rgb.device, rgb.dtype)
    offset = _YCBCR_OFFSET.to(rgb.device, rgb.dtype)
    out = torch.einsum("ij,...jhw->...ihw", matrix, rgb)
    return out + offset.view(3, 1, 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb``)."""
    matrix = torch.linalg.inv(_RGB_TO_YCBCR).to(ycbcr.device, ycbcr.dtype)
    offset = _YCBCR_OFFSET.to(ycbcr.device, ycbcr.dtype)
    return torch.einsum("ij,...jhw->...ihw", matrix, ycbcr - offset.view(3, 1, 1))
