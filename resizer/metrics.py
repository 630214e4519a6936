"""Image-quality metrics exactly as the super-resolution papers compute them: PSNR and SSIM's one home.

PSNR and SSIM are measured on the luma channel (:func:`resizer.color.luma`), after shaving
the borders; SSIM is Wang et al.'s ``ssim_index.m`` (11x11 Gaussian, sigma 1.5,
K = (0.01, 0.03), L = 255, 'valid' filtering, no automatic downsampling). Everything
is computed in float64 so that the tables' second decimal is reproducible.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["psnr", "ssim", "shave", "modcrop"]

ArrayLike = np.ndarray | torch.Tensor


def _as_2d_float64(a: ArrayLike, name: str) -> torch.Tensor:
    """A detached float64 CPU copy of a 2-D luma array (numpy or torch; a trailing channel of 1 dropped)."""
    t = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    t = t.to(torch.float64)
    if t.dim() == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (luma) array, got shape {tuple(t.shape)}")
    return t


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as float64 2-D tensors, refusing a shape mismatch (a metric of cropped pairs would lie)."""
    x, y = _as_2d_float64(a, "a"), _as_2d_float64(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x, y


def psnr(a: ArrayLike, b: ArrayLike, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images."""
    x, y = _pair(a, b)
    mse = float(torch.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


@lru_cache(maxsize=4)
def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian whose outer product is ``fspecial('gaussian', size, sigma)``."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(maps: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """MATLAB ``filter2(window, img, 'valid')`` on a stack ``(K, H, W)``, separable window.

    Written as sums of shifted slices: float64 ``conv2d`` on CPU is many times slower.
    """
    taps = g.numel()
    h, w = maps.shape[-2] - taps + 1, maps.shape[-1] - taps + 1
    weights = [float(v) for v in g]
    rows = maps[:, 0:h, :] * weights[0]
    for k in range(1, taps):
        rows.add_(maps[:, k : k + h, :], alpha=weights[k])
    out = rows[:, :, 0:w] * weights[0]
    for k in range(1, taps):
        out.add_(rows[:, :, k : k + w], alpha=weights[k])
    return out


def ssim(a: ArrayLike, b: ArrayLike, peak: float = 255.0) -> float:
    """Mean SSIM (``ssim_index.m``: 11x11 Gaussian window, sigma 1.5, 'valid' filtering)."""
    x, y = _pair(a, b)
    if min(x.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(x.shape)}")
    g = _gaussian_1d(11, 1.5)
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    mu1, mu2, xx, yy, xy = _filter_valid(torch.stack([x, y, x * x, y * y, x * y]), g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = xx - mu1_sq
    sigma2_sq = yy - mu2_sq
    sigma12 = xy - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def shave(a: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels from every side (the papers ignore the borders)."""
    if border <= 0:
        return a
    if a.shape[0] <= 2 * border or a.shape[1] <= 2 * border:
        raise ValueError(f"image of {a.shape[1]}x{a.shape[0]} is too small to shave {border} px")
    return a[border:-border, border:-border]


def modcrop(a: np.ndarray, scale: int) -> np.ndarray:
    """Crop right and bottom so that height and width divide by ``scale``."""
    scale = int(scale)
    h, w = a.shape[0] - a.shape[0] % scale, a.shape[1] - a.shape[1] % scale
    return a[:h, :w]
