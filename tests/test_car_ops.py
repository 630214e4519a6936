"""CAR's adaptive resampling operator (``resizer.ops.adaptive_resample``) against a slow, obvious loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import resizer.ops.car as car_ops
from resizer.ops import adaptive_resample, car_sample_positions


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# --- the reference: loops over output pixels and taps, bilinear with clamped indices ---

def _bilinear(img: torch.Tensor, px: float, py: float) -> torch.Tensor:
    """``img`` (C, H, W) at (px, py); neighbours outside the image take the nearest border pixel."""
    height, width = img.shape[-2:]
    x0, y0 = math.floor(px), math.floor(py)
    ax, ay = px - x0, py - y0

    def at(yy: int, xx: int) -> torch.Tensor:
        return img[:, min(max(yy, 0), height - 1), min(max(xx, 0), width - 1)]

    return ((1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x0 + 1))
            + ay * ((1 - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1)))


def _reference(hr: torch.Tensor, kernels: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor, s: int) -> torch.Tensor:
    n, c = hr.shape[:2]
    kk, h, w = kernels.shape[1:]
    k = math.isqrt(kk)
    hr, kernels, ox, oy = (t.double() for t in (hr, kernels, ox, oy))
    out = torch.zeros(n, c, h, w, dtype=torch.float64)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                u, v = (x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5
                for i in range(k):
                    for j in range(k):
                        t = i * k + j
                        px = u + j - (k - 1) / 2 + float(ox[b, t, y, x])
                        py = v + i - (k - 1) / 2 + float(oy[b, t, y, x])
                        out[b, :, y, x] += float(kernels[b, t, y, x]) * _bilinear(hr[b], px, py)
    return out


def _inputs(k: int, s: int, n: int = 1, c: int = 3, h: int = 3, w: int = 4, spread: float = 3.0,
            dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(n, c, h * s, w * s, generator=g, dtype=dtype)
    kernels = torch.softmax(torch.randn(n, k * k, h, w, generator=g, dtype=dtype), dim=1)
    ox = (torch.rand(n, k * k, h, w, generator=g, dtype=dtype) * 2 - 1) * spread
    oy = (torch.rand(n, k * k, h, w, generator=g, dtype=dtype) * 2 - 1) * spread
    return hr, kernels, ox, oy


def _off_integer(shape, generator: torch.Generator) -> torch.Tensor:
    """Offsets whose positions stay >= 0.2 px from integers (bilinear's kinks), up to ~2.3 px.

    Every base position is an integer or a half-integer (k and s are integers), so an
    offset of (integer) +/- (0.2 .. 0.3) keeps its fractional part in [0.2, 0.3] or [0.7, 0.8].
    """
    whole = torch.randint(-2, 3, shape, generator=generator).double()
    sign = torch.randint(0, 2, shape, generator=generator).double() * 2 - 1
    return whole + sign * (0.2 + 0.1 * torch.rand(shape, generator=generator, dtype=torch.float64))


# --- the sampling convention itself ---

def test_positions_follow_the_documented_grid() -> None:
    k, s = 3, 4
    zero = torch.zeros(1, k * k, 2, 3)
    px, py = car_sample_positions(zero, zero, s)
    # output pixel (x=1, y=0): u = 1.5 * 4 - 0.5 = 5.5, v = 1.5; tap (i=0, j=2) at (u + 1, v - 1)
    assert px[0, 2, 0, 1].item() == 6.5 and py[0, 2, 0, 1].item() == 0.5
    # the CAR CUDA kernel's formula for odd k: (x + 0.5) * s + k_x - k // 2 - 0.5
    for t in range(k * k):
        i, j = divmod(t, k)
        for x in range(3):
            assert px[0, t, 0, x].item() == (x + 0.5) * s + j - k // 2 - 0.5
        for y in range(2):
            assert py[0, t, y, 0].item() == (y + 0.5) * s + i - k // 2 - 0.5
    # row_start shifts the rows (what the chunked passes use)
    _, py2 = car_sample_positions(zero[:, :, 1:], zero[:, :, 1:], s, row_start=1)
    assert torch.equal(py2, py[:, :, 1:])


# --- values and gradients against the loop ---

@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("s", [2, 4])
def test_matches_reference(k: int, s: int) -> None:
    hr, kernels, ox, oy = _inputs(k, s, n=2, c=2, spread=1.5 * s, seed=k * 10 + s)
    out = adaptive_resample(hr, kernels, ox, oy, s)
    ref = _reference(hr, kernels, ox, oy, s)
    assert out.shape == (2, 2, 3, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("s", [2, 4])
def test_gradcheck(k: int, s: int) -> None:
    g = torch.Generator().manual_seed(100 + k * 10 + s)
    hr = torch.rand(1, 2, 2 * s, 2 * s, generator=g, dtype=torch.float64).requires_grad_()
    kernels = torch.softmax(torch.randn(1, k * k, 2, 2, generator=g, dtype=torch.float64), 1).requires_grad_()
    ox = _off_integer((1, k * k, 2, 2), g).requires_grad_()
    oy = _off_integer((1, k * k, 2, 2), g).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: adaptive_resample(*a, s), (hr, kernels, ox, oy), eps=1e-6, atol=1e-6)


def test_gradcheck_chunked() -> None:
    """The chunked passes (each reading a crop of HR rows) differentiate the same way."""
    k, s = 3, 2
    g = torch.Generator().manual_seed(7)
    hr = torch.rand(1, 1, 3 * s, 2 * s, generator=g, dtype=torch.float64).requires_grad_()
    kernels = torch.softmax(torch.randn(1, k * k, 3, 2, generator=g, dtype=torch.float64), 1).requires_grad_()
    ox = _off_integer((1, k * k, 3, 2), g).requires_grad_()
    oy = _off_integer((1, k * k, 3, 2), g).requires_grad_()
    fn = lambda *a: adaptive_resample(*a, s, chunk_rows=1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (hr, kernels, ox, oy), eps=1e-6, atol=1e-6)


# --- special cases and chunking ---

@pytest.mark.parametrize("s", [2, 4])
def test_zero_offsets_box_kernel_is_average_pooling(s: int) -> None:
    """k == s with weights 1/k^2: the taps land on the block's pixel centres exactly."""
    hr = torch.rand(2, 3, 5 * s, 3 * s)
    kernels = torch.full((2, s * s, 5, 3), 1.0 / (s * s))
    zero = torch.zeros_like(kernels)
    torch.testing.assert_close(adaptive_resample(hr, kernels, zero, zero, s), F.avg_pool2d(hr, s), atol=1e-6, rtol=0)


def test_single_tap_at_the_centre_is_a_2x2_average() -> None:
    """k = 1 at x2 samples the block centre, halfway between four pixels."""
    hr = torch.rand(1, 2, 6, 8)
    one, zero = torch.ones(1, 1, 3, 4), torch.zeros(1, 1, 3, 4)
    torch.testing.assert_close(adaptive_resample(hr, one, zero, zero, 2), F.avg_pool2d(hr, 2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5])
def test_chunked_equals_unchunked(chunk_rows: int) -> None:
    hr, kernels, ox, oy = _inputs(4, 2, n=2, c=3, h=7, w=5, spread=6.0, seed=3)
    whole = adaptive_resample(hr, kernels, ox, oy, 2)
    chunked = adaptive_resample(hr, kernels, ox, oy, 2, chunk_rows=chunk_rows)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)

    leaves = [t.clone().requires_grad_() for t in (hr, kernels, ox, oy)]
    weight = torch.rand_like(whole)
    (adaptive_resample(*leaves, 2) * weight).sum().backward()
    grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    (adaptive_resample(*leaves, 2, chunk_rows=chunk_rows) * weight).sum().backward()
    for a, b in zip(grads, (t.grad for t in leaves)):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_large_inputs_chunk_automatically(monkeypatch: pytest.MonkeyPatch) -> None:
    hr, kernels, ox, oy = _inputs(3, 4, n=1, c=3, h=9, w=6, spread=5.0, seed=5)
    whole = adaptive_resample(hr, kernels, ox, oy, 4)
    calls = []
    original = car_ops._adaptive_rows
    monkeypatch.setattr(car_ops, "_adaptive_rows", lambda *a, **kw: calls.append(a[1].shape[2]) or original(*a, **kw))
    monkeypatch.setattr(car_ops, "_CAR_CHUNK_SAMPLES", 3 * 9 * 6 * 2)  # two rows per pass
    with torch.no_grad():
        chunked = adaptive_resample(hr, kernels, ox, oy, 4)
    assert calls == [2, 2, 2, 2, 1]
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_float64_and_borders() -> None:
    """Taps far outside the image read the border pixels (replicate)."""
    hr = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    kernels = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    far = torch.full((1, 1, 2, 2), -50.0, dtype=torch.float64)
    out = adaptive_resample(hr, kernels, far, far, 2)
    assert out.dtype == torch.float64
    assert torch.all(out == hr[0, 0, 0, 0])
    out = adaptive_resample(hr, kernels, -far, torch.zeros_like(far), 2)
    torch.testing.assert_close(out[0, 0, 0, :], (hr[0, 0, 0, 3] + hr[0, 0, 1, 3]).expand(2) / 2)


def test_rejects_bad_arguments() -> None:
    hr, kernels, ox, oy = _inputs(3, 2)
    with pytest.raises(ValueError, match="k\\*k"):
        adaptive_resample(hr, kernels[:, :8], ox[:, :8], oy[:, :8], 2)
    with pytest.raises(ValueError, match="offsets"):
        adaptive_resample(hr, kernels, ox[:, :, :2], oy, 2)
    with pytest.raises(ValueError, match="integer scale"):
        adaptive_resample(hr, kernels, ox, oy, 1.5)
    with pytest.raises(TypeError, match="dtype"):
        adaptive_resample(hr.double(), kernels, ox, oy, 2)
    with pytest.raises(ValueError, match="chunk_rows"):
        adaptive_resample(hr, kernels, ox, oy, 2, chunk_rows=0)


def test_runs_in_its_inputs_dtype_under_autocast() -> None:
    """Half-precision sampling positions would be a pixel off on large images: autocast is ignored."""
    hr, kernels, ox, oy = _inputs(3, 2, seed=9)
    expected = adaptive_resample(hr, kernels, ox, oy, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = adaptive_resample(hr, kernels, ox, oy, 2, chunk_rows=1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_non_finite_offsets_are_refused() -> None:
    hr, kernels, ox, oy = _inputs(3, 2)
    ox[0, 0, 0, 0] = float("nan")
    oy[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        adaptive_resample(hr, kernels, ox, oy, 2)
