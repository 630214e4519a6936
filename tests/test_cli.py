"""``resizer down`` / ``up`` end to end: sizes, files and folders, JSON, exit statuses, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.geometry import SizeSpec, output_size

from .conftest import synthetic_photo


def run(*args: str, input: bytes | None = None):
    """Invoke the CLI in-process; stdout and stderr kept apart."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    return result


def make_png(path: Path, size: tuple[int, int] = (128, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo(size[1], size[0])).save(path)
    return path


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("size", "direction", "spec", "expected"),
    [
        ((128, 96), "down", SizeSpec(scale=4), (32, 24)),
        ((101, 51), "down", SizeSpec(scale=2), (51, 26)),  # halves round up
        ((3, 3), "down", SizeSpec(scale=100), (1, 1)),  # never below one pixel
        ((100, 50), "up", SizeSpec(scale=2.7), (270, 135)),
        ((33, 17), "up", SizeSpec(scale=1.5), (50, 26)),
        ((400, 300), "down", SizeSpec(width=100), (100, 75)),
        ((400, 300), "up", SizeSpec(height=600), (800, 600)),
    ],
)
def test_output_size(size, direction, spec, expected) -> None:
    assert output_size(size[0], size[1], direction, spec)[0] == expected


def test_down_writes_a_quarter_size_file_next_to_the_input(tmp_path: Path) -> None:
    src = make_png(tmp_path / "photo.png")
    result = run("down", str(src), "--scale", "4")
    assert result.exit_code == 0, result.output
    out = tmp_path / "photo_down4.png"
    assert size_of(out) == (32, 24)
    assert size_of(src) == (128, 96)  # input untouched


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic", "lanczos", "box"])
def test_every_classical_method_from_the_cli(tmp_path: Path, method: str) -> None:
    src = make_png(tmp_path / "a.png")
    out = tmp_path / f"{method}.png"
    result = run("up", str(src), "--scale", "1.5", "--method", method, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert size_of(out) == (192, 144)


def test_width_keeps_aspect_and_down_refuses_to_enlarge(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    assert run("down", str(src), "--width", "64", "-o", str(tmp_path / "w.png")).exit_code == 0
    assert size_of(tmp_path / "w.png") == (64, 48)
    result = run("down", str(src), "--width", "256", "-o", str(tmp_path / "big.png"))
    assert result.exit_code == 2  # a usage error: the direction contradicts the size asked for
    assert "larger than the input" in result.stderr and "resizer up" in result.stderr
    assert not (tmp_path / "big.png").exists()


# --------------------------------------------------------------------------- usage errors (exit 2)


@pytest.mark.parametrize("scale", ["0", "-2", "nan", "inf", "abc"])
def test_bad_scale_is_a_usage_error(tmp_path: Path, scale: str) -> None:
    src = make_png(tmp_path / "a.png")
    result = run("down", str(src), "--scale", scale)
    assert result.exit_code == 2, result.output
    assert list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("args", [["--width", "0"], ["--height", "-3"], [], ["--scale", "2", "--width", "10"],
                                  ["--scale", "2", "--method", "no-such-method"]])
def test_usage_errors_exit_2_and_write_nothing(tmp_path: Path, args: list[str]) -> None:
    src = make_png(tmp_path / "a.png")
    result = run("up", str(src), *args)
    assert result.exit_code == 2, result.output
    assert list(tmp_path.iterdir()) == [src]


def test_unknown_method_lists_the_available_ones(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    result = run("down", str(src), "--scale", "2", "--method", "bicubik")
    assert result.exit_code == 2
    assert "bicubik" in result.stderr and "lanczos" in result.stderr


# --------------------------------------------------------------------------- bad input (exit 1, no output)


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    good = make_png(tmp_path / "good.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    return {"truncated": truncated, "corrupt": corrupt, "empty": empty, "text": text,
            "missing": tmp_path / "missing.png"}


@pytest.mark.parametrize("case", ["truncated", "corrupt", "empty", "text", "missing"])
def test_bad_input_file_gets_one_clear_line_and_no_output(tmp_path: Path, case: str) -> None:
    bad = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    result = run("down", str(bad), "--scale", "2", "-o", str(out / "x.png"))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and bad.name in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    bad = _bad_inputs(tmp_path)
    good = tmp_path / "good.png"
    out = tmp_path / "out"
    result = run("down", str(good), str(bad["truncated"]), str(bad["empty"]), "--scale", "2", "-o", str(out), "--json")
    assert result.exit_code == 1
    records = json_lines(result.stdout)
    assert [r["status"] for r in records] == ["ok", "error", "error"]
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    for record in records[1:]:
        assert record["error"] and Path(record["input"]).name in record["error"]


def test_folder_without_images_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi")
    result = run("down", str(folder), "--scale", "2")
    assert result.exit_code == 1
    assert "no images" in result.stderr and "docs" in result.stderr


def test_image_above_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    result = run("down", str(src), "--scale", "2", "--max-pixels", "1000")
    assert result.exit_code == 1
    assert "a.png" in result.stderr and "limit" in result.stderr
    assert not (tmp_path / "a_down2.png").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_unreadable_file_and_unwritable_folder(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    src.chmod(0)
    try:
        result = run("down", str(src), "--scale", "2", "-o", str(tmp_path / "o.png"))
        assert result.exit_code == 1 and "a.png" in result.stderr
    finally:
        src.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run("down", str(src), "--scale", "2", "-o", str(locked / "o.png"))
        assert result.exit_code == 1 and "locked" in result.stderr
    finally:
        locked.chmod(0o700)


def test_unwritable_output_location(tmp_path: Path) -> None:
    """A path under a regular file can never be written, even by root."""
    src = make_png(tmp_path / "a.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = run("down", str(src), "--scale", "2", "-o", str(blocker / "sub" / "o.png"))
    assert result.exit_code == 1
    assert "blocker" in result.stderr and "Traceback" not in result.stderr


def test_output_equal_to_input_is_refused_without_overwrite(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    before = src.read_bytes()
    result = run("down", str(src), "--scale", "2", "-o", str(src))
    assert result.exit_code == 1 and "input" in result.stderr
    assert src.read_bytes() == before
    result = run("down", str(src), "--scale", "2", "-o", str(src), "--overwrite")
    assert result.exit_code == 0
    assert size_of(src) == (64, 48)


def test_existing_output_is_never_replaced_silently(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    result = run("down", str(src), "--scale", "2", "-o", str(out))
    assert result.exit_code == 1 and "exists" in result.stderr
    assert out.read_bytes() == b"keep me"
    result = run("down", str(src), "--scale", "2", "-o", str(out), "--skip-existing", "--json")
    assert result.exit_code == 0 and json_lines(result.stdout)[0]["status"] == "skipped"
    assert out.read_bytes() == b"keep me"
    assert run("down", str(src), "--scale", "2", "-o", str(out), "--overwrite").exit_code == 0
    assert size_of(out) == (64, 48)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    result = run("down", str(src), "--scale", "0", "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr


# --------------------------------------------------------------------------- folders and several inputs


def test_folder_tree_is_mirrored_and_non_images_ignored(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    make_png(src / "a.png")
    make_png(src / "trip" / "b.png", (64, 64))
    (src / "trip" / "deep").mkdir()
    Image.fromarray(synthetic_photo(40, 60)).save(src / "trip" / "deep" / "c.jpg")
    (src / "trip" / "notes.txt").write_text("skip me")
    out = tmp_path / "web"
    result = run("down", str(src), "--scale", "2", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert produced == ["a.png", "trip/b.png", "trip/deep/c.jpg"]
    assert size_of(out / "trip" / "b.png") == (32, 32)
    records = json_lines(result.stdout)
    assert len(records) == 3
    # no progress bar when stderr is not a terminal: only the end-of-batch summary (issue 17)
    assert re.fullmatch(r"resizer: 3 written, 0 skipped, 0 failed in \d+\.\d s\n", result.stderr), result.stderr
    for record in records:
        assert {"input", "output", "status", "input_size", "output_size", "method", "seconds"} <= set(record)
        assert record["status"] == "ok" and record["method"] == "lanczos"


def test_folder_without_o_goes_to_a_sibling_folder(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    make_png(src / "a.png")
    assert run("down", str(src), "--scale", "2").exit_code == 0
    assert size_of(tmp_path / "photos_down2" / "a.png") == (64, 48)
    # a second run finds no new inputs in the output and refuses to overwrite
    result = run("down", str(src), "--scale", "2")
    assert result.exit_code == 1 and "exists" in result.stderr


def test_output_folder_inside_the_input_folder_is_not_reprocessed(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    make_png(src / "a.png")
    out = src / "small"
    assert run("down", str(src), "--scale", "2", "-o", str(out)).exit_code == 0
    result = run("down", str(src), "--scale", "2", "-o", str(out), "--overwrite", "--json")
    assert [Path(r["input"]).name for r in json_lines(result.stdout)] == ["a.png"]


def test_format_and_quality(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    out = tmp_path / "out"
    for quality in ("30", "95"):
        target = out / quality
        assert run("down", str(src), "--scale", "2", "-o", str(target) + "/", "--format", "jpeg", "--quality", quality).exit_code == 0
    low, high = (out / "30" / "a.jpg"), (out / "95" / "a.jpg")
    with Image.open(low) as im:
        assert im.format == "JPEG" and im.size == (64, 48)
    assert low.stat().st_size < high.stat().st_size


def test_several_inputs_need_a_folder_not_a_file(tmp_path: Path) -> None:
    a, b = make_png(tmp_path / "a.png"), make_png(tmp_path / "b.png")
    existing = tmp_path / "file.png"
    existing.write_bytes(b"x")
    result = run("down", str(a), str(b), "--scale", "2", "-o", str(existing))
    assert result.exit_code == 2


# --------------------------------------------------------------------------- stdin / stdout, python -m


def test_stdin_to_stdout_through_python_m(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    proc = subprocess.run([sys.executable, "-m", "resizer", "up", "-", "--scale", "2", "-o", "-"],
                          input=src.read_bytes(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "from-stdout.png"
    out.write_bytes(proc.stdout)
    assert size_of(out) == (256, 192)


def test_stdin_garbage_is_a_clear_error() -> None:
    result = run("down", "-", "--scale", "2", "-o", "-", input=b"hello")
    assert result.exit_code == 1
    assert "stdin" in result.stderr


def test_json_line_for_one_file(tmp_path: Path) -> None:
    src = make_png(tmp_path / "a.png")
    result = run("up", str(src), "--scale", "2", "--json", "-o", str(tmp_path / "b.png"))
    (record,) = json_lines(result.stdout)
    assert record["input_size"] == [128, 96] and record["output_size"] == [256, 192]
    assert record["status"] == "ok" and record["output"] == str(tmp_path / "b.png")
    assert record["seconds"] >= 0


def test_pixels_match_pillow(tmp_path: Path) -> None:
    """The classical path is Pillow's resize, not a re-implementation."""
    src = make_png(tmp_path / "a.png")
    out = tmp_path / "b.png"
    assert run("down", str(src), "--scale", "3", "--method", "bicubic", "-o", str(out)).exit_code == 0
    with Image.open(src) as im:
        expected = np.asarray(im.resize((43, 32), Image.Resampling.BICUBIC))
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), expected)


def test_methods_lists_classical_and_matlab(tmp_path: Path) -> None:
    result = run("methods", "--json")
    names = {json.loads(line)["name"] for line in result.stdout.splitlines()}
    assert {"nearest", "bilinear", "bicubic", "lanczos", "box", "matlab-bicubic"} <= names


# --------------------------------------------------------------------------- progress bar on a terminal


def _run_on_terminal(args: list[str], env_extra: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (status, what the terminal showed)."""
    import pty

    leader, follower = pty.openpty()
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    env.update({"COLUMNS": "100", **(env_extra or {})})
    proc = subprocess.Popen([sys.executable, "-m", "resizer", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only_and_quiet_silences_it(tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(6):
        make_png(src / f"{i}.png", (64, 48))
    status, shown = _run_on_terminal(["down", str(src), "--scale", "2", "-o", str(tmp_path / "a")])
    assert status == 0
    assert "resizing down" in shown and "6/6" in shown
    assert "\x1b[" in shown  # styled by rich
    status, shown = _run_on_terminal(["down", str(src), "--scale", "2", "-o", str(tmp_path / "b"), "--quiet"])
    assert status == 0 and shown.strip() == ""
    status, shown = _run_on_terminal(["down", str(src), "--scale", "2", "-o", str(tmp_path / "c")], {"NO_COLOR": "1"})
    assert status == 0 and "6/6" in shown
    assert "\x1b[3" not in shown and "\x1b[9" not in shown  # no colour codes


def test_multi_frame_input_warns_and_uses_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100)
    out = tmp_path / "small.png"
    result = run("down", str(src), "--scale", "2", "-o", str(out), "--json")
    assert result.exit_code == 0
    assert "3 frames" in result.stderr and "first" in result.stderr
    assert json_lines(result.stdout)[0]["warnings"]
    with Image.open(out) as im:
        assert im.size == (20, 15)
        r, g, b = im.convert("RGB").getpixel((10, 7))
        assert r > 200 and g < 50 and b < 50  # the first (red) frame


def test_two_inputs_never_race_for_one_output(tmp_path: Path) -> None:
    first, second = make_png(tmp_path / "a" / "x.png"), make_png(tmp_path / "b" / "x.png", (64, 48))
    out = tmp_path / "out"
    result = run("down", str(first), str(second), "--scale", "2", "-o", str(out), "--json")
    assert result.exit_code == 1
    statuses = {Path(r["input"]).parent.name: r["status"] for r in json_lines(result.stdout)}
    assert statuses == {"a": "ok", "b": "error"}
    assert "also the output of" in result.stderr
    assert size_of(out / "x.png") == (64, 48)  # the first input's result, untouched


def test_console_script_works_from_any_folder(tmp_path: Path) -> None:
    """An editable install run outside the checkout imports ``resizer`` as a namespace package
    (setuptools maps ``resizer.weights`` to ``weights/``): the version and a paired thumbnail,
    which records the version, must not depend on ``resizer/__init__.py``."""
    from resizer._version import __version__

    script = Path(sys.executable).with_name("resizer")
    if not script.exists():
        pytest.skip("no resizer console script beside this interpreter")
    version = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"resizer {__version__}"
    Image.fromarray(synthetic_photo(40, 52)).save(tmp_path / "a.png")
    thumb = subprocess.run([str(script), "down", "a.png", "--scale", "2", "--method", "car", "-o", "t.png"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert thumb.returncode == 0, thumb.stderr
    from resizer.image_io import load_picture

    assert load_picture(tmp_path / "t.png").metadata.text["resizer:version"] == __version__
