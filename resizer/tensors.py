"""Conversions between pictures (numpy, uint8/uint16) and float tensors in [0, 1].

Kept apart from ``image_io`` so that the classical path never imports torch. Colour
spaces are :mod:`resizer.color`'s.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["pixels_to_tensor", "tensor_to_pixels"]


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
