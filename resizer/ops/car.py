"""CAR's adaptive resampling operator and the positions its taps sample.

Content adaptive resampling (Sun & Chen, "Learned Image Downscaling for Upscaling using
Content Adaptive Resampler", TIP 2020): each LR pixel is a weighted sum of ``k*k``
bilinear taps of the HR image at per-pixel offsets. This module is the operator only;
the networks that predict its kernels and offsets are in :mod:`resizer.models.car`.
"""

from __future__ import annotations

import contextlib
import math

import torch

__all__ = ["adaptive_resample", "car_sample_positions"]

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
    """Raise ``ValueError`` / ``TypeError`` on shapes, scales or dtypes the operator cannot serve."""
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
