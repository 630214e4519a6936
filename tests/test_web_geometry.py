"""Issue 17: scale semantics that cannot be misread, and box geometry (--fit, --fill, --gravity, --only-shrink)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.framing import attention_origin, crop_picture
from resizer.geometry import SizeSpec, parse_box, plan_size
from resizer.image_io import Picture, load_picture
from resizer.resizing import resize_picture

from .conftest import synthetic_photo


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def make(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo(size[1], size[0], seed)).save(path)
    return path


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------- scale semantics


@pytest.mark.parametrize("direction,scale,hint", [("down", "0.25", "--scale 4"), ("up", "0.5", "down --scale 2")])
def test_a_scale_below_one_is_a_usage_error_with_a_hint(tmp_path, direction, scale, hint) -> None:
    src = make(tmp_path / "x.png", (64, 48))
    result = run(direction, str(src), "--scale", scale, "-m", "bicubic", "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2, result.output
    assert hint in result.stderr and "below 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("scale", ["1e-9", "5e-324"])
def test_tiny_down_scales_are_refused_as_below_one(tmp_path, scale) -> None:
    result = run("down", str(make(tmp_path / "x.png", (8, 8))), "--scale", scale, "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2 and "below 1" in result.stderr


def test_a_percentage_is_of_the_input_size(tmp_path) -> None:
    src = make(tmp_path / "x.png", (64, 48))
    down = run("down", str(src), "--scale", "25%", "-o", str(tmp_path / "d.png"))
    up = run("up", str(src), "--scale", "250%", "-m", "bicubic", "-o", str(tmp_path / "u.png"))
    assert down.exit_code == 0 and up.exit_code == 0, down.output + up.output
    assert Image.open(tmp_path / "d.png").size == (16, 12)
    assert Image.open(tmp_path / "u.png").size == (160, 120)


@pytest.mark.parametrize("direction,percent", [("down", "250%"), ("up", "25%")])
def test_a_percentage_against_the_direction_is_refused(tmp_path, direction, percent) -> None:
    src = make(tmp_path / "x.png", (64, 48))
    result = run(direction, str(src), "--scale", percent, "-m", "bicubic", "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2 and "use 'resizer" in result.stderr
    assert run("down", str(src), "--scale", "abc%").exit_code == 2


def test_scale_factors_of_one_or_more_are_unchanged(tmp_path) -> None:
    src = make(tmp_path / "x.png", (64, 48))
    assert run("down", str(src), "--scale", "4", "-o", str(tmp_path / "d.png")).exit_code == 0
    assert Image.open(tmp_path / "d.png").size == (16, 12)


# --------------------------------------------------------------------------- the geometry


def test_fit_sizes() -> None:
    fit = SizeSpec(fit=(320, 320))
    assert plan_size(1000, 500, "down", fit).size == (320, 160)
    assert plan_size(500, 1000, "down", fit).size == (160, 320)
    assert plan_size(1000, 500, "down", SizeSpec(fit=(320, None))).size == (320, 160)
    assert plan_size(1000, 500, "down", SizeSpec(fit=(None, 100))).size == (200, 100)
    kept = plan_size(200, 100, "down", fit)
    assert kept.keep and kept.size == (200, 100)
    up = plan_size(640, 360, "up", SizeSpec(fit=(1920, 1080)))
    assert up.size == (1920, 1080) and up.scale == pytest.approx(3.0)
    assert plan_size(4000, 3000, "up", SizeSpec(fit=(1920, 1080))).keep  # 'up' never shrinks
    assert parse_box("320x") == (320, None) and parse_box("x240") == (None, 240)


def test_fill_covers_then_crops_and_down_never_enlarges() -> None:
    plan = plan_size(1000, 500, "down", SizeSpec(fill=(320, 320)))
    assert plan.size == (640, 320) and plan.crop == (320, 320) and not plan.keep
    small = plan_size(400, 200, "down", SizeSpec(fill=(320, 320)))
    assert small.keep and small.crop == (320, 200)


@pytest.mark.parametrize("text", ["320", "x", "axb", "0x10", "-5x5"])
def test_a_bad_box_is_a_usage_error(tmp_path, text) -> None:
    src = make(tmp_path / "x.png", (64, 48))
    result = run("down", str(src), "--fit", text)
    assert result.exit_code == 2, result.output
    assert run("down", str(src), "--fill", "320x").exit_code == 2  # fill needs both sides
    assert run("down", str(src), "--fit", "32x32", "--width", "10").exit_code == 2
    assert run("down", str(src), "--fill", "32x32", "--gravity", "up").exit_code == 2


# --------------------------------------------------------------------------- through the CLI


def test_a_folder_of_mixed_sizes_and_orientations_fits_a_box_and_exits_0(tmp_path) -> None:
    folder = tmp_path / "photos"
    make(folder / "landscape.png", (400, 300))
    make(folder / "portrait.jpg", (150, 400))
    make(folder / "small.png", (100, 60))
    result = run("down", str(folder), "--fit", "160x160", "--format", "webp", "-o", str(tmp_path / "web"), "--json")
    assert result.exit_code == 0, result.output
    by_name = {Path(r["input"]).name: r for r in records(result.stdout)}
    assert by_name["landscape.png"]["output_size"] == [160, 120] and by_name["landscape.png"]["resized"] is True
    assert by_name["portrait.jpg"]["output_size"] == [60, 160]
    small = by_name["small.png"]
    assert small["status"] == "ok" and small["resized"] is False and small["output_size"] == [100, 60]
    written = Image.open(tmp_path / "web" / "small.webp")
    assert written.format == "WEBP" and written.size == (100, 60)  # still in the output format


def test_only_shrink_keeps_narrower_inputs(tmp_path) -> None:
    folder = tmp_path / "photos"
    make(folder / "wide.png", (400, 300))
    make(folder / "narrow.png", (250, 360))
    without = run("down", str(folder), "--width", "320", "-o", str(tmp_path / "a"))
    assert without.exit_code == 2 and "--only-shrink" in without.stderr
    result = run("down", str(folder), "--width", "320", "--only-shrink", "-o", str(tmp_path / "b"), "--json")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "b" / "narrow.png").size == (250, 360)
    assert Image.open(tmp_path / "b" / "wide.png").size == (320, 240)
    assert [r["resized"] for r in records(result.stdout)] == [False, True]
    assert run("up", str(folder), "--width", "320", "--only-shrink").exit_code == 2


def test_fill_gives_exactly_the_box(tmp_path) -> None:
    src = make(tmp_path / "x.png", (300, 200))
    for gravity in ("centre", "north-west", "south", "attention"):
        out = tmp_path / f"{gravity}.png"
        result = run("down", str(src), "--fill", "100x100", "--gravity", gravity, "-o", str(out))
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == (100, 100)


def test_gravity_places_the_crop(tmp_path) -> None:
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    picture = Picture(pixels)
    assert tuple(crop_picture(picture, (10, 10), "west").pixels[5, 5]) == (255, 0, 0)
    assert tuple(crop_picture(picture, (10, 10), "east").pixels[5, 5]) == (0, 0, 255)
    assert tuple(crop_picture(picture, (10, 10), "centre").pixels[5, 5]) == (0, 0, 0)


def test_attention_crops_around_the_salient_region() -> None:
    """A flat grey frame with one colourful, textured patch near its right edge: attention finds it."""
    rng = np.random.default_rng(1)
    pixels = np.full((200, 600, 3), 128, np.uint8)
    pixels[60:140, 470:550] = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    x, y = attention_origin(Picture(pixels), (200, 200))
    assert x <= 470 and x + 200 >= 550, x  # the whole patch is inside the crop
    assert x > 200  # and it is not the centre crop (x = 200)
    flat = Picture(np.full((200, 600, 3), 128, np.uint8))
    assert attention_origin(flat, (200, 200)) == (200, 0)  # nothing stands out: the centre


def test_attention_through_the_cli(tmp_path) -> None:
    rng = np.random.default_rng(2)
    pixels = np.full((120, 360, 3), 90, np.uint8)
    pixels[30:90, 10:70] = rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    out = tmp_path / "o.png"
    assert run("down", str(tmp_path / "x.png"), "--fill", "60x60", "--gravity", "attention", "-o", str(out)).exit_code == 0
    cropped = np.asarray(Image.open(out)).astype(float)
    noisy_columns = int((cropped.std(axis=(0, 2)) > 10).sum())
    assert noisy_columns >= 28  # the whole noisy patch (30 columns at this size) is in, not the flat middle


def test_the_api_takes_boxes_and_keeps_the_callers_picture() -> None:
    picture = Picture(synthetic_photo(60, 100))
    small, method = resize_picture(picture, "down", SizeSpec(fit=(50, 50)))
    assert (small.width, small.height) == (50, 30) and method.name == "lanczos"
    same, _ = resize_picture(picture, "down", SizeSpec(fit=(500, 500)))
    assert (same.width, same.height) == (100, 60) and same is not picture


def test_a_learned_up_fit_picks_its_scale_from_the_box(tmp_path, single_torch_thread) -> None:
    src = make(tmp_path / "x.png", (24, 16))
    out = tmp_path / "o.png"
    result = run("up", str(src), "--fit", "48x48", "-m", "asdn", "-o", str(out), "--json", "--tile", "0")
    assert result.exit_code == 0, result.output
    record = records(result.stdout)[0]
    assert record["method"] == "asdn" and record["output_size"] == [48, 32]
    assert load_picture(out).width == 48
