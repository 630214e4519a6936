"""Differentiable image operators, starting with MATLAB-compatible bicubic ``imresize``.

The papers' benchmark tables are measured on LR images made by MATLAB's ``imresize``
(bicubic, a = -0.5, antialiased when shrinking, symmetric padding). Pillow's bicubic
differs at the borders and in its kernel support, so reproducing the tables needs
MATLAB's exact index arithmetic (its ``contributions()``), which this module ports.
Everything is torch-only and device-agnostic so the same code serves training loops
(batched, on GPUs, with gradients) and the ``matlab-bicubic`` method.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from .methods import Method, ResizeRequest, RunOptions, register_method

if TYPE_CHECKING:
    from .image_io import Picture

__all__ = ["imresize", "cubic", "contributions", "MatlabBicubic"]

_KERNEL_WIDTH = 4.0  # support of the cubic kernel
# Above this many weight-matrix entries a pass switches from one dense matmul (fast for
# the small patches of training loops) to a per-tap gather (memory bounded by the output).
_DENSE_LIMIT = 1 << 18
_PLANE_BUDGET = 1 << 24  # samples per float64 pass in the method (~128 MB)


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5, written exactly as MATLAB's ``cubic``."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1).to(x.dtype)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2)).to(x.dtype)
    return near + far


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``imresize``'s ``contributions()``: ``(weights, indices)``, both ``(out_len, P)``.

    Indices are 0-based into the input, already mirrored (MATLAB's symmetric padding);
    columns whose weights are all zero are dropped like MATLAB does. float64, CPU.
    """
    kernel_width = _KERNEL_WIDTH
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # same operation order as MATLAB
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    ind = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64).unsqueeze(0)
    dist = u.unsqueeze(1) - ind
    weights = scale * cubic(scale * dist) if shrink else cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    aux = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    indices = aux[torch.remainder(ind.long() - 1, 2 * in_len)]
    keep = (weights != 0).any(dim=0)
    return weights[:, keep].contiguous(), indices[:, keep].contiguous()


@lru_cache(maxsize=256)
def _tables(in_len: int, out_len: int, scale: float, antialias: bool, device: torch.device, dtype: torch.dtype):
    """Per-dimension resampling tables, cached: training loops call imresize on equal shapes."""
    weights, indices = contributions(in_len, out_len, scale, antialias)
    if out_len * in_len <= _DENSE_LIMIT:
        rows = torch.arange(out_len).unsqueeze(1).expand_as(indices)
        matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
        matrix.index_put_((rows.reshape(-1), indices.reshape(-1)), weights.reshape(-1), accumulate=True)
        return "dense", matrix.to(device=device, dtype=dtype), None
    return "gather", weights.to(device=device, dtype=dtype), indices.to(device=device)


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    in_len = x.shape[dim]
    if out_len == in_len and scale == 1:
        return x  # the cubic kernel at integer offsets is the identity
    kind, a, b = _tables(in_len, out_len, float(scale), antialias, x.device, x.dtype)
    if kind == "dense":
        return torch.matmul(a, x) if dim == -2 else torch.matmul(x, a.t())
    weights, indices = a, b
    shape = (-1, 1) if dim == -2 else (1, -1)
    out = x.index_select(dim, indices[:, 0]) * weights[:, 0].view(shape)
    for tap in range(1, weights.shape[1]):  # in-place accumulation: one output-sized buffer
        out.addcmul_(x.index_select(dim, indices[:, tap]), weights[:, tap].view(shape))
    return out


def imresize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> torch.Tensor:
    """MATLAB ``imresize(x, scale)`` / ``imresize(x, [H W])`` with the bicubic kernel.

    ``x`` is a float tensor ``(..., H, W)`` (usually ``(N, C, H, W)``); ``size`` is
    ``(H, W)``. With only ``scale`` the output is ``ceil(scale * in)`` and the kernel uses
    ``scale``; with only ``size`` each dimension uses ``out / in`` (both as MATLAB does);
    with both, ``size`` sets the shape and ``scale`` the kernel. The result is not rounded
    or clamped (the caller rounds when it produces an image). Differentiable.
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"imresize needs a floating-point tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError("imresize needs a tensor of shape (..., H, W)")
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    if scale is None and size is None:
        raise ValueError("imresize needs scale or size")
    if scale is not None and not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale}")
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output size must be positive, got {size}")
        scales = (float(scale), float(scale)) if scale is not None else (out_h / in_h, out_w / in_w)
    else:
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
        scales = (float(scale), float(scale))
    # MATLAB resizes the dimension with the smallest scale first (stable sort: rows on ties).
    order = [(-2, out_h, scales[0]), (-1, out_w, scales[1])]
    if scales[1] < scales[0]:
        order.reverse()
    for dim, out_len, dim_scale in order:
        x = _resize_dim(x, dim, out_len, dim_scale, antialias)
    return x


def _compute_device(device: str | None) -> torch.device:
    """``auto`` is CUDA when present, else CPU (not MPS: it lacks float64, which exactness needs)."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    from .engine import resolve_device  # validates cuda:N / mps with the CLI's messages

    return resolve_device(name)


class MatlabBicubic(Method):
    """The benchmark protocol's resampler, as a ``--method``."""

    name = "matlab-bicubic"
    directions = frozenset({"down", "up"})
    summary = "MATLAB imresize bicubic (the benchmark protocol; differs from Pillow's bicubic at the borders)"

    def resize(self, picture: "Picture", request: ResizeRequest, options: RunOptions) -> "Picture":
        """Resize every channel (alpha too) and round like MATLAB's uint8/uint16 conversion.

        Works on raw sample values in float64 rather than through ``pixels_to_tensor`` /
        ``tensor_to_pixels`` (float32 in [0, 1], round half to even): at x2 and x4 the
        weights are dyadic, exact .5 results do occur, and MATLAB rounds them up; the
        float32 path flips about one pixel in 20,000 away from MATLAB's LR images.
        """
        from .image_io import Picture  # noqa: F811  (the runtime import; image_io stays lazy)

        self.validate(request)
        width, height = request.size
        device = _compute_device(options.device)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        pixels = picture.pixels
        peak = float(np.iinfo(pixels.dtype).max)
        channels = pixels.shape[2]
        # Channels go through together on small images; large ones a few planes at a time
        # so that float64 copies of 12 MP images stay bounded.
        group = max(1, min(channels, _PLANE_BUDGET // max(1, pixels.shape[0] * pixels.shape[1], width * height)))
        parts = []
        with torch.no_grad():
            for start in range(0, channels, group):
                planes = np.ascontiguousarray(pixels[:, :, start : start + group].transpose(2, 0, 1))
                x = torch.from_numpy(planes.astype(np.float64)).to(device=device, dtype=dtype)
                out = imresize(x, size=(height, width))
                out = torch.floor(out + 0.5).clamp_(0, peak)  # MATLAB's conversion: half away from zero
                parts.append(out.cpu().numpy().astype(pixels.dtype))
        result = np.ascontiguousarray(np.concatenate(parts, axis=0).transpose(1, 2, 0))
        metadata = dataclasses.replace(picture.metadata, text=dict(picture.metadata.text))
        return Picture(result, metadata)


register_method(MatlabBicubic())
