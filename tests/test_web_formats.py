"""Issue 17: HEIC/HEIF in and out (extra 'heif'), with a clear error naming the extra without it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.image_io import heif, load_picture

from .conftest import synthetic_photo


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture()
def heic_photo(tmp_path):
    pytest.importorskip("pillow_heif")
    assert heif.heif_available()
    path = tmp_path / "IMG_0001.HEIC"
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"
    Image.fromarray(synthetic_photo(96, 128)).save(path, format="HEIF", quality=90, exif=exif.tobytes())
    return path


def test_heic_is_read_and_written(tmp_path, heic_photo) -> None:
    result = run("down", str(heic_photo), "--scale", "2", "-o", str(tmp_path / "small.heic"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_size"] == [128, 96]
    with Image.open(tmp_path / "small.heic") as im:
        assert im.format == "HEIF" and im.size == (64, 48)
        assert im.getexif().get(0x010F) == "TestPhone"  # metadata travels
    assert run("down", str(heic_photo), "--fit", "32x32", "-o", str(tmp_path / "t.jpg")).exit_code == 0
    assert Image.open(tmp_path / "t.jpg").size == (32, 24)


def test_folders_pick_heic_files(tmp_path, heic_photo) -> None:
    result = run("down", str(heic_photo.parent), "--fit", "32x32", "--format", "webp", "-o", str(tmp_path / "web"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "web" / "IMG_0001.webp").is_file()


def test_without_the_extra_heif_is_one_line_naming_it(tmp_path, heic_photo, monkeypatch) -> None:
    data = heic_photo.read_bytes()
    monkeypatch.setattr(heif, "heif_available", lambda: False)
    from resizer.image_io import decode, write

    monkeypatch.setattr(decode, "heif_available", lambda: False)
    monkeypatch.setattr(write, "heif_available", lambda: False)
    fresh = tmp_path / "fresh.heic"
    fresh.write_bytes(data)
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if k != "HEIF"})
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if k != "HEIF"])
    result = run("down", str(fresh), "--scale", "2", "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 1 and "resizer[heif]" in result.stderr and "fresh.heic" in result.stderr
    png = tmp_path / "x.png"
    Image.fromarray(synthetic_photo(24, 32)).save(png)
    out = run("down", str(png), "--scale", "2", "-o", str(tmp_path / "o.heic"))
    assert out.exit_code == 1 and "resizer[heif]" in out.stderr and not (tmp_path / "o.heic").exists()


def test_heif_pixels_are_close(heic_photo) -> None:
    picture = load_picture(heic_photo)
    assert picture.metadata.source_format == "HEIF"
    error = np.abs(picture.pixels.astype(int) - synthetic_photo(96, 128).astype(int)).mean()
    assert error < 8


# --------------------------------------------------------------------------- animations


def _animation(path, fmt: str, frames: int = 4, size=(64, 48), durations=(40, 80, 120, 160), loop=3):
    images = [Image.fromarray(synthetic_photo(size[1], size[0], seed=i)) for i in range(frames)]
    params = {"save_all": True, "append_images": images[1:], "duration": list(durations[:frames]), "loop": loop}
    images[0].save(path, fmt, **params)
    return path


@pytest.mark.parametrize("suffix,fmt", [("gif", "GIF"), ("webp", "WEBP"), ("png", "PNG")])
def test_animations_keep_every_frame_with_durations_and_loop(tmp_path, suffix, fmt) -> None:
    src = _animation(tmp_path / f"anim.{suffix}", fmt)
    out = tmp_path / f"small.{suffix}"
    result = run("down", str(src), "--scale", "2", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "only the first" not in result.stderr
    with Image.open(out) as im:
        assert im.n_frames == 4 and im.size == (32, 24)
        assert im.info.get("loop") == 3
        durations = []
        for index in range(im.n_frames):
            im.seek(index)
            im.load()  # WebP gives a frame's duration once it is decoded
            durations.append(im.info.get("duration"))
    assert durations == [40, 80, 120, 160]


def test_frames_are_resized_each_from_its_own_frame(tmp_path) -> None:
    src = _animation(tmp_path / "anim.webp", "WEBP")
    out = tmp_path / "o.webp"
    assert run("down", str(src), "--scale", "2", "--lossless", "-o", str(out)).exit_code == 0
    with Image.open(src) as original, Image.open(out) as small:
        for index in (0, 3):
            original.seek(index)
            small.seek(index)
            expected = np.asarray(original.convert("RGBA").resize((32, 24), Image.Resampling.LANCZOS)).astype(int)
            assert np.abs(np.asarray(small.convert("RGBA")).astype(int) - expected).mean() < 3


@pytest.mark.parametrize("still", ["still.jpg", "still.png"])  # GIF -> PNG stays a still PNG, as before
def test_a_still_output_of_an_animation_is_its_first_frame_with_a_warning(tmp_path, still) -> None:
    src = _animation(tmp_path / "anim.gif", "GIF")
    result = run("down", str(src), "--scale", "2", "-o", str(tmp_path / still))
    assert result.exit_code == 0 and "only the first is used" in result.stderr
    assert getattr(Image.open(tmp_path / still), "n_frames", 1) == 1


def test_learned_methods_refuse_animations_with_one_line(tmp_path) -> None:
    src = _animation(tmp_path / "anim.gif", "GIF", size=(16, 12))
    result = run("up", str(src), "--scale", "2", "-m", "asdn", "-o", str(tmp_path / "big.gif"))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "anim.gif" in lines[0] and "-m lanczos" in lines[0]
    assert not (tmp_path / "big.gif").exists()
    classical = run("up", str(src), "--scale", "2", "-m", "bicubic", "-o", str(tmp_path / "ok.gif"))
    assert classical.exit_code == 0 and Image.open(tmp_path / "ok.gif").n_frames == 4
