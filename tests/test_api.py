"""``resizer.resize`` and ``Resizer``: every kind of image in, the same kind out, the CLI's pixels."""

from __future__ import annotations

import doctest
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

import resizer
import resizer.api
from resizer import Picture, Resizer, UsageError, resize
from resizer.cli import app

REPO = Path(__file__).resolve().parents[1]


def _cli_output(tmp_path: Path, pixels: np.ndarray, *args: str) -> np.ndarray:
    """What ``resizer ARGS`` writes for ``pixels`` saved as PNG."""
    source = tmp_path / "in.png"
    Image.fromarray(pixels).save(source)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(app, [*args, str(source), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        return np.asarray(im)


def test_pil_in_pil_out_with_the_cli_pixels_and_metadata(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    image = Image.fromarray(photo_rgb)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image.info["icc_profile"] = srgb
    image.info["dpi"] = (300, 300)
    result = resize(image, scale=0.5, method="lanczos")
    assert isinstance(result, Image.Image) and result.size == (64, 48) and result.mode == "RGB"
    assert result.info["icc_profile"] == srgb and result.info["dpi"] == (300.0, 300.0)
    expected = _cli_output(tmp_path, photo_rgb, "down", "--scale", "2", "--method", "lanczos")
    assert np.array_equal(np.asarray(result), expected)
    assert np.array_equal(np.asarray(image), photo_rgb)  # the input is untouched


def test_learned_upscale_of_an_array_matches_the_cli(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    crop = photo_rgb[:24, :32].copy()
    result = resize(crop, scale=2, method="asdn", device="cpu")
    assert result.dtype == np.uint8 and result.shape == (48, 64, 3) and result.flags.writeable
    assert np.array_equal(result, _cli_output(tmp_path, crop, "up", "--scale", "2", "--method", "asdn"))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_arrays_keep_their_dtype_and_layout(dtype, channels, photo_rgb: np.ndarray) -> None:
    grey = photo_rgb[:40, :60, 0].astype(np.float64) / 255
    planes = grey if channels is None else np.repeat(grey[:, :, None], channels, axis=2)
    if channels == 4:
        planes[:, :, 3] = 1.0  # opaque: premultiplied 8-bit alpha would round colours differently
    if dtype == np.uint8:
        array = np.rint(planes * 255).astype(np.uint8)
    elif dtype == np.uint16:
        array = np.rint(planes * 65535).astype(np.uint16)
    else:
        array = planes.astype(dtype)
    result = resize(array, width=30, method="bicubic")
    assert result.dtype == dtype
    assert result.shape == ((20, 30) if channels is None else (20, 30, channels))
    if np.issubdtype(dtype, np.floating):
        assert 0.0 <= result.min() and result.max() <= 1.0
    # the same picture at every dtype: the pixels agree to within the 8-bit step
    scale = {np.uint8: 255, np.uint16: 65535}.get(dtype, 1)
    reference = resize(np.rint(planes * 65535).astype(np.uint16), width=30, method="bicubic") / 65535
    assert np.abs(result / scale - reference).max() <= 1 / 255 + 1e-9


def test_float_arrays_upscale_through_a_learned_method() -> None:
    ramp = np.linspace(0, 1, 20 * 24, dtype=np.float32).reshape(20, 24)
    result = resize(ramp, scale=1.5, method="asdn", device="cpu")
    assert result.dtype == np.float32 and result.shape == (30, 36)
    assert abs(float(result.mean()) - float(ramp.mean())) < 0.01


def test_bytes_in_bytes_of_the_same_format_out(photo_rgb: np.ndarray) -> None:
    for fmt, magic in (("JPEG", b"\xff\xd8"), ("PNG", b"\x89PNG"), ("WEBP", b"RIFF")):
        buffer = io.BytesIO()
        Image.fromarray(photo_rgb).save(buffer, fmt)
        result = resize(buffer.getvalue(), scale=0.25)
        assert isinstance(result, bytes) and result.startswith(magic), fmt
        with Image.open(io.BytesIO(result)) as im:
            assert im.format == fmt and im.size == (32, 24)


def test_a_path_gives_a_picture_with_its_metadata(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    source = tmp_path / "photo.jpg"
    Image.fromarray(photo_rgb).save(source, dpi=(72, 72))
    for given in (source, str(source)):
        result = resize(given, height=24)
        assert isinstance(result, Picture) and (result.width, result.height) == (32, 24)
        assert result.metadata.source_format == "JPEG" and result.metadata.dpi == (72.0, 72.0)


def test_a_paired_thumbnail_is_restored_with_direction_up_alone(photo_rgb: np.ndarray) -> None:
    original = resizer.Picture(photo_rgb[:64, :64].copy())
    thumbnail = resize(original, scale=0.5, method="car", device="cpu")
    assert (thumbnail.width, thumbnail.height) == (32, 32)
    restored = resize(thumbnail, direction="up", device="cpu")
    assert (restored.width, restored.height) == (64, 64)
    blurry = resize(thumbnail, scale=2, method="bicubic")
    error = lambda p: float(np.mean((p.pixels.astype(float) - original.pixels) ** 2))  # noqa: E731
    assert error(restored) < error(blurry)  # the paired upscaler, not a generic one


def test_one_resizer_serves_many_images_with_one_network(photo_rgb: np.ndarray) -> None:
    from resizer.weights import load

    upscaler = Resizer("dair", device="cpu")
    first = upscaler(photo_rgb[:16, :16], scale=2)
    second = upscaler(photo_rgb[16:32, :16], scale=2)
    assert first.shape == second.shape == (32, 32, 3)
    assert upscaler.last_method is not None and upscaler.last_method.name == "dair"
    assert load("dair", 2.0, device="cpu").model is load("dair", 2.0, device="cpu").model
    assert np.array_equal(upscaler(photo_rgb[:16, :16], scale=2), first)
    assert "dair" in repr(upscaler)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 2, "direction": "sideways"}, "direction must be 'down' or 'up'"),
    ({"scale": 0.5, "direction": "up"}, "smaller, which is not direction 'up'"),
    ({"width": 200, "direction": "down"}, "larger, which is not direction 'down'"),
    ({"scale": 2, "width": 10}, "only one of"),
    ({"scale": -1}, "positive"),
    ({}, "give one of scale, width, height, fit or fill"),
    ({"scale": 2, "method": "nonsense"}, "nonsense"),
])
def test_wrong_requests_are_usage_errors(kwargs, message, photo_rgb: np.ndarray) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        resize(Image.fromarray(photo_rgb), **kwargs)


@pytest.mark.parametrize("image, message", [
    ([[1, 2], [3, 4]], "cannot resize a list"),
    (np.zeros((4, 4, 5), np.uint8), "C in 1..4"),
    (np.zeros((4, 4), np.int32), "not int32"),
    (np.full((4, 4), np.nan, np.float32), "NaN"),
])
def test_what_is_not_an_image_is_a_usage_error(image, message) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        resize(image, scale=2, method="bicubic")


def test_unreadable_bytes_are_an_image_read_error() -> None:
    with pytest.raises(resizer.ImageReadError):
        resize(b"not an image", scale=2)


def test_docstring_examples_run() -> None:
    for module in (resizer, resizer.api):
        failures, attempted = doctest.testmod(module)
        assert attempted > 0 and failures == 0, module.__name__


def test_readme_api_section_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo_rgb: np.ndarray) -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README's Python API section has no python example"
    monkeypatch.chdir(tmp_path)
    Image.fromarray(photo_rgb).save("photo.jpg")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own examples
    assert Path("thumb.webp").is_file()


def test_help_of_the_package_is_an_overview() -> None:
    doc = resizer.__doc__ or ""
    for name in ("resize", "Resizer", "run_batch", "load_picture", "ResizerError"):
        assert name in doc
    assert set(resizer.__all__) <= set(dir(resizer))


def test_a_lazily_opened_pil_image_is_decoded(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    Image.fromarray(photo_rgb).save(tmp_path / "photo.png")
    with Image.open(tmp_path / "photo.png") as opened:  # not yet decoded
        result = resize(opened, scale=0.5, method="box")
    assert result.size == (64, 48)
    assert np.array_equal(np.asarray(result), resize(photo_rgb, scale=0.5, method="box"))


def test_boxes_pick_the_direction_and_match_the_cli(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    image = Image.fromarray(photo_rgb)  # 128x96
    assert resize(image, fit="64x").size == (64, 48)
    assert resize(image, fit=(None, 24)).size == (32, 24)
    assert resize(image, fit=(128, 200)).size == (128, 96)  # already inside: kept
    assert resize(image, fit=(256, 256), method="bicubic").size == (256, 192)  # a larger box: up
    filled = resize(image, fill=(40, 40), gravity="north-west", method="lanczos")
    assert filled.size == (40, 40)
    expected = _cli_output(tmp_path, photo_rgb, "down", "--fill", "40x40", "--gravity", "north-west",
                           "--method", "lanczos")
    assert np.array_equal(np.asarray(filled), expected)
    with pytest.raises(UsageError, match="both sides"):
        resize(image, fill="40x")
    with pytest.raises(UsageError, match="only one of"):
        resize(image, fit="40x40", width=10)


def test_a_pil_thumbnail_keeps_its_pairing_and_is_restored(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    original = resizer.Picture(photo_rgb[:64, :64].copy())
    resizer.save_picture(resize(original, scale=0.5, method="car", device="cpu"), tmp_path / "thumb.png")
    with Image.open(tmp_path / "thumb.png") as thumbnail:  # resizer's pairing text travels in the PNG's XMP
        restored = resize(thumbnail, direction="up", device="cpu")
    assert restored.size == (64, 64)  # the pairing was read from the Pillow image's metadata
