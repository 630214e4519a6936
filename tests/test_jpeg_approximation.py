"""The differentiable JPEG approximation that trains a down/up pair through the codec."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from resizer.ops import jpeg_approximation, jpeg_quant_tables


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _pillow_jpeg(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        return np.asarray(im.convert("RGB")), len(buffer.getvalue())


def _approximate(rgb: np.ndarray, qualities) -> tuple[np.ndarray, torch.Tensor]:
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].double() / 255.0
    decoded, bits = jpeg_approximation(x, qualities)
    return (decoded[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8), bits


@pytest.mark.parametrize("quality", [5, 30, 50, 75, 95])
def test_tables_are_the_ones_pillow_writes(quality: int) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 200)).save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        written = {k: np.asarray(v, dtype=np.float64).reshape(8, 8) for k, v in im.quantization.items()}
    luma, chroma = jpeg_quant_tables(quality)
    np.testing.assert_array_equal(luma, written[0])
    np.testing.assert_array_equal(chroma, written[1])


@pytest.mark.parametrize("quality", [10, 40, 80])
@pytest.mark.parametrize("size", [(96, 128), (61, 75)])
def test_decoded_pixels_match_the_real_codec(photo_rgb: np.ndarray, quality: int, size: tuple[int, int]) -> None:
    rgb = np.ascontiguousarray(photo_rgb[: size[0], : size[1]])
    real, _ = _pillow_jpeg(rgb, quality)
    approx, _ = _approximate(rgb, quality)
    assert approx.shape == rgb.shape
    # The approximation is far closer to the real decode than either is to the original:
    # the same artefacts, up to libjpeg's integer DCT and its edge handling.
    assert _psnr(approx, real) > _psnr(rgb, real) + 6
    assert abs(_psnr(rgb, approx) - _psnr(rgb, real)) < 0.5


def test_rate_proxy_follows_the_real_file_size(photo_rgb: np.ndarray) -> None:
    qualities = [10, 30, 60, 90]
    sizes = [_pillow_jpeg(photo_rgb, q)[1] for q in qualities]
    batch = torch.from_numpy(np.stack([photo_rgb] * 4)).permute(0, 3, 1, 2).double() / 255.0
    _, bits = jpeg_approximation(batch, qualities)  # one quality per image
    assert sizes == sorted(sizes) and bits.tolist() == sorted(bits.tolist())
    ratios = np.asarray(sizes) * 8 / (photo_rgb.shape[0] * photo_rgb.shape[1]) / bits.numpy()
    assert ratios.max() / ratios.min() < 1.6  # roughly proportional to the real bits per pixel


def test_gradients_reach_the_input_and_lower_the_rate() -> None:
    x = torch.rand(2, 3, 32, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = (0.2 + 0.6 * x).requires_grad_(True)
    decoded, bits = jpeg_approximation(x, [20, 70])
    assert decoded.shape == x.shape and bits.shape == (2,)
    (grad,) = torch.autograd.grad(bits.sum(), x, retain_graph=True)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    smoother = (x - 1e-3 * grad / grad.abs().max()).detach()
    assert (jpeg_approximation(smoother, [20, 70])[1] < bits.detach()).all()  # the gradient points to fewer bits
    (grad,) = torch.autograd.grad((decoded - 0.5).pow(2).sum(), x)  # straight through the rounding
    assert torch.isfinite(grad).all() and (grad != 0).float().mean() > 0.5
    with pytest.raises(ValueError, match="qualities"):
        jpeg_approximation(x.detach(), [20])
