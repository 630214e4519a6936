"""CAR's networks (``resizer.models.car``): shapes, the box special case, joint gradients, halos, losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import resizer.models.car as car
from resizer.geometry import downscaled_size
from resizer.models import create_model, get_architecture
from resizer.models.car import (
    CARDownscaler, CARLossWeights, CARUpscaler, car_joint_loss, offset_distance_loss, offset_tv_loss, quantize,
)
from resizer.geometry import SizeSpec, output_size

TINY_DOWN = {"feats": 8, "blocks": 1}
TINY_UP = {"feats": 8, "blocks": 1}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _down(scale: int, **config) -> CARDownscaler:
    torch.manual_seed(scale)
    return create_model("car-down", {"scale": scale, **TINY_DOWN, **config}).eval()


def _up(scale: int, **config) -> CARUpscaler:
    torch.manual_seed(10 + scale)
    return create_model("car-up", {"scale": scale, **TINY_UP, **config}).eval()


def _randomise(model: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Weights large enough that every path matters (the heads start near zero on purpose)."""
    torch.manual_seed(99)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model


# --- registry and shapes ---

def test_registered_as_the_car_family() -> None:
    down, up = get_architecture("car-down"), get_architecture("car-up")
    assert (down.family, down.task, up.family, up.task) == ("car", "down", "car", "up")
    assert isinstance(create_model("car-down", {"scale": 2}), CARDownscaler)
    model = create_model("car-up", {"scale": 2, "blocks": 2})
    assert isinstance(model, CARUpscaler) and model.color == "rgb"
    assert model.supports_scale(2) and not model.supports_scale(4) and not model.supports_scale(3)
    with pytest.raises(ValueError, match="x2 or x4"):
        create_model("car-down", {"scale": 3})
    with pytest.raises(ValueError, match="built for x2"):
        model(torch.rand(1, 3, 4, 4), 4)


@pytest.mark.parametrize("h, w", [(17, 13), (9, 10), (5, 6), (1, 2)])
@pytest.mark.parametrize("scale", [2, 4])
def test_downscaled_size_is_the_pipelines(h: int, w: int, scale: int) -> None:
    (out_w, out_h), _ = output_size(w, h, "down", SizeSpec(scale=scale))
    assert downscaled_size(h, w, scale) == (out_h, out_w)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("h, w", [(16, 24), (17, 13), (10, 9), (3, 2)])
def test_shapes_and_range(scale: int, h: int, w: int) -> None:
    down, up = _randomise(_down(scale)), _up(scale)
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        lr = down(x, scale)
        assert tuple(lr.shape) == (2, 3, *downscaled_size(h, w, scale))
        assert lr.dtype == torch.float32 and lr.min() >= 0 and lr.max() <= 1
        assert torch.equal(down.resample(x).lr, lr) or torch.allclose(down.resample(x).lr, lr, atol=1e-6)
        sr = up(lr, scale)
    assert tuple(sr.shape) == (2, 3, lr.shape[-2] * scale, lr.shape[-1] * scale)
    assert torch.isfinite(sr).all()


def test_default_sizes_and_halos() -> None:
    down4, down2 = create_model("car-down", {"scale": 4}), create_model("car-down", {"scale": 2})
    assert down4.kernel_size == 8 and down2.kernel_size == 4 and down4.max_offset == 4.0
    # stem + 4 blocks x 2 + trunk = 10 LR pixels of receptive radius, in HR pixels
    assert down4.halo == 40 and down2.halo == 20 and down4.context(4) == 40
    assert create_model("car-up", {"scale": 4}).halo == 1 + 2 * 8 + 1 + 1


# --- the box special case ---

@pytest.mark.parametrize("scale", [2, 4])
def test_zero_offsets_and_uniform_kernels_are_box_downscaling(scale: int) -> None:
    down = _down(scale, kernel_size=scale)
    with torch.no_grad():
        down.head.weight.zero_()
        down.head.bias.zero_()  # logits 0 -> softmax 1/k^2; tanh(0) = 0
    x = torch.rand(2, 3, 5 * scale, 3 * scale)
    with torch.no_grad():
        sample = down.resample(x)
        torch.testing.assert_close(sample.lr, F.avg_pool2d(x, scale), atol=1e-6, rtol=0)
        assert torch.all(sample.offsets_x == 0) and torch.all(sample.offsets_y == 0)
        # odd sizes: box over the replicate-padded image, the blocks that round(H / s) keeps
        odd = torch.rand(1, 3, 5 * scale + scale // 2, 3 * scale + 1)
        padded = F.pad(odd, (0, scale - 1, 0, scale // 2), mode="replicate")
        expected = F.avg_pool2d(padded, scale)[:, :, :downscaled_size(*odd.shape[-2:], scale)[0],
                                               :downscaled_size(*odd.shape[-2:], scale)[1]]
        torch.testing.assert_close(down(odd, scale), expected, atol=1e-6, rtol=0)


# --- joint training: gradients reach both nets through the quantiser ---

def test_joint_forward_gradients_reach_both_nets() -> None:
    scale = 2
    down, up = _down(scale).train(), _up(scale).train()
    hr = torch.rand(2, 3, 12, 16)
    loss, parts = car_joint_loss(down, up, hr, CARLossWeights(lr_fidelity=0.1))
    assert set(parts) == {"l1", "offset", "tv", "lr_fidelity"} and all(v >= 0 for v in parts.values())
    loss.backward()
    for name, net in (("down", down), ("up", up)):
        for pname, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}.{pname}"
            assert p.grad.abs().sum() > 0, f"no gradient reached {name}.{pname}"


def test_reconstruction_gradient_passes_the_rounding() -> None:
    """Without the regularisers, the downscaler's gradient comes only through quantize()."""
    down, up = _down(4).train(), _up(4).train()
    loss, parts = car_joint_loss(down, up, torch.rand(1, 3, 16, 16), CARLossWeights(offset=0, tv=0))
    assert set(parts) == {"l1"}
    loss.backward()
    assert down.stem.weight.grad.abs().sum() > 0 and down.head.weight.grad.abs().sum() > 0


def test_joint_loss_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="multiples"):
        car_joint_loss(_down(2), _up(2), torch.rand(1, 3, 13, 16))
    with pytest.raises(ValueError, match="x4"):
        car_joint_loss(_down(4), _up(2), torch.rand(1, 3, 16, 16))


# --- halos: context beyond the halo never changes an output pixel; tiles equal the whole ---

@pytest.mark.parametrize("scale", [2, 4])
def test_downscaler_halo(scale: int) -> None:
    down = _randomise(_down(scale, max_offset=1.5)).double()
    halo = down.halo
    assert halo == (1 + 2 + 1) * scale  # the network's reach exceeds the taps' here
    side = 2 * halo + 3 * scale
    x = torch.rand(1, 3, side, side + scale, dtype=torch.float64)
    Y, X = halo // scale + 1, halo // scale  # an LR pixel whose block starts at (sY, sX)
    with torch.no_grad():
        base = down(x, scale)
        for dy, dx, changes in [(-halo - 1, 0, False), (scale + halo, 0, False), (0, -halo - 1, False),
                                (0, scale + halo, False), (-halo, 0, True), (0, scale + halo - 1, True)]:
            poked = x.clone()
            poked[0, :, scale * Y + dy, scale * X + dx] += 0.5
            out = down(poked, scale)
            assert (out[0, :, Y, X] != base[0, :, Y, X]).any() == changes, (dy, dx)
        # an interior tile with the halo around it (origin on a multiple of s) gives the
        # whole image's pixel, though its convolutions and sampler see other borders
        k = halo // scale + 1  # LR row and column kept from the tile
        tile = x[:, :, scale * k - halo:scale * k + scale + halo, scale * k - halo:scale * k + scale + halo]
        torch.testing.assert_close(down(tile, scale)[:, :, halo // scale, halo // scale], base[:, :, k, k],
                                   atol=1e-12, rtol=0)


def test_downscaler_halo_when_the_taps_reach_farther() -> None:
    """Wide kernels and offsets: the sampler's reach sets the halo, and it holds."""
    down = _randomise(create_model("car-down", {"scale": 2, "feats": 4, "blocks": 0, "kernel_size": 9,
                                                "max_offset": 4.0})).double()
    halo = down.halo
    assert halo == 8 > down.lr_radius * 2  # ceil((9 - 2) / 2 + 4)
    x = torch.rand(1, 3, 2 * halo + 6, 2 * halo + 6, dtype=torch.float64)
    Y = X = halo // 2
    with torch.no_grad():
        base = down(x, 2)
        for dy in (-halo - 1, 2 + halo):
            poked = x.clone()
            poked[0, :, 2 * Y + dy, 2 * X] += 0.5
            assert torch.equal(down(poked, 2)[0, :, Y, X], base[0, :, Y, X])


@pytest.mark.parametrize("scale", [2, 4])
def test_upscaler_halo(scale: int) -> None:
    up = _randomise(_up(scale), std=0.2).double()
    halo = up.halo
    assert halo == 1 + 2 + 1 + 1
    lr = torch.rand(1, 3, 2 * halo + 3, 2 * halo + 2, dtype=torch.float64)
    Y, X = halo + 1, halo
    with torch.no_grad():
        base = up(lr, scale)
        for dy, dx, changes in [(-halo - 1, 0, False), (halo + 1, 0, False), (0, -halo - 1, False),
                                (0, halo + 1, False), (-halo, 0, True), (0, halo, True)]:
            poked = lr.clone()
            poked[0, :, Y + dy, X + dx] += 0.5
            out = up(poked, scale)
            block = (slice(None), slice(scale * Y, scale * Y + scale), slice(scale * X, scale * X + scale))
            assert (out[0][block] != base[0][block]).any() == changes, (dy, dx)
        tile = lr[:, :, Y - halo:Y + 1 + halo]
        torch.testing.assert_close(up(tile, scale)[:, :, scale * halo:scale * halo + scale],
                                   base[:, :, scale * Y:scale * Y + scale], atol=1e-12, rtol=0)


# --- inference in bands ---

def test_banded_inference_equals_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    down = _randomise(_down(2))
    x = torch.rand(1, 3, 23, 14)
    with torch.no_grad():
        whole = down.resample(x).lr
    monkeypatch.setattr(car, "_BAND_SAMPLES", 3 * 16 * 7 * 2)  # two LR rows per band
    with torch.no_grad():
        banded = down(x, 2)
    torch.testing.assert_close(banded, whole, atol=1e-5, rtol=0)  # float32, convolutions of other shapes
    # with autograd recording, forward is the differentiable path
    x.requires_grad_()
    down(x, 2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- loss pieces ---

def test_quantize_rounds_forward_and_is_identity_backward() -> None:
    x = torch.tensor([-0.2, 0.0, 0.3, 0.50196, 0.999, 1.4], requires_grad=True)
    y = quantize(x)
    expected = torch.round(x.detach().clamp(0, 1) * 255) / 255
    torch.testing.assert_close(y.detach(), expected, atol=1e-7, rtol=0)
    g = torch.tensor([1.0, -2.0, 3.0, 0.5, 7.0, -1.0])
    y.backward(g)
    assert torch.equal(x.grad, g)
    assert torch.equal(quantize(torch.tensor([0.49]), levels=1), torch.tensor([0.0]))


def test_offset_regularisers() -> None:
    zero = torch.zeros(2, 9, 4, 5, requires_grad=True)
    kernels = torch.softmax(torch.randn(2, 9, 4, 5), dim=1)
    assert offset_distance_loss(zero, zero).item() == 0
    assert offset_distance_loss(zero, zero, kernels).item() == 0
    offset_distance_loss(zero, zero).backward()
    assert torch.isfinite(zero.grad).all()
    ox, oy = torch.full((1, 4, 3, 3), 3.0), torch.full((1, 4, 3, 3), 4.0)
    assert offset_distance_loss(ox, oy).item() == pytest.approx(5.0, abs=1e-3)
    assert offset_distance_loss(ox, oy, margin=2.0).item() == pytest.approx(3.0, abs=1e-3)
    assert offset_distance_loss(ox, oy, margin=6.0).item() == 0
    # constant offsets have no variation, whatever their value
    for partial in (True, False):
        assert offset_tv_loss(ox, oy, partial=partial).item() == 0
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 4, 3, 5)  # dx growing along x
    assert offset_tv_loss(ramp, torch.zeros_like(ramp)).item() == pytest.approx(1.0)
    # shear (dx varying along y) is free in the partial TV, not in the full one
    shear = torch.arange(3.0).view(1, 1, 3, 1).expand(1, 4, 3, 5)
    assert offset_tv_loss(shear, torch.zeros_like(shear)).item() == 0
    assert offset_tv_loss(shear, torch.zeros_like(shear), partial=False).item() == pytest.approx(1.0)
