"""Issue 17: large JPEG reductions decode in the DCT domain (shrink-on-load) and stay close to the exact path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.geometry import SizeSpec
from resizer.image_io import load_picture
from resizer.resizing import resize_picture
from resizer.shrink_on_load import shrink_hint

from .conftest import synthetic_photo


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def big_jpeg(path: Path, size: tuple[int, int] = (960, 720), orientation: int | None = None) -> Path:
    photo = Image.fromarray(synthetic_photo(120, 160)).resize(size, Image.Resampling.LANCZOS)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    photo.save(path, quality=92, exif=exif.tobytes())
    return path


def luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    weights = np.array([0.299, 0.587, 0.114])
    mse = float(np.mean(((a.astype(float) - b.astype(float)) @ weights) ** 2))
    return 10 * np.log10(255 ** 2 / mse) if mse else float("inf")


def test_a_big_reduction_decodes_fewer_pixels_and_stays_close(tmp_path) -> None:
    src = big_jpeg(tmp_path / "photo.jpg")
    spec = SizeSpec(scale=8)
    fast = load_picture(src, shrink=shrink_hint("down", spec, "lanczos"))
    assert fast.metadata.full_size == (960, 720) and fast.width < 960  # decoded at 1/2
    exact = load_picture(src)
    a, _ = resize_picture(exact, "down", spec)
    b, _ = resize_picture(fast, "down", spec)
    assert (a.width, a.height) == (b.width, b.height) == (120, 90)  # the size planned from the file's size
    assert luma_psnr(a.pixels, b.pixels) > 40
    assert b.metadata.full_size is None  # the thumbnail is its own full size


@pytest.mark.parametrize("method,scale,fmt", [("nearest", 8, "jpg"), ("lanczos", 2, "jpg"), ("lanczos", 8, "png")])
def test_no_shrink_where_it_would_show(tmp_path, method, scale, fmt) -> None:
    src = tmp_path / f"photo.{fmt}"
    big_jpeg(tmp_path / "photo.jpg")
    if fmt == "png":
        Image.open(tmp_path / "photo.jpg").save(src)
    picture = load_picture(src, shrink=shrink_hint("down", SizeSpec(scale=scale), method))
    assert picture.metadata.full_size is None and picture.width == 960
    assert shrink_hint("up", SizeSpec(scale=8), "lanczos") is None


def test_the_cli_reports_the_files_size_and_can_turn_it_off(tmp_path) -> None:
    src = big_jpeg(tmp_path / "photo.jpg")
    fast = run("down", str(src), "--fit", "100x100", "-o", str(tmp_path / "fast.png"), "--json")
    exact = run("down", str(src), "--fit", "100x100", "-o", str(tmp_path / "exact.png"), "--json", "--no-shrink-on-load")
    assert fast.exit_code == 0 and exact.exit_code == 0, fast.output + exact.output
    for result in (fast, exact):
        record = json.loads(result.stdout)
        assert record["input_size"] == [960, 720] and record["output_size"] == [100, 75]
    a = np.asarray(Image.open(tmp_path / "exact.png"))
    b = np.asarray(Image.open(tmp_path / "fast.png"))
    with Image.open(src) as im:
        reference = np.asarray(im.convert("RGB").resize((100, 75), Image.Resampling.LANCZOS))
    assert np.array_equal(a, reference)  # --no-shrink-on-load: exactly Pillow on every pixel
    assert not np.array_equal(a, b) and luma_psnr(a, b) > 40


def test_an_exif_rotated_jpeg_shrinks_to_the_upright_size(tmp_path) -> None:
    src = big_jpeg(tmp_path / "turned.jpg", (960, 720), orientation=6)  # stored landscape, shown portrait
    result = run("down", str(src), "--fit", "90x", "-o", str(tmp_path / "o.png"), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["input_size"] == [720, 960] and record["output_size"] == [90, 120]
    assert Image.open(tmp_path / "o.png").size == (90, 120)


def test_other_formats_reduce_in_steps_only_where_it_is_large(tmp_path) -> None:
    """A PNG reduced x16 goes through Pillow's reducing_gap (STEP_GAP); x4 and --no-shrink-on-load stay exact."""
    from resizer.shrink_on_load import STEP_GAP

    source = tmp_path / "big.png"
    photo = Image.fromarray(synthetic_photo(60, 80)).resize((1280, 960), Image.Resampling.LANCZOS)
    photo.save(source)
    for scale, gap in (("16", STEP_GAP), ("4", None)):
        size = (1280 // int(scale), 960 // int(scale))
        stepped = np.asarray(photo.resize(size, Image.Resampling.LANCZOS, reducing_gap=STEP_GAP))
        exact = np.asarray(photo.resize(size, Image.Resampling.LANCZOS))
        assert run("down", str(source), "--scale", scale, "-m", "lanczos", "-o", str(tmp_path / f"s{scale}.png")).exit_code == 0
        assert run("down", str(source), "--scale", scale, "-m", "lanczos", "--no-shrink-on-load",
                   "-o", str(tmp_path / f"e{scale}.png")).exit_code == 0
        default, plain = (load_picture(tmp_path / f"{kind}{scale}.png").pixels for kind in "se")
        assert np.array_equal(plain, exact)
        assert np.array_equal(default, stepped if gap else exact)
        if gap:
            assert not np.array_equal(stepped, exact)  # the step did something
            assert luma_psnr(default, exact) > 35
