"""Issue 21, image formats: readable files that were refused, silent losses, pairing names, memory.

Every odd file is made here (tmp_path), then read through ``load_picture`` and the real CLI.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer import pipeline
from resizer.cli import app
from resizer.classical import _resize16, resize_pixels
from resizer.errors import ResizerError
from resizer.image_io import (
    Picture, load_picture, save_picture, source_output_format, writable_format_for,
)
from resizer.image_io.decode import cmyk16_to_rgb
from resizer.pairing import Pairing, read_pairing


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def no_traceback(result) -> None:
    text = result.output + (getattr(result, "stderr", "") or "")
    assert "Traceback" not in text and "site-packages" not in text, text


def ramp16(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """uint16 samples whose low bytes differ from their high bytes (an 8-bit read would show)."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width, channels), dtype=np.uint16)


# --------------------------------------------------------------------------- readable but refused


def _lzw_tiff(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("imagecodecs")  # writing (and reading some) LZW TIFFs needs it
    channels = pixels.shape[2]
    photometric = "rgb" if channels >= 3 else "minisblack"
    extrasamples = ["unassalpha"] if channels in (2, 4) else None
    data = pixels if kwargs.get("planarconfig") != "separate" else pixels.transpose(2, 0, 1)
    tifffile.imwrite(path, data, compression="lzw", photometric=photometric, extrasamples=extrasamples, **kwargs)
    return path


@pytest.mark.parametrize(("channels", "options"), [
    (3, {"predictor": 2}),  # contiguous, horizontal differencing: Photoshop's and GIMP's default
    (4, {}),
    (3, {"planarconfig": "separate"}),  # one plane per channel: only tifffile + imagecodecs read it
    (2, {}),  # grey + alpha: Pillow cannot open it at all
    (1, {"predictor": 2}),
])
def test_16bit_lzw_tiffs_are_read_at_16_bits(tmp_path, channels, options) -> None:
    pixels = ramp16(21, 34, channels)
    source = _lzw_tiff(tmp_path / "scan.tif", pixels, **options)
    picture = load_picture(source)
    assert picture.pixels.dtype == np.uint16 and np.array_equal(picture.pixels, pixels)

    result = run("down", "--scale", "2", "--method", "box", str(source))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    out = load_picture(tmp_path / "scan_down2.tif")
    assert out.pixels.dtype == np.uint16 and out.pixels.shape == (11, 17, channels)


def test_without_imagecodecs_the_refusal_is_one_line_naming_the_extra(tmp_path) -> None:
    import subprocess
    import sys

    source = _lzw_tiff(tmp_path / "planar.tif", ramp16(9, 11, 3), planarconfig="separate")
    code = ("import sys; sys.modules['imagecodecs'] = None\n"  # as if it were not installed
            "from resizer.image_io import load_picture\n"
            "from resizer.errors import ImageReadError\n"
            "try:\n    load_picture(sys.argv[1])\nexcept ImageReadError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.count("\n") == 1 and str(source) in out.stdout and "resizer[tiff]" in out.stdout


# A minimal layered PSD (RGB, 8 bits): two full-size layers and the flattened composite.
def make_psd(composite: np.ndarray, layers: list[np.ndarray]) -> bytes:
    height, width, _ = composite.shape
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3) + struct.pack(">II", 0, 0)
    records, channel_data = b"", b""
    for number, layer in enumerate(layers):
        name = f"layer {number}".encode()
        pascal = bytes([len(name)]) + name
        pascal += b"\0" * (-len(pascal) % 4)
        extra = struct.pack(">II", 0, 0) + pascal
        records += struct.pack(">iiiiH", 0, 0, height, width, 3)
        records += b"".join(struct.pack(">hI", c, 2 + height * width) for c in range(3))
        records += b"8BIMnorm" + struct.pack(">BBBxI", 255, 0, 0, len(extra)) + extra
        channel_data += b"".join(struct.pack(">H", 0) + layer[:, :, c].tobytes() for c in range(3))
    info = struct.pack(">h", len(layers)) + records + channel_data
    info += b"\0" * (len(info) % 2)
    section = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    image_data = struct.pack(">H", 0) + composite.transpose(2, 0, 1).tobytes()  # raw planes
    return header + struct.pack(">I", len(section)) + section + image_data


def test_a_layered_psd_is_read_as_pillow_reads_it(tmp_path) -> None:
    rng = np.random.default_rng(3)
    composite = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
    layers = [np.full_like(composite, 40), np.full_like(composite, 200)]
    source = tmp_path / "poster.psd"
    source.write_bytes(make_psd(composite, layers))
    with Image.open(source) as image:
        assert image.n_frames == 2 and np.array_equal(np.asarray(image.convert("RGB")), composite)

    picture = load_picture(source)
    assert np.array_equal(picture.pixels, composite)  # the composite, not a layer
    assert picture.metadata.frames == 1 and picture.metadata.source_format == "PSD"

    result = run("down", "--scale", "2", "--method", "nearest", str(source), "-o", str(tmp_path / "poster.png"))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "frames" not in result.output  # the composite is the whole picture: no "only the first" warning
    expected = Image.fromarray(composite).resize((9, 6), Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "poster.png")), np.asarray(expected))


# --------------------------------------------------------------------------- unwritable input formats


def test_unwritable_suffixes_fall_back_to_png() -> None:
    for suffix in (".tga", ".pbm", ".dib", ".psd", ".dcx", ".apng", ".TGA", ""):
        assert writable_format_for(f"photo{suffix}") == "png", suffix
    for suffix in (".png", ".jpg", ".JPEG", ".tif", ".webp", ".bmp", ".gif", ".ppm", ".pgm"):
        assert writable_format_for(f"photo{suffix}") is None, suffix
    assert source_output_format("JPEG") == "jpeg" and source_output_format("TGA") == "png"
    assert source_output_format("MPO") == "jpeg" and source_output_format(None) == "png"


@pytest.mark.skipif(not hasattr(pipeline, "writable_format_for"),
                    reason="the pipeline does not choose writable output suffixes yet (lead: see issue 21 report)")
def test_a_folder_of_read_only_formats_gets_png_outputs(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    grey = np.arange(16 * 24, dtype=np.uint8).reshape(16, 24)
    Image.fromarray(np.stack([grey] * 3, -1)).save(folder / "a.tga", "TGA")
    Image.fromarray(grey).convert("1").save(folder / "b.pbm", "PPM")
    Image.fromarray(np.stack([grey] * 3, -1)).save(folder / "c.dib", "BMP")
    Image.fromarray(grey).save(folder / "d.png")
    frame = _pcx((10, 20, 30), 300)
    (folder / "e.dcx").write_bytes(struct.pack("<III", 987654321, 12, 0) + frame)
    (folder / "f.psd").write_bytes(make_psd(np.stack([grey] * 3, -1), [np.stack([grey] * 3, -1)]))
    result = run("down", "--scale", "2", "--method", "box", str(folder), "-o", str(tmp_path / "out"))
    no_traceback(result)
    assert result.exit_code == 0, result.output  # .dcx and .psd are not picked from folders (IMAGE_SUFFIXES)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]
    result = run("down", "--scale", "2", "--method", "box", str(folder / "e.dcx"), str(folder / "f.psd"),
                 "-o", str(tmp_path / "named"))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == ["e.png", "f.png"]
    with Image.open(tmp_path / "named" / "e.png") as out:
        assert [round(v) for v in out.info["dpi"]] == [300, 300]  # DCX's DPI, carried into the PNG
    result = run("down", "--scale", "2", "--method", "box", str(folder / "a.tga"))
    assert result.exit_code == 0, result.output
    assert (folder / "a_down2.png").is_file()  # the output name says what it is


# --------------------------------------------------------------------------- silent losses


def test_1bit_png_transparency_is_kept(tmp_path) -> None:
    bits = np.zeros((8, 10), bool)
    bits[:, 5:] = True
    Image.fromarray(bits).save(tmp_path / "mask.png", transparency=0)  # black is transparent
    picture = load_picture(tmp_path / "mask.png")
    assert picture.pixels.shape == (8, 10, 2)
    assert (picture.pixels[:, :5, 1] == 0).all() and (picture.pixels[:, 5:] == 255).all()

    result = run("down", "--scale", "2", "--method", "nearest", str(tmp_path / "mask.png"))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "mask_down2.png") as out:
        assert out.mode == "LA" and out.getchannel("A").getextrema() == (0, 255)


def test_32bit_bmp_alpha_is_kept(tmp_path) -> None:
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.arange(8, dtype=np.uint8) * 36  # a 32-bit BI_RGB BMP, alpha in the fourth bytes
    Image.fromarray(rgba).save(tmp_path / "icon.bmp")
    assert np.array_equal(load_picture(tmp_path / "icon.bmp").pixels, rgba)

    result = run("down", "--scale", "2", "--method", "nearest", str(tmp_path / "icon.bmp"))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert np.array_equal(load_picture(tmp_path / "icon_down2.bmp").pixels, rgba[1::2, 1::2])  # nearest: centres

    opaque = tmp_path / "padded.bmp"  # fourth bytes all zero: padding, not a transparent image
    header = bytearray((tmp_path / "icon.bmp").read_bytes())
    offset = struct.unpack_from("<I", header, 10)[0]
    pixels = np.frombuffer(bytes(header[offset:]), np.uint8).reshape(-1, 4).copy()
    pixels[:, 3] = 0
    opaque.write_bytes(bytes(header[:offset]) + pixels.tobytes())
    assert load_picture(opaque).pixels.shape == (6, 8, 3)


def test_16bit_cmyk_tiff_stays_16_bit(tmp_path) -> None:
    tifffile = pytest.importorskip("tifffile")
    cmyk = ramp16(10, 14, 4, seed=5)
    tifffile.imwrite(tmp_path / "print.tif", cmyk, photometric="separated")
    picture = load_picture(tmp_path / "print.tif")
    assert picture.pixels.dtype == np.uint16 and picture.pixels.shape == (10, 14, 3)
    inverse = 65535 - cmyk.astype(np.float64)
    expected = np.round(inverse[..., :3] * inverse[..., 3:] / 65535)
    assert np.abs(picture.pixels - expected).max() <= 1
    assert np.array_equal(cmyk16_to_rgb(np.array([[[0, 0, 0, 0], [65535, 0, 0, 0]]], np.uint16)),
                          np.array([[[65535, 65535, 65535], [0, 65535, 65535]]], np.uint16))
    # the 8-bit formula agrees with Pillow's CMYK -> RGB
    eight = np.array([[[100, 0, 255, 100]]], np.uint16) * 257
    pillow = np.asarray(Image.new("CMYK", (1, 1), (100, 0, 255, 100)).convert("RGB"))
    assert np.abs(cmyk16_to_rgb(eight) / 257.0 - pillow).max() <= 1

    result = run("down", "--scale", "2", "--method", "box", str(tmp_path / "print.tif"))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert load_picture(tmp_path / "print_down2.tif").pixels.dtype == np.uint16


def _pcx(colour: tuple[int, int, int], dpi: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 8), colour).save(buffer, "PCX")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<HH", data, 12, dpi, dpi)  # PCX header: horizontal and vertical DPI
    return bytes(data)


def test_dcx_dpi_is_carried(tmp_path) -> None:
    frames = [_pcx((10, 20, 30), 300), _pcx((200, 20, 30), 300)]
    offsets, position = [], 4 + 4 * (len(frames) + 1)
    for frame in frames:
        offsets.append(position)
        position += len(frame)
    source = tmp_path / "fax.dcx"
    source.write_bytes(struct.pack(f"<I{len(frames) + 1}I", 987654321, *offsets, 0) + b"".join(frames))
    assert load_picture(source).metadata.dpi == (300.0, 300.0)
    result = run("down", "--scale", "2", "--method", "box", str(source), "-o", str(tmp_path / "fax.png"))
    no_traceback(result)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "fax.png") as out:
        assert [round(v) for v in out.info["dpi"]] == [300, 300]


# --------------------------------------------------------------------------- pairing metadata


@pytest.mark.parametrize("model", ["../../../etc/passwd", "/etc/passwd", "..\\..\\x", ".hidden", "a\nb", "x" * 300])
def test_pairing_that_names_no_model_is_refused(tmp_path, model) -> None:
    text = Pairing("car", "car-x2-down", "0.1.0", 2.0, (20, 16)).to_text()
    with pytest.raises(ResizerError, match="thumb.png: .*no valid model"):
        read_pairing({**text, "resizer:model": model}, name="thumb.png")
    with pytest.raises(ResizerError, match="no valid method"):
        read_pairing({**text, "resizer:method": "../car"})

    thumb = Picture(np.zeros((8, 10, 3), np.uint8))
    thumb.metadata.text.update({**text, "resizer:model": model})
    save_picture(thumb, tmp_path / "thumb.png")
    result = run("up", str(tmp_path / "thumb.png"))
    no_traceback(result)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if "thumb.png" in line]
    assert len(lines) == 1 and "no valid model" in lines[0], result.output
    assert not (tmp_path / "thumb_up.png").exists() and len(list(tmp_path.iterdir())) == 1


def test_pairing_accepts_manifest_and_weights_file_names() -> None:
    text = Pairing("car", "car-x4-down", "0.1.0", 4.0, (40, 32)).to_text()
    for model in ("car-x4-down", "dsn-x3-down", "My Model v2.safetensors", "run_07.safetensors", ""):
        assert read_pairing({**text, "resizer:model": model}).model == model


# --------------------------------------------------------------------------- memory of the 16-bit path


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("filter_name", ["lanczos", "bicubic", "nearest"])
def test_16bit_resize_in_bands_is_exact(monkeypatch, channels, filter_name) -> None:
    """The banded, one-channel-at-a-time 16-bit path equals a whole-image reference computation."""
    import resizer.classical as classical

    pixels = ramp16(23, 31, channels, seed=channels)
    if channels in (2, 4):
        pixels[::3, :, -1] = 0
        pixels[1::4, :, -1] = 65535
    whole = _resize16(pixels, (13, 11), classical.FILTERS[filter_name])
    monkeypatch.setattr(classical, "_BAND_PIXELS", 17)  # a band of one row
    assert np.array_equal(_resize16(pixels, (13, 11), classical.FILTERS[filter_name]), whole)
    assert np.array_equal(resize_pixels(pixels, (13, 11), filter_name), whole)

    reference = _reference_resize16(pixels, (13, 11), classical.FILTERS[filter_name])
    assert np.array_equal(whole, reference)


def _reference_resize16(pixels: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    """The whole-image float32 computation the 16-bit path had before it went channel by channel."""
    channels = pixels.shape[2]
    planes = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
    premultiply = channels in (2, 4) and resample != Image.Resampling.NEAREST
    if premultiply:
        planes[:-1] *= planes[-1] / 65535.0
    out = np.empty((channels, size[1], size[0]), np.float32)
    for index in range(channels):
        out[index] = np.asarray(Image.fromarray(planes[index]).resize(size, resample))
    if premultiply:
        alpha = np.clip(out[-1], 0.0, 65535.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:-1] = np.where(alpha > 0, out[:-1] * (65535.0 / alpha), 0.0)
        out[-1] = alpha
    np.rint(out, out=out)
    np.clip(out, 0.0, 65535.0, out=out)
    return out.transpose(1, 2, 0).astype(np.uint16)


def test_16bit_png_read_in_bands_is_exact(tmp_path, monkeypatch) -> None:
    import resizer.image_io.decode as decode

    pixels = ramp16(19, 27, 4, seed=9)
    save_picture(Picture(pixels), tmp_path / "deep.png")
    monkeypatch.setattr(decode, "_BAND_PIXELS", 30)
    assert np.array_equal(load_picture(tmp_path / "deep.png").pixels, pixels)
