"""MATLAB-exact bicubic ``imresize``: the kernel, MATLAB's ``contributions()`` and the resampler.

The papers' benchmark tables are measured on LR images made by MATLAB's ``imresize``
(bicubic, a = -0.5, antialiased when shrinking, symmetric padding). Pillow's bicubic
differs at the borders and in its kernel support, so reproducing the tables needs
MATLAB's exact index arithmetic (its ``contributions()``), which this module ports.
Torch-only and device-agnostic, so the same code serves training loops (batched, on
GPUs, with gradients), the models and the ``matlab-bicubic`` method
(:mod:`resizer.classical`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = ["imresize", "cubic", "contributions"]

_KERNEL_WIDTH = 4.0  # support of the cubic kernel
# Above this many weight-matrix entries a pass switches from one dense matmul (fast for
# the small patches of training loops) to a per-tap gather (memory bounded by the output).
_DENSE_LIMIT = 1 << 18


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
def _tables(in_len: int, out_len: int, scale: float, antialias: bool, device: torch.device,
            dtype: torch.dtype) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """Per-dimension resampling tables, cached: training loops call imresize on equal shapes.

    Built outside inference mode even when the first caller is the engine's inference: a
    cached inference tensor would later be refused by autograd in training.
    """
    with torch.inference_mode(False):
        weights, indices = contributions(in_len, out_len, scale, antialias)
        if out_len * in_len <= _DENSE_LIMIT:
            rows = torch.arange(out_len).unsqueeze(1).expand_as(indices)
            matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
            matrix.index_put_((rows.reshape(-1), indices.reshape(-1)), weights.reshape(-1), accumulate=True)
            return "dense", matrix.to(device=device, dtype=dtype), None
        return "gather", weights.to(device=device, dtype=dtype), indices.to(device=device)


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    """One separable pass along ``dim`` (-2 rows, -1 columns): a matmul on small tables, else per-tap gathers."""
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
