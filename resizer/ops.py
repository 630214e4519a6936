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
from torch.nn import functional as F

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


# =====================================================================================
# CAR: content adaptive resampling (Sun & Chen, "Learned Image Downscaling for Upscaling
# using Content Adaptive Resampler", TIP 2020). The operator only; the networks that
# predict its kernels and offsets are in ``resizer.models.car``.
# =====================================================================================

import contextlib  # noqa: E402  (the CAR section keeps its imports with it)

__all__ += ["adaptive_resample", "car_sample_positions"]

# Samples (N * C * k*k * rows * w) gathered per pass when the operator runs without
# autograd: ~8 MB of float32 samples (plus a grid 2/C of that). Besides bounding memory,
# passes of this size run ~2x faster than one pass over a 2 MP image (cache; measured on
# 2 CPU cores, flat from 2^19 to 2^22, twice as slow at 2^23 and above).
_CAR_CHUNK_SAMPLES = 1 << 21


def _car_tap_grid(k: int, h: int, w: int, scale: int, row_start: int, dtype: torch.dtype,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The zero-offset positions: x ``(1, k*k, 1, w)`` and y ``(1, k*k, h, 1)``, in HR pixels."""
    taps = torch.arange(k, dtype=dtype, device=device) - (k - 1) / 2
    tap_x = taps.repeat(k).view(1, k * k, 1, 1)  # column j of tap t = i * k + j
    tap_y = taps.repeat_interleave(k).view(1, k * k, 1, 1)  # row i
    u = (torch.arange(w, dtype=dtype, device=device) + 0.5) * scale - 0.5
    v = (torch.arange(row_start, row_start + h, dtype=dtype, device=device) + 0.5) * scale - 0.5
    return u.view(1, 1, 1, w) + tap_x, v.view(1, 1, h, 1) + tap_y


def car_sample_positions(offsets_x: torch.Tensor, offsets_y: torch.Tensor, scale: int,
                         row_start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """HR pixel coordinates ``(px, py)``, each ``(N, k*k, h, w)``, where the taps sample.

    Pixel ``(x, y)`` of the output (``y`` counted from ``row_start``) projects onto the
    HR image at ``u = (x + 0.5) * s - 0.5``, ``v = (y + 0.5) * s - 0.5`` (pixel centres at
    integer coordinates, HR pixel ``i`` covering ``[i - 0.5, i + 0.5]``; this is the
    centre of the output pixel's ``s x s`` block). Tap ``t = i * k + j`` (row ``i``,
    column ``j``, row-major like the CAR code) samples at
    ``(u + j - (k - 1) / 2 + dx_t, v + i - (k - 1) / 2 + dy_t)``: a unit-spaced ``k x k``
    grid centred on the block, shifted per tap by the offsets (in HR pixels). For odd
    ``k`` this is exactly the CAR CUDA kernel's ``p = (x + 0.5) * s + k_x - k // 2 + dx - 0.5``
    (their ``offset_unit`` is folded into the offsets here); for even ``k`` the grid stays
    centred rather than leaning one pixel left/up as ``k // 2`` would make it.
    """
    _, kk, h, w = offsets_x.shape
    base_x, base_y = _car_tap_grid(math.isqrt(kk), h, w, scale, row_start, offsets_x.dtype, offsets_x.device)
    return base_x + offsets_x, base_y + offsets_y


def _check_car_args(hr: torch.Tensor, kernels: torch.Tensor, offsets_x: torch.Tensor, offsets_y: torch.Tensor,
                    scale: int) -> None:
    if hr.dim() != 4 or kernels.dim() != 4:
        raise ValueError(f"adaptive_resample needs 4-D tensors, got hr {tuple(hr.shape)}, "
                         f"kernels {tuple(kernels.shape)}")
    if not (isinstance(scale, int) or float(scale).is_integer()) or int(scale) < 1:
        raise ValueError(f"adaptive_resample needs an integer scale >= 1, got {scale}")
    kk = kernels.shape[1]
    if kk < 1 or math.isqrt(kk) ** 2 != kk:
        raise ValueError(f"kernels must have k*k channels, got {kk}")
    if offsets_x.shape != kernels.shape or offsets_y.shape != kernels.shape:
        raise ValueError(f"offsets must have the kernels' shape {tuple(kernels.shape)}, got "
                         f"{tuple(offsets_x.shape)} and {tuple(offsets_y.shape)}")
    if kernels.shape[0] != hr.shape[0]:
        raise ValueError(f"batch sizes differ: hr {hr.shape[0]}, kernels {kernels.shape[0]}")
    if not (hr.dtype == kernels.dtype == offsets_x.dtype == offsets_y.dtype) or not torch.is_floating_point(hr):
        raise TypeError("adaptive_resample needs hr, kernels and offsets of one floating-point dtype")


def _adaptive_rows(hr: torch.Tensor, kernels: torch.Tensor, offsets_x: torch.Tensor, offsets_y: torch.Tensor,
                   scale: int, row_start: int) -> torch.Tensor:
    """One pass over the output rows ``row_start ..`` that ``kernels`` covers.

    ``grid_sample`` does the bilinear taps: measured on 2 CPU cores it is 2-3x faster than
    four ``gather``s forward and 2-7x faster backward (their scatter-add is slow). The
    positions are clamped into the image first, which gives the values of clamping the
    four neighbours' indices (replicate padding) and a zero offset gradient outside, and
    lets ``grid_sample`` use its cheaper ``zeros`` padding (1.6x faster than ``border``,
    whose clamping is the same). The taps are laid out outermost, ``(N, k*k * rows, w)``,
    so the offsets need no permute, and the weighted sum is an ``einsum`` (2x faster than
    a broadcast multiply and sum).
    """
    n, kk, rows, w = kernels.shape
    height, width = int(hr.shape[-2]), int(hr.shape[-1])
    base_x, base_y = _car_tap_grid(math.isqrt(kk), rows, w, scale, row_start, hr.dtype, hr.device)
    # Only the HR rows these taps can reach (a safe bound from the offsets' range), so that
    # the y coordinates stay small and float32 normalisation stays exact enough on 12 MP
    # images; clamping to the crop then only happens at real image edges.
    with torch.no_grad():
        low, high = float(offsets_y.min()), float(offsets_y.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("adaptive_resample: the offsets are not finite (NaN or inf)")
    top = max(0, min(height - 1, math.floor(float(base_y.min()) + low)))
    bottom = min(height, max(0, math.floor(float(base_y.max()) + high)) + 2)
    hr = hr[:, :, top:bottom]
    base_y = base_y - top
    height = bottom - top
    # grid_sample, align_corners=False: pixel p is at (2p + 1) / size - 1, so [0, size - 1]
    # is [1/size - 1, 1 - 1/size]. One fused add per coordinate, then the clamp.
    gx = torch.add(base_x * (2.0 / width) + (1.0 / width - 1.0), offsets_x, alpha=2.0 / width)
    gy = torch.add(base_y * (2.0 / height) + (1.0 / height - 1.0), offsets_y, alpha=2.0 / height)
    gx = gx.clamp(1.0 / width - 1.0, 1.0 - 1.0 / width)
    gy = gy.clamp(1.0 / height - 1.0, 1.0 - 1.0 / height)
    grid = torch.stack((gx, gy), dim=-1).view(n, kk * rows, w, 2)
    samples = torch.nn.functional.grid_sample(hr, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.einsum("nckhw,nkhw->nchw", samples.view(n, hr.shape[1], kk, rows, w), kernels)


def adaptive_resample(hr: torch.Tensor, kernels: torch.Tensor, offsets_x: torch.Tensor, offsets_y: torch.Tensor,
                      scale: int, *, chunk_rows: int | None = None, row_start: int = 0) -> torch.Tensor:
    """CAR's adaptive resampling: each output pixel a weighted sum of ``k*k`` bilinear taps of ``hr``.

    ``hr`` is ``(N, C, H, W)``; ``kernels``, ``offsets_x`` and ``offsets_y`` are
    ``(N, k*k, h, w)`` (normally ``h = H / scale``, ``w = W / scale``; the output is
    ``(N, C, h, w)`` whatever they are). Output pixel ``(x, y)`` is
    ``sum_t kernels[t] * bilinear(hr, px[t], py[t])`` with the positions of
    :func:`car_sample_positions` (the tap grid centred on the pixel's ``s x s`` block,
    shifted by the offsets, in HR pixels); samples outside the image take the nearest
    border value. The weights are applied as given: the caller normalises them (CAR's
    softmax) -- zero offsets with ``k == scale`` and weights ``1/k^2`` is box averaging.

    Differentiable w.r.t. ``hr``, ``kernels`` and both offsets (bilinear interpolation is
    not differentiable where a position is an integer; autograd takes the one-sided value
    there). ``chunk_rows`` output rows are processed per pass. ``None`` chooses: one
    vectorised pass while autograd records (training patches; chunks would not bound the
    memory autograd keeps anyway), else passes of about 2M samples, each reading only the
    HR rows its taps reach, so a 12 MP downscale under ``torch.no_grad`` needs a few tens
    of MB beyond its input and output. Chunking changes nothing in the result.

    ``row_start``: the parameters' first row is output row ``row_start`` of the whole
    image (a caller that predicts them in bands of rows gets that band of the output).
    """
    _check_car_args(hr, kernels, offsets_x, offsets_y, scale)
    scale = int(scale)
    n, kk, h, w = kernels.shape
    per_row = max(1, n * int(hr.shape[1]) * kk * w)
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in (hr, kernels, offsets_x, offsets_y))
    if chunk_rows is not None:
        rows = chunk_rows
    else:
        rows = max(1, h) if recording else max(1, _CAR_CHUNK_SAMPLES // per_row)
    if rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    # Autocast off: half-precision positions would be a pixel off past 1024, so the op
    # runs in its inputs' dtype (the caller passes float32) whatever the context.
    device_type = hr.device.type
    autocast = torch.is_autocast_enabled(device_type) if device_type in ("cpu", "cuda", "mps") else False
    with torch.autocast(device_type, enabled=False) if autocast else contextlib.nullcontext():
        if rows >= h:
            return _adaptive_rows(hr, kernels, offsets_x, offsets_y, scale, row_start)
        parts = [
            _adaptive_rows(hr, kernels[:, :, r:r + rows], offsets_x[:, :, r:r + rows], offsets_y[:, :, r:r + rows],
                           scale, row_start + r)
            for r in range(0, h, rows)
        ]
        return torch.cat(parts, dim=2)


# =====================================================================================
# A differentiable approximation of baseline JPEG, for training a down/up pair *through*
# the codec (DSN): the real codec has no gradient, this one does. It follows libjpeg as
# Pillow drives it: JFIF YCbCr, 4:2:0 chroma (2x2 mean; decoded by the triangle filter of
# libjpeg's "fancy" upsampling, which is bilinear at x2), 8x8 DCT-II blocks, the IJG tables
# scaled by ``quality``, rounding with a straight-through gradient. The bits it returns are a
# smooth rate proxy (sum of log2(1 + |coefficient / step|)), not an entropy coder.
# =====================================================================================

__all__ += ["JPEG_LUMA_TABLE", "JPEG_CHROMA_TABLE", "jpeg_quant_tables", "jpeg_approximation"]

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
    n = np.arange(8)
    basis = np.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    basis[0] /= math.sqrt(2)
    return basis  # orthonormal DCT-II: coefficients = D @ block @ D.T


def _round_straight_through(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` with H, W multiples of 8 -> ``(N, H/8, W/8, 8, 8)``."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(2, 3)


def _unblocks(blocks: torch.Tensor) -> torch.Tensor:
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

