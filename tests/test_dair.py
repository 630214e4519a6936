"""DAIR: the adaptive interpolation layer against a slow reference, variants, tiling, kernel pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.color import rgb_to_ycbcr
from resizer.engine import upscale_tensor
from resizer.models import create_model
from resizer.models.dair import adaptive_interpolate, adaptive_interpolate_reference, bicubic_phase_kernels
from resizer.ops import imresize
from resizer.tensors import pixels_to_tensor
from resizer.training import TrainConfig, train

from .conftest import activate_manifest, synthetic_photo


@pytest.mark.parametrize("scale, dilations", [(2, (1,)), (3, (2,)), (4, (1, 2))])
def test_layer_matches_the_reference_values_and_gradients(scale: int, dilations: tuple[int, ...]) -> None:
    torch.manual_seed(scale)
    x = torch.rand(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    kernels = [torch.randn(1, scale * scale * 9, 5, 4, dtype=torch.float64, requires_grad=True) for _ in dilations]
    weight = torch.randn(1, 2, 5 * scale, 4 * scale, dtype=torch.float64)
    fast = adaptive_interpolate(x, kernels, scale, 3, dilations)
    slow = adaptive_interpolate_reference(x, kernels, scale, 3, dilations)
    assert torch.allclose(fast, slow, atol=1e-12)
    grads_fast = torch.autograd.grad((fast * weight).sum(), [x, *kernels])
    grads_slow = torch.autograd.grad((slow * weight).sum(), [x, *kernels])
    for a, b in zip(grads_fast, grads_slow):
        assert torch.allclose(a, b, atol=1e-12)


def test_bicubic_phase_kernels_reproduce_matlab_bicubic_inside() -> None:
    x = torch.rand(1, 1, 24, 20, dtype=torch.float64)
    for scale in (2, 3, 4):
        base = bicubic_phase_kernels(scale, 5).double().reshape(1, -1, 1, 1).expand(1, -1, 24, 20)
        out = adaptive_interpolate(x, [base], scale, 5)
        reference = imresize(x, scale=scale)
        inner = 3 * scale
        assert torch.allclose(out[..., inner:-inner, inner:-inner], reference[..., inner:-inner, inner:-inner],
                              atol=1e-12)


def test_predicted_kernels_sum_to_one() -> None:
    model = create_model("dair", {"scale": 3, "feats": 8, "blocks": 1, "dilations": [1, 2]})
    with torch.no_grad():
        model.nets[0].tail.weight.normal_(0, 1.0)
        kernels = model.kernels_for(torch.rand(1, 1, 9, 7))
    total = sum(k.view(1, 9, 25, 9, 7).sum(dim=2) for k in kernels)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


@pytest.mark.parametrize("config", [
    {"scale": 2}, {"scale": 3}, {"scale": 4}, {"scale": 4, "progressive": False},
    {"scale": 2, "recursions": 2}, {"scale": 3, "dilations": [1, 2]},
])
@pytest.mark.parametrize("size", [(11, 8), (7, 13)])
def test_shapes_for_every_variant_and_odd_sizes(config: dict, size: tuple[int, int], single_torch_thread) -> None:
    model = create_model("dair", {"feats": 8, "blocks": 1, **config})
    with torch.no_grad():
        out = model(torch.rand(1, 1, *size), config["scale"])
    assert tuple(out.shape[-2:]) == (size[0] * config["scale"], size[1] * config["scale"])


@pytest.mark.parametrize("config", [{"scale": 2}, {"scale": 4}, {"scale": 3, "dilations": [1, 2], "recursions": 1}])
def test_tiled_equals_whole(config: dict, single_torch_thread) -> None:
    torch.manual_seed(0)
    model = create_model("dair", {"feats": 8, "blocks": 2, **config})
    with torch.no_grad():
        for net in [*model.nets] + ([model.refiner] if model.refiner is not None else []):
            net.tail.weight.normal_(0, 0.3)
    x = torch.rand(1, 1, 70, 53)
    whole = upscale_tensor(model, x, config["scale"], tile=0, device="cpu")
    tiled = upscale_tensor(model, x, config["scale"], tile=24, device="cpu")
    assert (whole - tiled).abs().max().item() < 1 / 255 / 10


def test_cli_writes_the_kernel_picture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, single_torch_thread) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(synthetic_photo(48, 48)).save(data / "a.png")
    manifest = tmp_path / "weights" / "manifest.json"
    train(TrainConfig(arch="dair", scales=(2,), data=(str(data),), steps=2, batch=2, patch=24,
                      model_config={"scale": 2, "feats": 8, "blocks": 1}, out=str(tmp_path / "run"),
                      export="dair-x2", manifest=str(manifest), bench=(str(data),), device="cpu"))
    activate_manifest(monkeypatch, manifest)
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(30, 40)).save(src)
    runner = CliRunner()
    result = runner.invoke(app, ["kernels", str(src), "--scale", "2", "--method", "dair", "--device", "cpu",
                                 "-o", str(tmp_path / "kernels.png")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "kernels.png") as im:
        assert im.mode == "L" and im.size == (5 * 40 + 4 * 2, 5 * 30 + 4 * 2)
        first = np.asarray(im).copy()
    again = runner.invoke(app, ["kernels", str(src), "--scale", "2", "-o", str(tmp_path / "kernels.png")])
    assert again.exit_code == 2 and "exists" in again.output
    replaced = runner.invoke(app, ["kernels", str(src), "--scale", "2", "-o", str(tmp_path / "kernels.png"),
                                   "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    with Image.open(tmp_path / "kernels.png") as im:
        assert np.array_equal(np.asarray(im), first)
    for method in ("bicubic", "vdsr", "car"):
        refused = runner.invoke(app, ["kernels", str(src), "--scale", "2", "--method", method,
                                      "-o", str(tmp_path / "k2.png")])
        assert refused.exit_code == 2 and "dair" in refused.output and refused.output.count("\n") == 1
    missing = runner.invoke(app, ["kernels", str(src), "-o", str(tmp_path / "k3.png")])  # --scale is required
    assert missing.exit_code == 2
    assert not (tmp_path / "k2.png").exists() and not (tmp_path / "k3.png").exists()
    up = runner.invoke(app, ["up", str(src), "--scale", "2", "--method", "dair", "--kernels", str(tmp_path / "k4.png")])
    assert up.exit_code == 2 and not (tmp_path / "k4.png").exists()  # kernel pictures left 'up'


def test_kernel_picture_is_the_api_behind_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     single_torch_thread) -> None:
    """The API draws the luma's kernels with the network 'up' runs; alpha changes nothing; others are refused."""
    from resizer.errors import UsageError
    from resizer.image_io import Picture
    from resizer.learned import kernel_picture
    from resizer.weights import clear_model_cache, save_weights

    torch.manual_seed(1)
    config = {"scale": 2, "feats": 8, "blocks": 1}
    model = create_model("dair", config)
    with torch.no_grad():
        model.nets[0].tail.weight.normal_(0, 0.3)
    weights = tmp_path / "dair.safetensors"
    save_weights(model, weights, arch="dair", config=config, scales=[2.0])
    rgb = synthetic_photo(20, 24, seed=2)
    picture = kernel_picture(Picture(rgb), 2, weights=str(weights), device="cpu")
    assert picture.pixels.dtype == np.uint8 and picture.pixels.shape == (5 * 20 + 8, 5 * 24 + 8, 1)
    luma = rgb_to_ycbcr(pixels_to_tensor(rgb))[:, :1]
    assert np.array_equal(picture.pixels[..., 0], model.kernel_image(luma))
    with_alpha = np.dstack([rgb, np.full(rgb.shape[:2], 90, np.uint8)])
    assert np.array_equal(kernel_picture(Picture(with_alpha), 2, weights=str(weights), device="cpu").pixels,
                          picture.pixels)
    with pytest.raises(UsageError, match="dair"):
        kernel_picture(Picture(rgb), 2, method="vdsr", weights=str(weights), device="cpu")
    with pytest.raises(UsageError, match="greater than 1"):
        kernel_picture(Picture(rgb), 1, weights=str(weights), device="cpu")
    clear_model_cache()
