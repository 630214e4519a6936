"""Reading and writing pictures: orientation, metadata, modes, 16 bits, failures, atomic writes."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, features

from resizer import files, image_io
from resizer.errors import ImageReadError, ImageWriteError
from resizer.image_io import (
    IMAGE_SUFFIXES,
    Metadata,
    Picture,
    encode_picture,
    is_image_file,
    is_image_path,
    load_picture,
    picture_from_pil,
    picture_to_pil,
    save_picture,
    to_8bit,
)

try:
    import tifffile
except ImportError:  # 16-bit colour TIFF needs it; everything else must still be tested
    tifffile = None
needs_tifffile = pytest.mark.skipif(tifffile is None, reason="tifffile is not installed")

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
RNG = np.random.default_rng(7)


def random16(height: int, width: int, channels: int) -> np.ndarray:
    return RNG.integers(0, 65536, (height, width, channels), dtype=np.uint16)


def exif_bytes(orientation: int | None = None, make: str = "ResizerCam") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def handmade_png16(pixels: np.ndarray, interlace: bool = False) -> bytes:
    """A 16-bit PNG written without Pillow or resizer (optionally Adam7-interlaced)."""
    height, width, channels = pixels.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes if interlace else [(0, 0, 1, 1)]:
        for row in pixels[y0::dy, x0::dx]:
            if row.size:
                raw += b"\x00" + row.astype(">u2").tobytes()
    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, int(interlace))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


# --------------------------------------------------------------------------- orientation


def test_exif_orientation_is_applied_and_reset(tmp_path, photo_rgb):
    source = tmp_path / "rotated.jpg"
    Image.fromarray(photo_rgb).save(source, quality=95, exif=exif_bytes(6))
    picture = load_picture(source)
    assert (picture.width, picture.height) == (photo_rgb.shape[0], photo_rgb.shape[1])  # 96x128 -> 128 tall
    expected = np.asarray(ImageOps.exif_transpose(Image.open(source)))
    assert np.array_equal(picture.pixels, expected)
    for suffix in ("jpg", "png", "webp"):
        out = tmp_path / f"out.{suffix}"
        save_picture(picture, out)
        with Image.open(out) as written:
            exif = written.getexif()
            assert exif[0x0112] == 1 and exif[0x010F] == "ResizerCam"
            assert written.size == (photo_rgb.shape[0], photo_rgb.shape[1])
        again = load_picture(out)
        assert (again.width, again.height) == (picture.width, picture.height)  # not rotated twice


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_orientation_matches_pillows_exif_transpose(tmp_path, orientation):
    pixels = random16(5, 7, 3)
    meta = Metadata(exif=exif_bytes(orientation))
    save_picture(Picture(pixels, meta), tmp_path / "wide.png")
    save_picture(Picture(to_8bit(pixels), meta), tmp_path / "narrow.png")
    wide, narrow = load_picture(tmp_path / "wide.png"), load_picture(tmp_path / "narrow.png")
    assert wide.pixels.dtype == np.uint16
    assert np.array_equal(to_8bit(wide.pixels), narrow.pixels)
    assert (wide.width, wide.height) == ((5, 7) if orientation >= 5 else (7, 5))
    if orientation == 6:
        assert np.array_equal(wide.pixels, np.rot90(pixels, -1))  # clockwise
    exif = Image.Exif()
    exif.load(wide.metadata.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "ResizerCam"


# --------------------------------------------------------------------------- metadata


def test_icc_exif_dpi_xmp_are_carried_and_stripped(tmp_path, photo_rgb):
    source = tmp_path / "in.jpg"
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>image/jpeg</dc:format>'
           b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    Image.fromarray(photo_rgb).save(source, icc_profile=SRGB_ICC, dpi=(300, 300), exif=exif_bytes(), xmp=xmp)
    picture = load_picture(source)
    meta = picture.metadata
    assert meta.icc_profile == SRGB_ICC and meta.dpi == (300.0, 300.0) and meta.source_format == "JPEG"
    assert b"dc:format" in meta.xmp and meta.exif.startswith(b"Exif\x00\x00")
    for suffix in ("png", "jpg", "webp", "tif"):
        out = tmp_path / f"kept.{suffix}"
        save_picture(picture, out)
        with Image.open(out) as written:
            assert written.info.get("icc_profile") == SRGB_ICC, suffix
            assert written.getexif().get(0x010F) == "ResizerCam", suffix
            if suffix != "webp":
                assert written.info["dpi"] == pytest.approx((300, 300), abs=0.01), suffix
        assert b"dc:format" in (load_picture(out).metadata.xmp or b""), suffix
        stripped = tmp_path / f"stripped.{suffix}"
        save_picture(picture, stripped, strip=True)
        with Image.open(stripped) as written:
            assert "icc_profile" not in written.info or not written.info["icc_profile"], suffix
            assert written.getexif().get(0x010F) is None, suffix
            assert "dpi" not in written.info or suffix == "tif" and written.info["dpi"] != (300, 300)
        assert load_picture(stripped).metadata.xmp is None


@pytest.mark.parametrize("suffix", ["png", "jpg", "webp", "tif"] + (["avif"] if features.check("avif") else []))
def test_pairing_text_round_trips(tmp_path, photo_rgb, suffix):
    text = {"resizer:method": "edsr-x2", "resizer:scale": "2", "resizer:original_size": "128x96",
            "resizer:note": "a < b & \"c\" ✓"}
    picture = Picture(photo_rgb, Metadata(text=dict(text)))
    save_picture(picture, tmp_path / f"a.{suffix}")
    first = load_picture(tmp_path / f"a.{suffix}")
    assert first.metadata.text == text
    # a second generation keeps exactly one copy of the keys and any foreign XMP
    first.metadata.text["resizer:scale"] = "4"
    save_picture(first, tmp_path / f"b.{suffix}")
    second = load_picture(tmp_path / f"b.{suffix}")
    assert second.metadata.text == {**text, "resizer:scale": "4"}
    assert second.metadata.xmp is None


def test_pairing_text_merges_into_existing_xmp(tmp_path, photo_rgb):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>x</dc:format>'
           b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    picture = Picture(photo_rgb, Metadata(xmp=xmp, text={"resizer:method": "bicubic"}))
    for fmt in ("jpg", "webp", "png"):
        loaded = load_picture(encode_picture(picture, fmt), name=f"x.{fmt}")
        assert loaded.metadata.text == {"resizer:method": "bicubic"}
        assert loaded.metadata.xmp.count(b"<dc:format>x</dc:format>") == 1
        assert b"resizer" not in loaded.metadata.xmp


def test_pairing_block_is_compact_and_older_element_form_is_replaced(photo_rgb):
    """Thumbnails written before the compact block (keys as elements) read the same and are rewritten once."""
    from resizer.image_io import RESIZER_XMP_NS

    text = {"resizer:method": "dsn", "resizer:scale": "2", "resizer:original_size": "75x61"}
    fresh = encode_picture(Picture(photo_rgb, Metadata(text=text)), "jpg")
    plain = encode_picture(Picture(photo_rgb), "jpg")
    assert len(fresh) - len(plain) < 320  # every byte counts in a coded thumbnail (element form: 480)
    old = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
           '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>x</dc:format>'
           f'</rdf:Description><rdf:Description rdf:about="" xmlns:resizer="{RESIZER_XMP_NS}">'
           '<resizer:method>car</resizer:method><resizer:scale>4</resizer:scale></rdf:Description>'
           '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()
    buffer = io.BytesIO()
    Image.fromarray(photo_rgb).save(buffer, "JPEG", xmp=old)
    loaded = load_picture(buffer.getvalue(), name="old.jpg")
    assert loaded.metadata.text == {"resizer:method": "car", "resizer:scale": "4"}
    loaded.metadata.text["resizer:scale"] = "2"
    again = load_picture(encode_picture(loaded, "jpg"), name="again.jpg")
    assert again.metadata.text == {"resizer:method": "car", "resizer:scale": "2"}
    assert again.metadata.xmp.count(b"<dc:format>x</dc:format>") == 1 and b"resizer" not in again.metadata.xmp


def test_jpeg_is_written_with_optimized_huffman_tables(photo_rgb):
    """The same pixels as Pillow's default JPEG, in fewer bytes."""
    ours = encode_picture(Picture(photo_rgb), "jpg", quality=50)
    buffer = io.BytesIO()
    Image.fromarray(photo_rgb).save(buffer, "JPEG", quality=50)
    assert len(ours) < len(buffer.getvalue())
    assert np.array_equal(load_picture(ours).pixels, load_picture(buffer.getvalue()).pixels)


def test_png_text_chunks_are_carried_to_png(tmp_path, photo_rgb):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "GIMP")
    info.add_itxt("Comment", "grüße")
    Image.fromarray(photo_rgb).save(tmp_path / "in.png", pnginfo=info)
    picture = load_picture(tmp_path / "in.png")
    assert picture.metadata.png_text == {"Software": "GIMP", "Comment": "grüße"} and picture.metadata.text == {}
    save_picture(picture, tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").text == {"Software": "GIMP", "Comment": "grüße"}


def test_text_keys_must_be_in_resizer_namespace(photo_rgb):
    with pytest.raises(ValueError):
        encode_picture(Picture(photo_rgb, Metadata(text={"method": "x"})), "png")


# --------------------------------------------------------------------------- modes


def test_alpha_is_kept(tmp_path, photo_rgb):
    alpha = RNG.integers(0, 256, photo_rgb.shape[:2] + (1,), dtype=np.uint8)
    rgba = np.concatenate([photo_rgb, alpha], axis=2)
    Image.fromarray(rgba).save(tmp_path / "in.png")
    picture = load_picture(tmp_path / "in.png")
    assert picture.channels == 4 and picture.has_alpha and np.array_equal(picture.pixels, rgba)
    for suffix in ("png", "tif"):
        save_picture(picture, tmp_path / f"out.{suffix}")
        assert np.array_equal(load_picture(tmp_path / f"out.{suffix}").pixels, rgba)
    save_picture(picture, tmp_path / "out.webp", quality=100)
    assert load_picture(tmp_path / "out.webp").channels == 4
    la = np.ascontiguousarray(rgba[..., 2:])
    save_picture(Picture(la), tmp_path / "la.png")
    assert np.array_equal(load_picture(tmp_path / "la.png").pixels, la)


def test_palette_modes_become_rgb_or_rgba(tmp_path):
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.putpixel((0, 0), 2)
    image.save(tmp_path / "opaque.png")
    image.save(tmp_path / "transparent.png", transparency=1)
    opaque = load_picture(tmp_path / "opaque.png")
    assert opaque.channels == 3 and tuple(opaque.pixels[0, 0]) == (0, 255, 0) and tuple(opaque.pixels[1, 1]) == (255, 0, 0)
    transparent = load_picture(tmp_path / "transparent.png")
    assert transparent.channels == 4
    assert transparent.pixels[1, 1, 3] == 0 and tuple(transparent.pixels[0, 0]) == (0, 255, 0, 255)


def test_bilevel_becomes_grey_and_grey_with_key_gets_alpha(tmp_path):
    Image.new("1", (5, 3), 1).save(tmp_path / "bw.png")
    bw = load_picture(tmp_path / "bw.png")
    assert bw.channels == 1 and bw.pixels.dtype == np.uint8 and (bw.pixels == 255).all()
    Image.new("L", (5, 3), 9).save(tmp_path / "keyed.png", transparency=9)
    keyed = load_picture(tmp_path / "keyed.png")
    assert keyed.channels == 2 and (keyed.pixels[..., 1] == 0).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "plain.jpg", quality=100)
    plain = load_picture(tmp_path / "plain.jpg")
    assert plain.channels == 3
    assert np.abs(plain.pixels.astype(int) - [255, 0, 0]).max() <= 8  # pure red
    # an embedded profile that is not CMYK cannot be used: Pillow's conversion, and the profile is dropped
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "icc.jpg", quality=100, icc_profile=SRGB_ICC)
    with_icc = load_picture(tmp_path / "icc.jpg")
    assert with_icc.channels == 3 and with_icc.metadata.icc_profile is None


def test_float_images_are_refused(tmp_path):
    Image.new("F", (4, 4), 0.5).save(tmp_path / "float.tif")
    with pytest.raises(ImageReadError, match=r"^.*float\.tif: 32-bit floating-point"):
        load_picture(tmp_path / "float.tif")


# --------------------------------------------------------------------------- 16 bits


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16bit_round_trips_exactly(tmp_path, channels, suffix):
    if suffix == "tif" and channels > 1 and tifffile is None:
        pytest.skip("tifffile is not installed")
    pixels = random16(23, 31, channels)
    pixels[0, 0], pixels[0, 1] = 0, 65535
    meta = Metadata(icc_profile=SRGB_ICC, dpi=(72.0, 72.0), text={"resizer:scale": "2"})
    save_picture(Picture(pixels, meta), tmp_path / f"deep.{suffix}")
    loaded = load_picture(tmp_path / f"deep.{suffix}")
    assert loaded.pixels.dtype == np.uint16 and loaded.bit_depth == 16
    assert np.array_equal(loaded.pixels, pixels)
    assert loaded.metadata.icc_profile == SRGB_ICC
    assert loaded.metadata.dpi == pytest.approx((72.0, 72.0), abs=0.01)
    assert loaded.metadata.text == {"resizer:scale": "2"}


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_png_from_another_writer(channels, interlace):
    pixels = random16(37, 29, channels)
    loaded = load_picture(handmade_png16(pixels, interlace), name="other.png")
    assert np.array_equal(loaded.pixels, pixels)


@needs_tifffile
@pytest.mark.parametrize("layout", ["raw", "zlib", "planar", "bigendian", "rgba", "associated", "la"])
def test_16bit_tiff_from_another_writer(tmp_path, layout):
    channels = {"rgba": 4, "associated": 4, "la": 2}.get(layout, 3)
    pixels = random16(19, 27, channels)
    kwargs: dict = {"photometric": "rgb" if channels > 2 else "minisblack"}
    data = pixels
    if layout == "zlib":
        kwargs.update(compression="zlib", predictor=True)
    if layout == "planar":
        data, kwargs["planarconfig"] = np.moveaxis(pixels, -1, 0).copy(), "separate"
    if layout == "bigendian":
        kwargs["byteorder"] = ">"
    if layout in ("rgba", "la"):
        kwargs["extrasamples"] = ["unassalpha"]
    expected = pixels
    if layout == "associated":
        kwargs["extrasamples"] = ["assocalpha"]
        pixels[..., 3] = 65535  # opaque: associated == straight
        pixels[0, 0] = (1000, 2000, 3000, 0)
        data, expected = pixels, pixels.copy()
        expected[0, 0] = (0, 0, 0, 0)
    tifffile.imwrite(tmp_path / "other.tif", data, **kwargs)
    loaded = load_picture(tmp_path / "other.tif")
    assert loaded.pixels.dtype == np.uint16 and np.array_equal(loaded.pixels, expected)


def test_16bit_into_8bit_formats_is_rounded_not_truncated(tmp_path):
    values = np.array([0, 127, 128, 129, 385, 386, 32896, 65406, 65408, 65535], np.uint16)
    pixels = np.ascontiguousarray(np.stack([values] * 3, axis=-1)[None])
    save_picture(Picture(pixels), tmp_path / "out.bmp")
    got = load_picture(tmp_path / "out.bmp").pixels[0, :, 0]
    assert got.dtype == np.uint8
    assert got.tolist() == [round(v / 257) for v in values.tolist()] == [0, 0, 0, 1, 1, 2, 128, 254, 255, 255]
    jpeg = load_picture(encode_picture(Picture(np.full((8, 8, 3), 32896, np.uint16)), "jpeg"), name="x.jpg")
    assert jpeg.pixels.dtype == np.uint8 and np.abs(jpeg.pixels.astype(int) - 128).max() <= 1


def test_alpha_into_jpeg_is_composited_on_white():
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 0] = 255  # transparent red on the left half, opaque black on the right
    pixels[:, 4:, :3], pixels[:, 4:, 3] = 0, 255
    loaded = load_picture(encode_picture(Picture(pixels), "jpg", quality=100), name="x.jpg")
    assert loaded.channels == 3
    assert loaded.pixels[:, :2].min() >= 245 and loaded.pixels[:, 6:].max() <= 10


# --------------------------------------------------------------------------- multi-frame


def test_multi_frame_inputs_give_the_first_frame_and_a_count(tmp_path):
    frames = [Image.new("RGB", (6, 4), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    for suffix in ("gif", "png", "tif", "webp"):
        path = tmp_path / f"anim.{suffix}"
        extra = {"lossless": True} if suffix == "webp" else {}
        frames[0].save(path, save_all=True, append_images=frames[1:], **extra)
        picture = load_picture(path)
        assert picture.metadata.frames == 3, suffix
        assert tuple(picture.pixels[0, 0, :3]) == (255, 0, 0), suffix
    Image.new("RGB", (6, 4)).save(tmp_path / "single.gif")
    assert load_picture(tmp_path / "single.gif").metadata.frames == 1


# --------------------------------------------------------------------------- refusals


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "img.png")
    with pytest.raises(ImageReadError) as caught:
        load_picture(tmp_path / "img.png", max_pixels=199)
    assert str(caught.value) == f"{tmp_path / 'img.png'}: 20x10 pixels exceeds the limit of 199 (--max-pixels)"
    assert load_picture(tmp_path / "img.png", max_pixels=200).width == 20
    assert load_picture(tmp_path / "img.png", max_pixels=None).width == 20


def test_decompression_bomb_is_refused_before_decoding():
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 30001 * 4)) + png_chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match=r"^bomb\.png: 30000x30000 pixels exceeds the limit of 200000000"):
        load_picture(bomb, name="bomb.png")


def test_pillows_lower_guard_does_not_override_max_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow alone would refuse 20x10
    Image.new("L", (20, 10), 3).save(tmp_path / "img.png")
    assert load_picture(tmp_path / "img.png").width == 20
    assert Image.MAX_IMAGE_PIXELS == 50
    with pytest.raises(ImageReadError, match="20x10 pixels exceeds the limit of 150"):
        load_picture(tmp_path / "img.png", max_pixels=150)


def test_read_failures_name_the_file(tmp_path, photo_rgb):
    Image.fromarray(photo_rgb).save(tmp_path / "good.png")
    Image.fromarray(photo_rgb).save(tmp_path / "good.jpg")
    png, jpg = (tmp_path / "good.png").read_bytes(), (tmp_path / "good.jpg").read_bytes()
    cases = {
        "empty.png": (b"", "empty file"),
        "cut.png": (png[: len(png) // 2], "truncated or corrupt"),
        "cut.jpg": (jpg[: len(jpg) // 2], "truncated or corrupt"),
        "notes.png": (b"just some text, not an image\n" * 10, "not an image"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageReadError, match=rf"^{name}: .*{reason}"):
            load_picture(tmp_path / name, name=name)
        if data:
            with pytest.raises(ImageReadError, match=rf"^<stdin>: .*{reason}"):
                load_picture(data)
    with pytest.raises(ImageReadError, match=r"missing\.png: no such file"):
        load_picture(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match=r"is a directory"):
        load_picture(tmp_path)
    with pytest.raises(ImageReadError, match=r"^<stdin>: empty file"):
        load_picture(b"")


def test_unreadable_file(tmp_path, monkeypatch, photo_rgb):
    path = tmp_path / "secret.png"
    Image.fromarray(photo_rgb).save(path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anyway: make open() fail the way it would for a user

            def denied(*args, **kwargs):
                raise PermissionError(13, "Permission denied", str(path))

            monkeypatch.setattr(image_io.decode, "open", denied, raising=False)
        with pytest.raises(ImageReadError, match=r"secret\.png: permission denied"):
            load_picture(path)
    finally:
        path.chmod(0o644)


# --------------------------------------------------------------------------- writing


def test_existing_output_is_refused_unless_overwrite(tmp_path, photo_rgb):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with pytest.raises(ImageWriteError, match=r"out\.png: exists \(use --overwrite\)"):
        save_picture(Picture(photo_rgb), target)
    assert target.read_bytes() == b"old"
    save_picture(Picture(photo_rgb), target, overwrite=True)
    assert np.array_equal(load_picture(target).pixels, photo_rgb)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file keeps its permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_new_output_gets_normal_permissions_and_missing_folders(tmp_path, photo_rgb):
    target = tmp_path / "a" / "b" / "out.jpg"
    save_picture(Picture(photo_rgb), target)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert load_picture(target).metadata.source_format == "JPEG"


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, photo_rgb, error):
    def broken_save(self, fp, format=None, **params):
        fp.write(b"\x89PNG partial data")
        raise error

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(type(error) if isinstance(error, KeyboardInterrupt) else ImageWriteError):
        save_picture(Picture(photo_rgb), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
    # an existing target survives a failed overwrite untouched
    (tmp_path / "keep.png").write_bytes(b"old")
    with pytest.raises((ImageWriteError, KeyboardInterrupt)):
        save_picture(Picture(photo_rgb), tmp_path / "keep.png", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"] and (tmp_path / "keep.png").read_bytes() == b"old"


def test_unwritable_destinations_name_the_path(tmp_path, photo_rgb):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ImageWriteError, match=r"sub/out\.png: cannot create folder"):
        save_picture(Picture(photo_rgb), tmp_path / "file.txt" / "sub" / "out.png")
    with pytest.raises(ImageWriteError, match=r"is a directory"):
        save_picture(Picture(photo_rgb), tmp_path, format="png", overwrite=True)
    with pytest.raises(ImageWriteError, match=r"out\.xyz: unknown output suffix"):
        save_picture(Picture(photo_rgb), tmp_path / "out.xyz")


def test_unwritable_folder(tmp_path, monkeypatch, photo_rgb):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root writes anyway: make the temp file fail the way it would for a user

            def denied(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(files.tempfile, "mkstemp", denied)
        with pytest.raises(ImageWriteError, match=r"locked/out\.png: cannot write into .*locked \(Permission denied\)"):
            save_picture(Picture(photo_rgb), locked / "out.png")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_encode_picture_and_formats(photo_rgb):
    picture = Picture(photo_rgb)
    for fmt, magic in (("png", b"\x89PNG"), ("JPG", b"\xff\xd8"), ("jpeg", b"\xff\xd8"), ("webp", b"RIFF"),
                       ("tiff", b"II*\x00"), ("bmp", b"BM"), ("gif", b"GIF8"), ("ppm", b"P6")):
        data = encode_picture(picture, fmt)
        assert data.startswith(magic), fmt
        assert load_picture(data, name=f"x.{fmt}").width == photo_rgb.shape[1]
    with pytest.raises(ImageWriteError):
        encode_picture(picture, "xyz")
    small = encode_picture(picture, "jpg", quality=10)
    assert len(small) < len(encode_picture(picture, "jpg"))


def test_image_suffixes():
    for name in ("a.png", "B.JPG", "c.jpeg", "d.WebP", "e.tif", "f.TIFF", "g.bmp", "h.gif", "i.ppm", "j.pgm"):
        assert is_image_path(Path(name)), name
    for name in ("a.txt", "b", ".png.part", "c.pdf", "png"):
        assert not is_image_path(name), name
    assert ".avif" in IMAGE_SUFFIXES or not features.check("avif")


# --------------------------------------------------------------------------- the Pillow-backed picture


def test_pillow_backed_picture_is_lazy_and_read_only(tmp_path, photo_rgb):
    Image.fromarray(photo_rgb).save(tmp_path / "in.png")
    picture = load_picture(tmp_path / "in.png")
    image = picture_to_pil(picture)
    assert picture_to_pil(picture) is image and image.info == {}
    assert (picture.width, picture.height, picture.channels, picture.bit_depth) == (128, 96, 3, 8)
    pixels = picture.pixels
    assert np.array_equal(pixels, photo_rgb) and pixels is picture.pixels
    with pytest.raises(ValueError):
        pixels[0, 0, 0] = 1
    picture.pixels = np.zeros((2, 3, 1), np.uint8)
    assert (picture.width, picture.height, picture.channels) == (3, 2, 1)
    assert picture_to_pil(picture).mode == "L"


def test_picture_from_pil_converts_modes():
    assert picture_from_pil(Image.new("P", (3, 2))).channels == 3
    deep = picture_from_pil(Image.new("I;16", (3, 2), 40000))
    assert deep.pixels.dtype == np.uint16 and (deep.pixels == 40000).all()
    source = Image.new("RGB", (3, 2))
    source.info["icc_profile"] = b"x"
    picture_from_pil(source)
    assert source.info == {"icc_profile": b"x"}  # the caller's image is left alone
    with pytest.raises(ValueError):
        picture_to_pil(Picture(np.zeros((2, 2, 3), np.uint16)))


def test_tiff_exif_keeps_sub_ifds_but_not_tiff_structure(photo_rgb):
    exif = Image.Exif()
    exif[0x010F] = "ResizerCam"
    exif[0x8769] = {0x9003: "2020:01:02 03:04:05"}
    tiff = encode_picture(Picture(photo_rgb, Metadata(exif=exif.tobytes())), "tif")
    picture = load_picture(tiff, name="x.tif")
    parsed = Image.Exif()
    parsed.load(picture.metadata.exif)
    assert parsed[0x010F] == "ResizerCam" and parsed.get_ifd(0x8769)[0x9003] == "2020:01:02 03:04:05"
    assert 273 not in parsed and 256 not in parsed  # the TIFF's own strip offsets and width are not EXIF
    jpeg = Image.open(io.BytesIO(encode_picture(picture, "jpg"))).getexif()
    assert jpeg.get_ifd(0x8769)[0x9003] == "2020:01:02 03:04:05"


def test_webp_exif_gets_the_standard_prefix(photo_rgb):
    data = io.BytesIO()
    Image.fromarray(photo_rgb).save(data, "WEBP", exif=exif_bytes())
    picture = load_picture(data.getvalue(), name="x.webp")
    assert picture.metadata.exif.startswith(b"Exif\x00\x00")
    assert Image.open(io.BytesIO(encode_picture(picture, "jpg"))).getexif()[0x010F] == "ResizerCam"


def test_image_io_module_has_no_torch_dependency():
    assert "torch" not in image_io.__dict__
    import subprocess
    import sys

    code = "import resizer.image_io, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_image_files_are_regular_visible_files_with_an_image_suffix(tmp_path, photo_rgb):
    Image.fromarray(photo_rgb).save(tmp_path / "photo.png")
    Image.fromarray(photo_rgb).save(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "link.jpg").symlink_to(tmp_path / "photo.png")
    found = sorted(p.name for p in tmp_path.iterdir() if is_image_file(p))
    assert found == ["link.jpg", "photo.png"]
    assert not is_image_file(tmp_path / "missing.png")
    assert is_image_path(tmp_path / ".hidden.png")  # the suffix rule alone does not look at the file


def test_save_writes_through_a_part_file_beside_the_target(tmp_path, monkeypatch, photo_rgb):
    from resizer.image_io import write

    seen: list[list[str]] = []
    encode = write._encode_into

    def spying(picture, fmt, handle, **options):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        encode(picture, fmt, handle, **options)

    monkeypatch.setattr(write, "_encode_into", spying)
    save_picture(Picture(photo_rgb), tmp_path / "out.png")
    assert len(seen) == 1 and len(seen[0]) == 1
    assert seen[0][0].startswith(".out.png.") and seen[0][0].endswith(".part")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert np.array_equal(load_picture(tmp_path / "out.png").pixels, photo_rgb)


def test_to_8bit_rounds_every_16_bit_value_to_the_nearest_level():
    values = np.arange(65536, dtype=np.uint16)
    expected = np.floor(values.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    assert np.array_equal(to_8bit(values), expected)
    assert np.array_equal(to_8bit(np.arange(256, dtype=np.uint16) * 257), np.arange(256, dtype=np.uint8))
