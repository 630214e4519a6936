"""Classical methods: registration, exact sizes, Pillow equivalence, 16 bits, alpha, metadata."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resizer import classical
from resizer.classical import FILTERS, resize_pixels
from resizer.errors import UsageError
from resizer.image_io import Metadata, Picture, load_picture, picture_to_pil, save_picture
from resizer.image_io.picture import _PillowPicture
from resizer.methods import ResizeRequest, RunOptions, get_method, list_methods

NAMES = ["nearest", "bilinear", "bicubic", "lanczos", "box"]
SMOOTH = ["bilinear", "bicubic", "lanczos", "box"]


def request(size: tuple[int, int], direction: str = "down") -> ResizeRequest:
    return ResizeRequest(direction=direction, size=size, scale=2.0)


def with_alpha(rgb: np.ndarray) -> np.ndarray:
    """The photo plus a horizontal alpha ramp from 20 to 255."""
    ramp = np.clip(np.arange(rgb.shape[1]) * 2 + 20, 0, 255).astype(np.uint8)
    alpha = np.broadcast_to(ramp, rgb.shape[:2])[..., None]
    return np.concatenate([rgb, alpha], axis=2)


def test_every_method_is_registered_with_a_summary():
    registered = {m.name: m for m in list_methods()}
    for name in NAMES:
        method = get_method(name)
        assert registered[name] is method
        assert method.summary and method.directions == frozenset({"down", "up"})
    assert get_method("  Lanczos ").name == "lanczos"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (13, 1), (17, 11), (301, 203)])
@pytest.mark.parametrize("layout", ["L", "LA", "RGB", "RGBA", "L16", "RGB16", "RGBA16"])
def test_output_size_dtype_and_channels_are_exact(photo_rgb, name, size, layout):
    base = {"L": photo_rgb[..., :1], "LA": with_alpha(photo_rgb)[..., 2:], "RGB": photo_rgb,
            "RGBA": with_alpha(photo_rgb)}[layout.rstrip("16")]
    pixels = np.ascontiguousarray(base.astype(np.uint16) * 257 if layout.endswith("16") else base)
    out = get_method(name).resize(Picture(pixels), request(size), RunOptions())
    assert (out.width, out.height, out.channels) == (size[0], size[1], pixels.shape[2])
    assert out.pixels.shape == (size[1], size[0], pixels.shape[2])
    assert out.pixels.dtype == pixels.dtype


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype,value", [(np.uint8, (200, 31, 7, 255)), (np.uint16, (51234, 7, 65535, 40000))])
def test_a_constant_image_stays_constant(name, dtype, value):
    pixels = np.empty((37, 53, 4), dtype)
    pixels[:] = value
    for size in [(11, 9), (120, 80), (1, 1)]:
        out = resize_pixels(pixels, size, name)
        assert np.array_equal(out, np.broadcast_to(np.array(value, dtype), out.shape)), (name, size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(32, 24), (61, 47), (256, 192), (300, 100)])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_8bit_equals_pillows_own_resize(photo_rgb, name, size, mode):
    source = {"RGB": photo_rgb, "RGBA": with_alpha(photo_rgb), "L": photo_rgb[..., 1:2]}[mode]
    image = Image.fromarray(source if mode != "L" else source[..., 0])
    expected = np.asarray(image.resize(size, FILTERS[name])).reshape(size[1], size[0], -1)
    out = get_method(name).resize(Picture(np.ascontiguousarray(source)), request(size), RunOptions())
    assert np.array_equal(out.pixels, expected)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(40, 30), (301, 250), (7, 200)])
def test_16bit_stays_16bit_and_matches_an_8bit_reference(photo_rgb, name, size):
    reference = resize_pixels(photo_rgb, size, name).astype(np.float64) * 257
    out = resize_pixels(photo_rgb.astype(np.uint16) * 257, size, name)
    assert out.dtype == np.uint16
    levels = np.abs(out - reference) / 257  # in 8-bit levels; Pillow's 8-bit path rounds (and clips) each pass
    assert levels.mean() < 0.4
    assert np.percentile(levels, 99) <= 1.0
    if name in ("nearest", "box") and size == (301, 250):
        assert levels.max() == 0  # pure copies: exact


@pytest.mark.parametrize("name", SMOOTH)
def test_16bit_rgba_matches_8bit_reference_in_premultiplied_terms(photo_rgb, name):
    source = with_alpha(photo_rgb)
    size = (50, 70)
    ref = resize_pixels(source, size, name).astype(np.float64)
    out = resize_pixels(source.astype(np.uint16) * 257, size, name).astype(np.float64) / 257
    assert np.percentile(np.abs(out[..., 3] - ref[..., 3]), 99) <= 1.0
    premultiplied = np.abs(out[..., :3] * out[..., 3:] - ref[..., :3] * ref[..., 3:]) / 255
    assert np.percentile(premultiplied, 99) <= 1.5


def edge_image(dtype: type, transparent: tuple[int, int, int]) -> np.ndarray:
    """Left half fully transparent ``transparent`` colour, right half opaque white."""
    peak = 65535 if dtype == np.uint16 else 255
    pixels = np.zeros((16, 32, 4), dtype)
    pixels[:, :16, :3] = np.array(transparent) * (peak // 255)
    pixels[:, 16:] = peak
    return pixels


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("transparent", [(0, 0, 0), (255, 0, 0)])
@pytest.mark.parametrize("size", [(12, 6), (75, 37)])
def test_alpha_edges_get_no_fringe(name, dtype, transparent, size):
    peak = 65535 if dtype == np.uint16 else 255
    out = resize_pixels(edge_image(dtype, transparent), size, name).astype(np.float64) / peak
    visible = out[..., 3] > 0.03
    assert visible.any() and (out[..., 3] < 0.97).any()  # there is a partly transparent edge
    assert out[..., :3][visible].min() >= 0.98  # still white: no dark or red fringe
    assert (out[..., :3][out[..., 3] == 0] == 0).all()


def test_unpremultiplied_resize_would_fringe():
    """The fringe test above can fail: resizing colour without premultiplying bleeds black in."""
    pixels = edge_image(np.uint8, (0, 0, 0))
    naive = np.asarray(Image.fromarray(pixels[..., :3]).resize((12, 6), Image.Resampling.BICUBIC))
    alpha = np.asarray(Image.fromarray(pixels[..., 3]).resize((12, 6), Image.Resampling.BICUBIC))
    assert naive[alpha > 8].min() < 250


def test_metadata_object_is_carried(photo_rgb):
    metadata = Metadata(dpi=(300.0, 300.0), text={"resizer:method": "x"}, source_format="PNG")
    for pixels in (photo_rgb, photo_rgb.astype(np.uint16) * 257):
        out = get_method("bicubic").resize(Picture(pixels, metadata), request((10, 8)), RunOptions())
        assert out.metadata is metadata


def test_loaded_picture_is_resized_and_saved_without_an_array(tmp_path, photo_rgb):
    """The fast path: load -> resize -> save never converts the 8-bit image to numpy."""
    Image.fromarray(photo_rgb).save(tmp_path / "in.png")
    picture = load_picture(tmp_path / "in.png")
    out = get_method("lanczos").resize(picture, request((64, 48)), RunOptions())
    assert isinstance(out, _PillowPicture) and out._array is None and picture._array is None
    save_picture(out, tmp_path / "out.png")
    assert out._array is None
    expected = Image.open(tmp_path / "in.png").resize((64, 48), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(expected))
    assert picture_to_pil(out).size == (64, 48)


def test_empty_size_and_unknown_filter_are_usage_errors(photo_rgb):
    method = get_method("bilinear")
    with pytest.raises(UsageError):
        method.validate(request((0, 5)))
    with pytest.raises(UsageError):
        method.resize(Picture(photo_rgb), request((5, 0)), RunOptions())
    with pytest.raises(UsageError):
        resize_pixels(photo_rgb, (5, 5), "mitchell")
    method.validate(request((5, 5), "up"))


def test_classical_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, resizer.classical; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert classical.METHODS
