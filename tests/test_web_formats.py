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
