"""Learned methods: registration, weights errors, and the colour, alpha, grey and 16-bit paths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from resizer import engine
from resizer.errors import ModelError, UsageError
from resizer.image_io import Metadata, Picture
from resizer.learned import LearnedMethod, bicubic_to, upscale_picture
from resizer.methods import ResizeRequest, RunOptions, get_method, list_methods
from resizer.models import ResamplingModel, create_model
from resizer.ops import imresize
from resizer.geometry import SizeSpec
from resizer.resizing import resize_picture
from resizer.color import rgb_to_ycbcr, ycbcr_to_rgb
from resizer.tensors import pixels_to_tensor, tensor_to_pixels
from resizer.weights import clear_model_cache, save_weights

from .conftest import synthetic_photo

TINY_VDSR = {"depth": 3, "channels": 8}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(autouse=True)
def fresh_model_cache():
    """Each test loads its own weights files; none may see another's cached model."""
    yield
    clear_model_cache()


@pytest.fixture()
def no_bundled_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("[]\n")
    monkeypatch.setenv("RESIZER_MANIFEST", str(manifest))


def _vdsr_weights(path: Path, residual_gain: float) -> Path:
    """A tiny VDSR whose output is the bicubic luma plus ``residual_gain`` times a random residual."""
    torch.manual_seed(0)
    model = create_model("vdsr", TINY_VDSR)
    with torch.no_grad():
        last = model.body[-1]
        last.weight.mul_(residual_gain)
        last.bias.mul_(residual_gain)
    save_weights(model, path, arch="vdsr", config=TINY_VDSR)
    return path


@pytest.fixture()
def vdsr_file(tmp_path: Path) -> Path:
    return _vdsr_weights(tmp_path / "vdsr-random.safetensors", residual_gain=0.05)


def _up(picture: Picture, weights: Path, scale: float = 2, family: str = "vdsr", tile: int | None = None) -> Picture:
    size = (math.floor(picture.width * scale + 0.5), math.floor(picture.height * scale + 0.5))  # as the pipeline
    options = RunOptions(device="cpu", weights=str(weights), tile=tile)
    return get_method(family).resize(picture, ResizeRequest("up", size, scale), options)


def test_methods_are_registered_and_selectable() -> None:
    for name in ("srcnn", "vdsr"):
        method = get_method(name)
        assert isinstance(method, LearnedMethod) and method.family.name == name
        assert method.directions == frozenset({"up"}) and method.summary
        assert not method.concurrent_files
    assert {"srcnn", "vdsr"} <= {m.name for m in list_methods("up")}
    assert not {"srcnn", "vdsr"} & {m.name for m in list_methods("down")}
    assert not {"edsr-baseline", "rrdbnet"} & {m.name for m in list_methods()}
    with pytest.raises(UsageError, match="down"):
        get_method("srcnn").validate(ResizeRequest("down", (10, 10), 2))


def test_device_and_precision_fail_before_any_file(vdsr_file: Path) -> None:
    request = ResizeRequest("up", (20, 20), 2)
    method = get_method("vdsr")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            method.validate(request, RunOptions(device="cuda", weights=str(vdsr_file)))
    with pytest.raises(UsageError, match="--precision fp16 is not supported"):
        method.validate(request, RunOptions(device="cpu", precision="fp16", weights=str(vdsr_file)))


@pytest.mark.usefixtures("no_bundled_weights")
def test_missing_weights_give_a_clear_error(photo_rgb: np.ndarray, vdsr_file: Path) -> None:
    method = get_method("srcnn")
    request = ResizeRequest("up", (256, 192), 2)
    with pytest.raises(ModelError, match=r"srcnn.*--weights"):
        method.validate(request, RunOptions())
    with pytest.raises(ModelError, match="srcnn"):
        method.resize(Picture(photo_rgb), request, RunOptions(device="cpu"))
    method.validate(request, RunOptions(weights="w.safetensors"))  # --weights: the file decides
    method.validate(request)  # no options: the pipeline's early check cannot know about --weights
    with pytest.raises(ModelError, match="not of method 'srcnn'"):  # vdsr weights given to srcnn
        method.resize(Picture(photo_rgb), request, RunOptions(device="cpu", weights=str(vdsr_file)))


def test_y_model_refines_luma_and_chroma_is_bicubic(photo_rgb: np.ndarray, vdsr_file: Path) -> None:
    out = _up(Picture(photo_rgb), vdsr_file)
    assert out.pixels.shape == (192, 256, 3) and out.pixels.dtype == np.uint8
    src = rgb_to_ycbcr(pixels_to_tensor(photo_rgb))
    got = rgb_to_ycbcr(pixels_to_tensor(out.pixels))
    unclipped = ((out.pixels > 0) & (out.pixels < 255)).all(axis=2)
    assert unclipped.mean() > 0.5
    chroma = imresize(src[:, 1:], scale=2, size=(192, 256))
    assert (got[0, 1:, unclipped] - chroma[0, :, unclipped]).abs().max() <= 1 / 255
    model = create_model("vdsr", TINY_VDSR)
    model.load_state_dict(load_file(vdsr_file))
    luma = engine.upscale_tensor(model, src[:, :1], 2, device="cpu")
    assert (got[0, 0, unclipped] - luma[0, 0, unclipped]).abs().max() <= 1 / 255
    bicubic_luma = imresize(src[:, :1], scale=2, size=(192, 256))
    assert (luma - bicubic_luma).abs().max() > 2 / 255  # the network did change the luma


def test_zero_residual_y_model_is_exactly_bicubic_in_ycbcr(photo_rgb: np.ndarray, tmp_path: Path) -> None:
    weights = _vdsr_weights(tmp_path / "zero.safetensors", residual_gain=0.0)
    out = _up(Picture(photo_rgb), weights, scale=3)
    ycbcr = imresize(rgb_to_ycbcr(pixels_to_tensor(photo_rgb)), scale=3, size=(288, 384))
    expected = tensor_to_pixels(ycbcr_to_rgb(ycbcr).clamp(0, 1))
    assert np.abs(out.pixels.astype(int) - expected).max() <= 1


def test_alpha_is_bicubic_and_metadata_is_carried(photo_rgb: np.ndarray, vdsr_file: Path) -> None:
    h, w, _ = photo_rgb.shape
    alpha = (np.add.outer(np.arange(h), np.arange(w)) * 255 // (h + w)).astype(np.uint8)[..., None]
    alpha[10:20, 10:20] = 0
    meta = Metadata(icc_profile=b"icc", dpi=(300.0, 300.0), text={"k": "v"}, source_format="PNG")
    picture = Picture(np.concatenate([photo_rgb, alpha], axis=2), meta)
    out = _up(picture, vdsr_file)
    assert out.pixels.shape == (2 * h, 2 * w, 4)
    reference = get_method("matlab-bicubic").resize(picture, ResizeRequest("up", (2 * w, 2 * h), 2), RunOptions())
    assert np.abs(out.pixels[..., 3].astype(int) - reference.pixels[..., 3]).max() <= 1
    colour_only = _up(Picture(photo_rgb), vdsr_file)
    assert np.array_equal(out.pixels[..., :3], colour_only.pixels)
    assert out.metadata == meta and out.metadata.text is not meta.text


def test_sixteen_bit_stays_sixteen_bit(photo_rgb: np.ndarray, vdsr_file: Path) -> None:
    deep = photo_rgb.astype(np.uint16) * 257
    out16 = _up(Picture(deep), vdsr_file)
    out8 = _up(Picture(photo_rgb), vdsr_file)
    assert out16.pixels.dtype == np.uint16 and out16.pixels.max() > 255
    assert np.abs(out16.pixels / 257.0 - out8.pixels).max() <= 1.0


def test_grey_goes_straight_to_a_y_model(vdsr_file: Path) -> None:
    grey = synthetic_photo(40, 30, seed=2)[..., :1].copy()
    out = _up(Picture(grey), vdsr_file)
    assert out.pixels.shape == (80, 60, 1)
    model = create_model("vdsr", TINY_VDSR)
    model.load_state_dict(load_file(vdsr_file))
    expected = tensor_to_pixels(engine.upscale_tensor(model, pixels_to_tensor(grey), 2, device="cpu").clamp(0, 1))
    assert np.abs(out.pixels.astype(int) - expected).max() <= 1
    grey_alpha = np.concatenate([grey, np.full_like(grey, 200)], axis=2)
    out2 = _up(Picture(grey_alpha), vdsr_file)
    assert out2.pixels.shape == (80, 60, 2) and (out2.pixels[..., 1] == 200).all()
    assert np.array_equal(out2.pixels[..., :1], out.pixels)


class NearestRGB(ResamplingModel):
    """An RGB "network": nearest-neighbour x2 (so the expected output is exact)."""

    color = "rgb"

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        assert x.shape[1] == 3
        return F.interpolate(x, scale_factor=int(scale), mode="nearest")


def test_rgb_models_get_rgb_and_grey_is_replicated() -> None:
    rgb = synthetic_photo(20, 16, seed=1)
    out = upscale_picture(NearestRGB(), Picture(rgb), (40, 32), 2, device="cpu")
    assert np.array_equal(out.pixels, rgb.repeat(2, axis=0).repeat(2, axis=1))
    grey = rgb[..., 1:2].copy()
    out = upscale_picture(NearestRGB(), Picture(grey), (40, 32), 2, device="cpu")
    assert np.array_equal(out.pixels, grey.repeat(2, axis=0).repeat(2, axis=1))


def test_sizes_follow_the_request_and_tiling_changes_nothing(vdsr_file: Path) -> None:
    picture = Picture(synthetic_photo(41, 23, seed=3))
    whole = _up(picture, vdsr_file, scale=2.5, tile=0)
    assert whole.pixels.shape == (103, 58, 3)  # 102.5 x 57.5, halves up; (W, H) request -> (H, W) pixels
    tiled = _up(picture, vdsr_file, scale=2.5, tile=10)
    assert np.abs(whole.pixels.astype(int) - tiled.pixels).max() <= 1
    odd = get_method("vdsr").resize(picture, ResizeRequest("up", (59, 102), 2.5), RunOptions("cpu", weights=str(vdsr_file)))
    assert odd.pixels.shape == (102, 59, 3)
    assert bicubic_to(torch.rand(1, 1, 4, 6), 2, (9, 11)).shape[-2:] == (9, 11)


def test_pipeline_runs_a_learned_method_with_a_weights_file(photo_rgb: np.ndarray, tmp_path: Path,
                                                             no_bundled_weights: None) -> None:
    torch.manual_seed(0)
    path = tmp_path / "srcnn.safetensors"
    save_weights(create_model("srcnn"), path, arch="srcnn", config={})
    out, method = resize_picture(Picture(photo_rgb), "up", SizeSpec(scale=2), method="srcnn",
                                 run=RunOptions(device="cpu", weights=str(path)))
    assert method.name == "srcnn" and out.pixels.shape == (192, 256, 3)
