"""Issue 17: ``--linear`` resamples in linear light (sRGB decoded, Pillow's filter in float32, encoded again)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import resizer
from resizer.cli import app
from resizer.image_io import load_picture

from .conftest import synthetic_photo

# sRGB encoding of linear 0.5: a black/white checkerboard averaged in light looks like this grey
_HALF_LIGHT_8 = round((1.055 * 0.5 ** (1 / 2.4) - 0.055) * 255)  # 188


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _checkerboard(size: int = 64, peak: int = 255, dtype=np.uint8) -> np.ndarray:
    board = np.zeros((size, size, 3), dtype)
    board[::2, ::2] = peak
    board[1::2, 1::2] = peak
    return board


def test_a_checkerboard_halves_to_its_brightness_in_linear_light(tmp_path) -> None:
    source = tmp_path / "board.png"
    Image.fromarray(_checkerboard()).save(source)
    for method in ("box", "bilinear", "lanczos"):
        assert run("down", str(source), "--scale", "2", "-m", method, "-o", str(tmp_path / f"{method}.png")).exit_code == 0
        assert run("down", str(source), "--scale", "2", "-m", method, "--linear",
                   "-o", str(tmp_path / f"{method}-linear.png")).exit_code == 0
        gamma = load_picture(tmp_path / f"{method}.png").pixels.astype(float)
        light = load_picture(tmp_path / f"{method}-linear.png").pixels.astype(float)
        assert abs(gamma.mean() - 127.5) < 1.5, method  # averaging encoded values: too dark
        assert abs(light.mean() - _HALF_LIGHT_8) < 1.0, method


def test_sixteen_bit_pictures_keep_their_depth_in_linear_light() -> None:
    board = _checkerboard(32, 65535, np.uint16)
    out = resizer.resize(board, scale=0.5, method="box", linear=True)
    expected = round((1.055 * 0.5 ** (1 / 2.4) - 0.055) * 65535)
    assert out.dtype == np.uint16 and out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_every_sample_value_survives_the_round_trip_through_linear_light() -> None:
    """Nearest picks samples without averaging: decode then encode must give every 8-bit value back."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(2, axis=0)
    out = resizer.resize(ramp, scale=2, method="nearest", linear=True)
    assert np.array_equal(out, ramp.repeat(2, axis=0).repeat(2, axis=1))
    photo = synthetic_photo(48, 64)
    assert np.array_equal(resizer.resize(photo, scale=0.5, method="nearest", linear=True),
                          resizer.resize(photo, scale=0.5, method="nearest"))


def test_transparent_colour_does_not_bleed_and_alpha_is_resampled_as_stored() -> None:
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = (255, 0, 0, 0)  # invisible red
    rgba[:, 16:] = (255, 255, 255, 255)
    out = resizer.resize(rgba, scale=0.5, method="bilinear", linear=True)
    visible = out[:, :, 3] > 0
    assert visible.any()
    assert (out[visible][:, :3] >= 250).all()  # no red came through from the transparent half
    plain = resizer.resize(rgba, scale=0.5, method="bilinear")
    assert np.abs(out[:, :, 3].astype(int) - plain[:, :, 3].astype(int)).max() <= 1


def test_linear_matches_between_the_cli_and_the_api(tmp_path) -> None:
    source = tmp_path / "photo.png"
    photo = synthetic_photo(60, 80)
    Image.fromarray(photo).save(source)
    assert run("down", str(source), "--width", "30", "-m", "lanczos", "--linear", "-o", str(tmp_path / "o.png")).exit_code == 0
    written = load_picture(tmp_path / "o.png").pixels
    assert np.array_equal(written, resizer.resize(photo, width=30, method="lanczos", linear=True))
    assert not np.array_equal(written, resizer.resize(photo, width=30, method="lanczos"))


@pytest.mark.parametrize("args", [["up", "--scale", "2"], ["up", "--scale", "2", "-m", "matlab-bicubic"],
                                  ["down", "--scale", "2", "-m", "car"]])
def test_linear_with_a_method_that_cannot_honour_it_is_a_usage_error(tmp_path, args) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(32, 32)).save(source)
    result = run(*args[:1], str(source), *args[1:], "--linear", "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 2, result.output
    assert "--linear works with the classical filters" in result.output
    assert not (tmp_path / "out.png").exists()
