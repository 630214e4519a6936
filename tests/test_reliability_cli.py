"""Issue 21, the command line: bounded output sizes, a closed standard output, library warnings,
``--json`` errors as JSON, and SIGTERM handled like Ctrl-C.

The console script's own behaviour (``resizer.cli.main``: signals, warnings, standard output,
Click's parse errors) is tested in a subprocess; the rest in-process with typer's CliRunner.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.pipeline import BatchSettings

REPO = Path(__file__).resolve().parents[1]
LIMIT = 200_000_000  # the default of --max-output-pixels (and of --max-pixels)
PER_FILE_LIMIT = "max_output_pixels" in {f.name for f in dataclasses.fields(BatchSettings)}


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def resizer(*args: str, stdout=subprocess.PIPE, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real console script, ``python -m resizer``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "resizer", *args], stdout=stdout, stderr=subprocess.PIPE,
                          env=env, cwd=REPO, timeout=timeout)


def make_png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    Image.new("RGB", size, (30, 160, 90)).save(path)
    return path


def one_error_line(stderr: str, *needles: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("resizer: error: "), stderr
    assert "Traceback" not in stderr and "site-packages" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], stderr
    return lines[0]


# --------------------------------------------------------------------------- output sizes


@pytest.mark.parametrize(("direction", "option", "value"), [
    ("up", "--scale", "1e308"),        # 64 * 1e308 is infinite
    ("up", "--scale", "1e200"),        # finite, but no 1x1 image fits (a 'down --scale' below 1 is refused
                                       # as such since issue 17: tests/test_web_geometry.py)
    ("up", "--width", str(10 ** 23)),
    ("down", "--height", str(LIMIT + 1)),
])
def test_sizes_no_input_could_have_are_usage_errors_before_any_file_is_read(tmp_path, direction, option, value) -> None:
    src = make_png(tmp_path / "x.png")
    out = tmp_path / "out.png"
    result = run(direction, str(src), option, value, "-m", "bicubic", "-o", str(out))
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr, option, "--max-output-pixels")
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-2"])
def test_scales_that_are_no_size_at_all_are_one_line_usage_errors(tmp_path, value) -> None:
    result = run("up", str(make_png(tmp_path / "x.png")), "--scale", value, "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr, "--scale")


def test_the_output_limit_follows_max_output_pixels(tmp_path) -> None:
    src = make_png(tmp_path / "x.png")
    result = run("up", str(src), "--width", "5000", "--max-output-pixels", "4000", "-m", "bicubic",
                 "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr, "--width 5000", "4000")
    assert run("up", str(src), "--width", "5000", "--max-output-pixels", "0").exit_code == 2  # min 1
    ok = run("up", str(src), "--scale", "2", "--max-output-pixels", "12288", "-m", "bicubic",
             "-o", str(tmp_path / "ok.png"))  # exactly 128x96
    assert ok.exit_code == 0, ok.output


@pytest.mark.skipif(not PER_FILE_LIMIT, reason="needs BatchSettings.max_output_pixels in resizer.pipeline")
@pytest.mark.parametrize("args", [
    ["up", "--scale", "1000"],
    ["up", "--width", "100000"],
    ["up", "--height", "100000"],  # was 'down --scale 0.001', a usage error before any file since issue 17
])
def test_each_files_output_size_is_checked_before_it_is_resized(tmp_path, args) -> None:
    src = make_png(tmp_path / "x.png")
    out = tmp_path / "out.png"
    started = time.monotonic()
    result = run(args[0], str(src), *args[1:], "-m", "bicubic", "-o", str(out))
    assert time.monotonic() - started < 10  # refused, not attempted
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr, "x.png", "x")
    assert not out.exists()


# --------------------------------------------------------------------------- closed standard output


def _with_closed_stdout(*args: str) -> subprocess.CompletedProcess:
    """Run with a standard output whose reader is gone before the first byte is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return resizer(*args, stdout=write_end)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_closed_standard_output_fails_quietly(tmp_path, extra) -> None:
    src = make_png(tmp_path / "x.png", (300, 200))
    result = _with_closed_stdout("down", str(src), "--scale", "2", "-o", "-", *extra)
    stderr = result.stderr.decode()
    assert result.returncode != 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert len(stderr.splitlines()) <= 1, stderr


def test_json_lines_into_a_closed_standard_output_fail_quietly(tmp_path) -> None:
    src = make_png(tmp_path / "x.png")
    result = _with_closed_stdout("down", str(src), "--scale", "2", "-o", str(tmp_path / "o.png"), "--json")
    stderr = result.stderr.decode()
    assert result.returncode != 0 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_a_reader_that_leaves_early_is_no_success(tmp_path) -> None:
    """``-o - | head -c 100``: the image is larger than a pipe holds, so the loss must show."""
    src = tmp_path / "noise.png"
    Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3)).save(src)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}  # as in many containers
    proc = subprocess.Popen([sys.executable, "-m", "resizer", "down", str(src), "--scale", "1", "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


# --------------------------------------------------------------------------- library warnings


def _jpeg_with_corrupt_exif(path: Path) -> Path:
    """A JPEG whose EXIF tag points past its end: Pillow warns 'Tag data larger than file'."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 100, 1000) + struct.pack("<I", 0)
    Image.new("RGB", (32, 24), (200, 10, 10)).save(path, exif=b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd)
    return path


def test_library_warnings_stay_out_of_the_output_unless_debug(tmp_path) -> None:
    src = _jpeg_with_corrupt_exif(tmp_path / "odd.jpg")
    plain = resizer("down", str(src), "--scale", "2", "-o", str(tmp_path / "a.png"))
    stderr = plain.stderr.decode()
    assert plain.returncode == 0, stderr
    assert "UserWarning" not in stderr and "site-packages" not in stderr and "Warning" not in stderr, stderr
    debug = resizer("down", str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "--debug")
    assert debug.returncode == 0 and "UserWarning" in debug.stderr.decode(), debug.stderr


def test_libtiffs_own_messages_stay_out_of_the_output_unless_debug(tmp_path) -> None:
    """libtiff (inside Pillow) prints 'Using code not yet in table.' from C for a corrupt LZW strip."""
    src = tmp_path / "bad.tif"
    Image.frombytes("RGB", (40, 30), bytes(range(256)) * 14 + bytes(16)).save(src, compression="tiff_lzw")
    data = bytearray(src.read_bytes())
    data[400:600] = b"\xff" * 200
    src.write_bytes(bytes(data))
    plain = resizer("down", str(src), "--scale", "2", "-o", str(tmp_path / "a.png"))
    assert plain.returncode == 1
    one_error_line(plain.stderr.decode(), "bad.tif")
    debug = resizer("down", str(src), "--scale", "2", "-o", str(tmp_path / "b.png"), "--debug")
    assert "bad.tif" in debug.stderr.decode()


_LOGGING_DRIVER = r"""
import logging, sys
import resizer.cli.resize_cmd as resize_cmd
def run_batch(*args, **kwargs):
    logging.getLogger("tifffile").warning("<TiffTag.fromfile> raised TiffFileError('invalid value offset 0')")
    return []
resize_cmd.run_batch = run_batch
from resizer.cli import main
sys.argv = ["resizer", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("debug", "shown"), [([], False), (["--debug"], True)])
def test_library_log_messages_stay_out_of_the_output_unless_debug(tmp_path, debug, shown) -> None:
    src = make_png(tmp_path / "x.png")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", _LOGGING_DRIVER, "down", str(src), "--scale", "2", *debug],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ("TiffFileError" in result.stderr) is shown, result.stderr


# --------------------------------------------------------------------------- --json errors


def _json_objects(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(("args", "needle"), [
    (["down", "{src}", "--width", "10^23", "--json"], "--width"),   # not an integer
    (["down", "{src}", "--bogus", "--json"], "--bogus"),             # no such option
    (["down", "--json", "{src}", "--quality", "500"], "--quality"),  # out of range
    (["bogus", "--json"], "bogus"),                                  # no such command
])
def test_json_runs_report_parse_errors_as_one_json_object(tmp_path, args, needle) -> None:
    src = make_png(tmp_path / "x.png")
    result = resizer(*[a.replace("{src}", str(src)) for a in args])
    assert result.returncode == 2, result.stderr
    objects = _json_objects(result.stdout.decode())
    assert len(objects) == 1, result.stdout
    assert objects[0]["status"] == "error" and objects[0]["usage_error"] is True and needle in objects[0]["error"]
    one_error_line(result.stderr.decode(), needle)


def test_plain_runs_keep_clicks_usage_box(tmp_path) -> None:
    result = resizer("down", str(make_png(tmp_path / "x.png")), "--bogus")
    assert result.returncode == 2 and result.stdout == b""
    assert "No such option" in result.stderr.decode() and "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize("args", [
    ["down", "{src}"],                              # no size (the API's UsageError)
    ["up", "{src}", "--scale", "1e308"],            # no output could be that large
    ["down", "{src}", "--scale", "2", "--format", "../x", "-o", "{out}/"],
])
def test_json_runs_report_api_usage_errors_as_one_json_object(tmp_path, args) -> None:
    src = make_png(tmp_path / "x.png")
    args = [a.replace("{src}", str(src)).replace("{out}", str(tmp_path / "out")) for a in args]
    result = run(*args, "--json")
    assert result.exit_code == 2, result.output
    objects = _json_objects(result.stdout)
    assert len(objects) == 1 and objects[0]["status"] == "error" and objects[0]["usage_error"] is True, result.stdout
    one_error_line(result.stderr)


def test_run_api_usage_errors_are_json_too(tmp_path) -> None:
    result = run("eval", "set5", "--scale", "two", "--json")
    assert result.exit_code == 2, result.output
    objects = _json_objects(result.stdout)
    assert len(objects) == 1 and objects[0]["usage_error"] is True and "--scale" in objects[0]["error"]


def test_usage_errors_without_json_print_nothing_on_stdout(tmp_path) -> None:
    result = run("down", str(make_png(tmp_path / "x.png")))
    assert result.exit_code == 2 and result.stdout == ""


# --------------------------------------------------------------------------- SIGTERM


_STALL = r"""
import os, sys, time
from pathlib import Path
import resizer.cli.resize_cmd as resize_cmd
import resizer.methods as methods
def stall(*args, **kwargs):
    Path(os.environ["READY"]).touch()
    time.sleep(30)
    return []
resize_cmd.run_batch = stall
methods.list_methods = stall
from resizer.cli import main
sys.argv = ["resizer", *sys.argv[1:]]
main()
"""


def _stopped(tmp_path: Path, args: list[str], signum: int) -> tuple[int, str]:
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(REPO), "READY": str(ready)}
    # A shell's background job inherits an ignored SIGINT; the user's Ctrl-C is not ignored, so undo that.
    proc = subprocess.Popen([sys.executable, "-c", _STALL, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env=env, cwd=REPO, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), proc.communicate()
    proc.send_signal(signum)
    code = proc.wait(timeout=20)
    return code, proc.stderr.read()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize(("signum", "code", "line"), [
    (signal.SIGTERM, 143, "resizer: terminated"),
    (signal.SIGINT, 130, "resizer: interrupted"),
])
def test_sigterm_stops_a_batch_like_ctrl_c_with_one_line(tmp_path, signum, code, line) -> None:
    src = make_png(tmp_path / "x.png")
    got, stderr = _stopped(tmp_path, ["down", str(src), "--scale", "2"], signum)
    assert got == code, stderr
    assert stderr.strip() == line, stderr


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_during_any_command_is_one_line_and_exit_143(tmp_path) -> None:
    got, stderr = _stopped(tmp_path, ["methods"], signal.SIGTERM)
    assert got == 143 and stderr.strip() == "resizer: terminated", stderr


@pytest.mark.skipif(not hasattr(signal, "SIGHUP") or os.name != "posix", reason="POSIX signals")
def test_an_ignored_sighup_stays_ignored_under_nohup() -> None:
    code = ("import importlib, signal; app = importlib.import_module('resizer.cli.app'); app.install_signal_handlers(); "
            "print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert result.stdout.split() == ["True", "True"], result.stderr
