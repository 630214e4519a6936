"""ASDN: the Laplacian level blend, the recursion schedule, sizes, tiling and default selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from resizer.engine import upscale_tensor
from resizer.image_io import Picture
from resizer.models import create_model
from resizer.models.asdn import blend_levels, level_index, level_scales, linear_resample, recursion_schedule
from resizer.geometry import upscaled_size
from resizer.geometry import SizeSpec
from resizer.resizing import plan_resize


def test_level_scales() -> None:
    assert level_scales() == pytest.approx([1.0 + l / 10 for l in range(11)])


@pytest.mark.parametrize("scale, index, weight", [
    (2.0, 10, 0.0), (1.1, 1, 0.0), (1.3, 3, 0.0), (1.35, 4, 0.5), (1.05, 1, 0.5), (1.99, 10, 0.1),
    (1.71, 8, 0.9),
])
def test_level_index_follows_the_paper(scale: float, index: int, weight: float) -> None:
    i, w = level_index(scale)
    assert i == index
    assert w == pytest.approx(weight, abs=1e-9)
    # the formula as written: i = ceil((r - 1)(L - 1)), w = (L - 1)(r_i - r)
    assert w == pytest.approx(10 * (1 + i / 10 - scale), abs=1e-9)


def test_blend_levels_interpolates_the_two_nearest() -> None:
    outputs = torch.arange(11, dtype=torch.float64).view(1, 11, 1, 1).expand(1, 11, 2, 2)
    # level l holds the value l: O_r = i + w (i - 1 - i) = i - w
    for scale in (1.05, 1.35, 1.5, 1.87, 2.0):
        i, w = level_index(scale)
        assert blend_levels(outputs, scale)[0, 0, 0, 0].item() == pytest.approx(i - w)
        assert blend_levels(list(outputs.unbind(1)), scale)[0, 0, 0].item() == pytest.approx(i - w)
    with pytest.raises(ValueError):
        level_index(2.5)


@pytest.mark.parametrize("scale, passes", [
    (1.5, [1.5]), (2.0, [2.0]), (2.7, [2.0, 1.35]), (3.0, [2.0, 1.5]), (4.0, [2.0, 2.0]),
    (4.5, [2.0, 2.0, 1.125]), (8.0, [2.0, 2.0, 2.0]),
])
def test_recursion_schedule(scale: float, passes: list[float]) -> None:
    schedule = recursion_schedule(scale)
    assert schedule == pytest.approx(passes)
    assert len(schedule) == max(1, math.ceil(math.log2(scale) - 1e-9))
    assert math.prod(schedule) == pytest.approx(scale)


def test_linear_resample_matches_bilinear_at_exact_ratios() -> None:
    x = torch.rand(1, 3, 24, 30, dtype=torch.float64)
    assert torch.equal(linear_resample(x, (24, 30), 1.0), x)
    ours = linear_resample(x, (12, 15), 2.0)
    theirs = F.interpolate(x, size=(12, 15), mode="bilinear", align_corners=False)
    assert torch.allclose(ours, theirs, atol=1e-12)


@pytest.fixture()
def model(single_torch_thread):
    torch.manual_seed(0)
    net = create_model("asdn", {"feats": 8, "blocks": 2})
    with torch.no_grad():  # a visible detail term, so that a tiling error would show
        net.tail.weight.normal_(0, 0.3)
    return net.eval()


@pytest.mark.parametrize("scale", [1.1, 1.35, 1.5, 1.77, 2.0, 2.5, 2.7, 3.0, 3.3, 4.0, 5.5])
@pytest.mark.parametrize("size", [(17, 23), (30, 11)])
def test_output_sizes_for_any_scale(model, scale: float, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = model(torch.rand(1, 1, *size), scale)
    assert tuple(out.shape[-2:]) == upscaled_size(*size, scale)


@pytest.mark.parametrize("scale, tile", [(2.7, 20), (1.5, 16), (3.0, 24), (2.0, 16), (4.0, 12)])
def test_tiled_equals_whole(model, scale: float, tile: int) -> None:
    x = torch.rand(1, 1, 61, 47)
    whole = upscale_tensor(model, x, scale, tile=0, device="cpu")
    counts: list[int] = []
    tiled = upscale_tensor(model, x, scale, tile=tile, device="cpu", progress=lambda done, total: counts.append(total))
    assert counts and counts[-1] >= 4  # it really ran in tiles
    assert whole.shape == tiled.shape
    assert (whole - tiled).abs().max().item() < 1 / 255 / 10


def test_levels_are_trained_outputs_and_level_zero_is_bicubic(model) -> None:
    from resizer.ops import imresize

    x = torch.rand(1, 1, 12, 14)
    with torch.no_grad():
        levels = model.level_outputs(x, 1.5)
    assert levels.shape[1] == 11
    assert torch.allclose(levels[:, :1], imresize(x, scale=1.5, size=levels.shape[-2:]))
    with torch.no_grad():  # a single pass is the blend of its two levels
        assert torch.allclose(model(x, 1.55), blend_levels(model.level_outputs(x, 1.55), 1.55), atol=1e-6)


def test_asdn_is_the_default_upscaler() -> None:
    picture = Picture(np.zeros((10, 12, 3), np.uint8))
    method, request = plan_resize(picture, "up", SizeSpec(scale=2.7))
    assert method.name == "asdn" and request.size == (32, 27)
    method, request = plan_resize(picture, "up", SizeSpec(width=31))
    assert method.name == "asdn" and request.size == (31, 26)
