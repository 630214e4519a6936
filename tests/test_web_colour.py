"""Issue 17: --srgb converts from the embedded profile, --strip warns on non-sRGB, GPS leaves outputs by default."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from typer.testing import CliRunner

from resizer.cli import app
from resizer.image_io.metadata import without_gps
from resizer.image_io.profiles import is_srgb, profile_description, srgb_profile

from .conftest import synthetic_photo
from .icc_profiles import adobe_rgb


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def adobe_photo(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    Image.fromarray(synthetic_photo(size[1], size[0])).save(path, icc_profile=adobe_rgb())
    return path


def test_the_test_profile_is_a_real_profile() -> None:
    assert profile_description(adobe_rgb()) == "Adobe RGB (1998) (test)"
    assert not is_srgb(adobe_rgb()) and is_srgb(srgb_profile()) and is_srgb(None)


def test_srgb_converts_with_the_perceptual_intent_and_tags_srgb(tmp_path) -> None:
    src = adobe_photo(tmp_path / "adobe.png")
    plain, converted = tmp_path / "plain.png", tmp_path / "srgb.png"
    assert run("down", str(src), "--scale", "2", "-o", str(plain)).exit_code == 0
    result = run("down", str(src), "--scale", "2", "--srgb", "-o", str(converted))
    assert result.exit_code == 0, result.output
    with Image.open(plain) as im:
        assert im.info["icc_profile"] == adobe_rgb()  # without --srgb the profile travels as it is
        expected = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb())),
                                             ImageCms.createProfile("sRGB"),
                                             renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
    with Image.open(converted) as im:
        assert profile_description(im.info["icc_profile"]) == "sRGB built-in"
        got = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(got - np.asarray(expected).astype(int)).max() <= 1
    assert np.abs(got - np.asarray(Image.open(plain)).astype(int)).max() > 10  # the colours did change


def test_srgb_with_strip_converts_and_tags_nothing(tmp_path) -> None:
    src = adobe_photo(tmp_path / "adobe.jpg")
    out = tmp_path / "o.jpg"
    result = run("down", str(src), "--scale", "2", "--srgb", "--strip", "-o", str(out))
    assert result.exit_code == 0 and "warning" not in result.stderr
    with Image.open(out) as im:
        assert "icc_profile" not in im.info or not im.info["icc_profile"]


def test_strip_on_a_non_srgb_image_warns_unless_srgb(tmp_path) -> None:
    src = adobe_photo(tmp_path / "adobe.png")
    warned = run("down", str(src), "--scale", "2", "--strip", "-o", str(tmp_path / "a.png"))
    assert warned.exit_code == 0 and "Adobe RGB (1998) (test)" in warned.stderr and "--srgb" in warned.stderr
    assert "adobe.png" in warned.stderr
    srgb_src = tmp_path / "srgb.png"
    Image.fromarray(synthetic_photo(48, 64)).save(srgb_src, icc_profile=srgb_profile())
    quiet = run("down", str(srgb_src), "--scale", "2", "--strip", "-o", str(tmp_path / "b.png"))
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_srgb_keeps_alpha_and_converts_grey(tmp_path) -> None:
    rgba = np.dstack([synthetic_photo(48, 64), np.full((48, 64), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png", icc_profile=adobe_rgb())
    assert run("down", str(tmp_path / "a.png"), "--scale", "2", "--srgb", "-o", str(tmp_path / "o.png")).exit_code == 0
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGBA" and np.asarray(im)[..., 3].min() == 128


def _exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)}
    return exif.tobytes()


def test_gps_is_dropped_by_default_and_kept_on_request(tmp_path) -> None:
    src = tmp_path / "gps.jpg"
    Image.fromarray(synthetic_photo(48, 64)).save(src, exif=_exif_with_gps())
    assert Image.open(src).getexif().get_ifd(0x8825)
    assert run("down", str(src), "--scale", "2", "-o", str(tmp_path / "web.jpg")).exit_code == 0
    assert run("down", str(src), "--scale", "2", "--keep-gps", "-o", str(tmp_path / "kept.jpg")).exit_code == 0
    web, kept = Image.open(tmp_path / "web.jpg").getexif(), Image.open(tmp_path / "kept.jpg").getexif()
    assert web.get(0x010F) == "TestCam" and not web.get_ifd(0x8825)  # the camera stays, the place goes
    assert kept.get_ifd(0x8825).get(1) == "N"


def test_xmp_gps_properties_go_too() -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="52,22N" '
           b'dc:format="image/jpeg"><exif:GPSLongitude>4,53E</exif:GPSLongitude></rdf:Description></rdf:RDF></x:xmpmeta>')
    exif, cleaned = without_gps(None, xmp)
    assert b"GPS" not in cleaned and b'dc:format="image/jpeg"' in cleaned
    plain = Image.Exif()
    plain[0x010F] = "TestCam"
    untouched = plain.tobytes()
    assert without_gps(untouched, None)[0] is untouched  # no GPS: the EXIF block is not rewritten


def test_json_lists_the_warning(tmp_path) -> None:
    src = adobe_photo(tmp_path / "adobe.png")
    result = run("down", str(src), "--scale", "2", "--strip", "--json", "-o", str(tmp_path / "o.png"))
    assert "--srgb" in json.loads(result.stdout)["warnings"][0]


# --------------------------------------------------------------------------- per-format options


def test_progressive_jpeg_and_chroma_subsampling(tmp_path) -> None:
    from PIL import JpegImagePlugin

    src = tmp_path / "x.png"
    Image.fromarray(synthetic_photo(48, 64)).save(src)
    plain, fancy = tmp_path / "plain.jpg", tmp_path / "fancy.jpg"
    assert run("down", str(src), "--scale", "2", "-o", str(plain)).exit_code == 0
    result = run("down", str(src), "--scale", "2", "--progressive", "--subsampling", "4:4:4", "-o", str(fancy))
    assert result.exit_code == 0, result.output
    with Image.open(plain) as a, Image.open(fancy) as b:
        assert not a.info.get("progressive") and b.info.get("progressive")
        assert JpegImagePlugin.get_sampling(a) == 2 and JpegImagePlugin.get_sampling(b) == 0  # 4:2:0, 4:4:4
    assert run("down", str(src), "--scale", "2", "--subsampling", "4:1:1").exit_code == 2


def test_lossless_webp(tmp_path) -> None:
    src = tmp_path / "x.png"
    Image.fromarray(synthetic_photo(48, 64)).save(src)
    out = tmp_path / "o.webp"
    assert run("down", str(src), "--scale", "2", "--lossless", "-o", str(out)).exit_code == 0
    expected = np.asarray(Image.open(src).resize((32, 24), Image.Resampling.LANCZOS))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), expected)
    lossy = tmp_path / "lossy.webp"
    assert run("down", str(src), "--scale", "2", "-o", str(lossy)).exit_code == 0
    assert not np.array_equal(np.asarray(Image.open(lossy).convert("RGB")), expected)
