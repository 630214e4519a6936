"""Batch safety (issue 21): one file never kills a batch, concurrent runs never replace each
other's outputs, only regular visible files are images, signals leave no temporary file, odd
paths and formats are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer import files, pipeline
from resizer.cli import app

from .conftest import REPO, synthetic_photo


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def make_png(path: Path, size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo(size[1], size[0])).save(path)
    return path


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def error_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` but the end-of-batch summary ("3 written, 0 skipped, 1 failed in 0.1 s")."""
    return [line for line in stderr.splitlines() if line.strip() and " written, " not in line]


# --------------------------------------------------------------------------- a file cannot kill the batch


@pytest.mark.parametrize("exc", [OverflowError("int too big to convert"), NotImplementedError("Unimplemented pixel format"),
                                 MemoryError(), ValueError("two\nlines"), OSError(5, "Input/output error")])
def test_any_exception_of_one_file_is_its_error_and_the_batch_goes_on(tmp_path, monkeypatch, exc) -> None:
    folder = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        make_png(folder / name)
    load = pipeline.load_picture

    def flaky(source, **options):
        if str(source).endswith("b.png"):
            raise exc
        return load(source, **options)

    monkeypatch.setattr(pipeline, "load_picture", flaky)
    result = run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "out"), "--json", "-j", "1")
    assert result.exit_code == 1
    assert [r["status"] for r in records(result.stdout)] == ["ok", "error", "ok"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "b.png" in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_an_encoder_exception_is_the_file_error(tmp_path, monkeypatch) -> None:
    from resizer.image_io import write

    for name in ("a.png", "b.png", "c.png"):
        make_png(tmp_path / "in" / name)
    encode = write._encode_into

    def flaky(picture, fmt, handle, *, label, **options):
        if label.endswith("b.png"):
            raise NotImplementedError("no encoder for this mode")
        encode(picture, fmt, handle, label=label, **options)

    monkeypatch.setattr(write, "_encode_into", flaky)
    result = run("down", str(tmp_path / "in"), "--scale", "2", "-o", str(tmp_path / "out"), "--json", "-j", "2")
    assert result.exit_code == 1
    assert [r["status"] for r in records(result.stdout)] == ["ok", "error", "ok"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]  # and no .part left


def test_jpeg_with_an_absurd_exif_resolution_does_not_stop_the_batch(tmp_path) -> None:
    from PIL.TiffImagePlugin import IFDRational

    folder = tmp_path / "in"
    make_png(folder / "a.png")
    exif = Image.Exif()
    exif[0x011A] = exif[0x011B] = IFDRational(4294967295, 1)  # XResolution, YResolution: 4294967295 dpi
    exif[0x0128] = 2
    Image.fromarray(synthetic_photo(24, 32)).save(folder / "b.jpg", exif=exif.tobytes())
    make_png(folder / "c.png")
    result = run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "out"), "--json", "-j", "1")
    statuses = [r["status"] for r in records(result.stdout)]
    assert statuses[0] == statuses[2] == "ok" and (tmp_path / "out" / "c.png").is_file()
    assert "Traceback" not in result.stderr
    assert result.exit_code == (1 if statuses[1] == "error" else 0)
    if statuses[1] == "error":
        assert len(error_lines(result.stderr)) == 1 and "b.jpg" in result.stderr


def test_ctrl_c_still_stops_the_batch(tmp_path, monkeypatch) -> None:
    for name in ("a.png", "b.png", "c.png"):
        make_png(tmp_path / "in" / name)
    load = pipeline.load_picture

    def interrupted(source, **options):
        if str(source).endswith("b.png"):
            raise KeyboardInterrupt
        return load(source, **options)

    monkeypatch.setattr(pipeline, "load_picture", interrupted)
    result = run("down", str(tmp_path / "in"), "--scale", "2", "-o", str(tmp_path / "out"), "-j", "1")
    assert result.exit_code == 130
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


# --------------------------------------------------------------------------- concurrent runs

# The real CLI, with an encoder that holds each process at the end of its write until the
# other one got there too: both passed every "exists" check, and both publish at once.
_BARRIER_DRIVER = r"""
import os, sys, time
from pathlib import Path
from resizer.image_io import write
encode = write._encode_into
def held(picture, fmt, handle, **options):
    encode(picture, fmt, handle, **options)
    Path(os.environ["READY"]).touch()
    deadline = time.monotonic() + 60
    while not Path(os.environ["OTHER"]).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
write._encode_into = held
from resizer.cli import main
sys.argv = ["resizer", *sys.argv[1:]]
main()
"""


def _driver(code: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    environ = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=environ, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_writing_one_output_one_wins_the_other_reports_exists(tmp_path) -> None:
    src_a = make_png(tmp_path / "a.png", (40, 30))
    src_b = make_png(tmp_path / "b.png", (48, 36))
    target = tmp_path / "same.png"
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    procs = [
        _driver(_BARRIER_DRIVER, ["down", str(src), "--scale", "2", "-o", str(target)],
                {"READY": str(ready[i]), "OTHER": str(ready[1 - i])})
        for i, src in enumerate((src_a, src_b))
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 1], outcomes
    loser = next(stderr for code, _, stderr in outcomes if code == 1)
    assert "same.png" in loser and "exists" in loser and "Traceback" not in loser
    with Image.open(target) as im:
        winner = 0 if outcomes[0][0] == 0 else 1
        assert im.size == ((20, 15), (24, 18))[winner]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_two_runs_into_one_folder_write_each_file_once(tmp_path) -> None:
    folder = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        make_png(folder / name)
    out = tmp_path / "out"
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    procs = [_driver(_BARRIER_DRIVER, ["down", str(folder), "--scale", "2", "-o", str(out), "-j", "1", "--json"],
                     {"READY": str(ready[i]), "OTHER": str(ready[1 - i])}) for i in range(2)]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    oks = sorted(Path(r["output"]).name for _, stdout, _ in outcomes for r in records(stdout) if r["status"] == "ok")
    assert oks == ["a.png", "b.png", "c.png"], outcomes  # each output reported written by exactly one run
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_exclusive_publish_falls_back_without_hard_links(tmp_path, monkeypatch) -> None:
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    files.atomic_write_bytes(tmp_path / "x", b"one", replace=False)
    with pytest.raises(FileExistsError):
        files.atomic_write_bytes(tmp_path / "x", b"two", replace=False)
    assert (tmp_path / "x").read_bytes() == b"one" and os.listdir(tmp_path) == ["x"]
    files.atomic_write_bytes(tmp_path / "x", b"three")  # replace stays the default
    assert (tmp_path / "x").read_bytes() == b"three"


def test_overwrite_still_replaces(tmp_path) -> None:
    src = make_png(tmp_path / "a.png")
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    assert run("down", str(src), "--scale", "2", "-o", str(out), "--overwrite").exit_code == 0
    with Image.open(out) as im:
        assert im.size == (16, 12)


# --------------------------------------------------------------------------- what counts as an image


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_no_image_in_a_folder_and_an_error_as_an_input(tmp_path) -> None:
    folder = tmp_path / "in"
    make_png(folder / "a.png")
    os.mkfifo(folder / "x.png")
    result = run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    assert [Path(r["input"]).name for r in records(result.stdout)] == ["a.png"]
    result = run("down", str(folder / "x.png"), "--scale", "2", "-o", str(tmp_path / "x_small.png"))
    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "x.png" in lines[0] and "not a regular file" in lines[0]


def test_hidden_files_are_skipped_in_folders_but_read_when_named(tmp_path) -> None:
    folder = tmp_path / "in"
    make_png(folder / "IMG.png")
    make_png(folder / "._IMG.png")
    result = run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0
    assert [Path(r["input"]).name for r in records(result.stdout)] == ["IMG.png"]
    result = run("down", str(folder / "._IMG.png"), "--scale", "2", "-o", str(tmp_path / "hidden.png"))
    assert result.exit_code == 0 and (tmp_path / "hidden.png").is_file()


# --------------------------------------------------------------------------- signals and stale temporaries

# The real CLI with an encoder that stops after writing the temporary file: the moment a
# signal would leave a half-written ``.part`` behind.
_STALL_DRIVER = r"""
import os, signal, sys, time
from pathlib import Path
from resizer.image_io import write
signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, even when started in the background
signal.signal(signal.SIGTERM, signal.SIG_DFL)
encode = write._encode_into
def stalled(picture, fmt, handle, **options):
    encode(picture, fmt, handle, **options)
    handle.flush()
    Path(os.environ["READY"]).touch()
    time.sleep(60)
write._encode_into = stalled
if os.environ["ENTRY"] == "cli":
    from resizer.cli import main
    sys.argv = ["resizer", *sys.argv[1:]]
    main()
else:  # the Python API: run_batch itself turns SIGTERM into an interrupt
    from resizer.geometry import SizeSpec
    from resizer.pipeline import BatchSettings, run_batch
    try:
        run_batch([sys.argv[2]], BatchSettings("down", SizeSpec(scale=2), output=sys.argv[-3], jobs=1))
    except KeyboardInterrupt:
        sys.exit(130)
"""


def _stalled_run(tmp_path: Path, entry: str = "cli") -> tuple[subprocess.Popen, Path]:
    folder = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        make_png(folder / name)
    out = tmp_path / "out"
    ready = tmp_path / "ready"
    proc = _driver(_STALL_DRIVER, ["down", str(folder), "--scale", "2", "-o", str(out), "-j", "1"],
                   {"READY": str(ready), "ENTRY": entry})
    deadline = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), proc.communicate()
    assert [p.name for p in out.iterdir() if p.name.endswith(".part")], "the write should be under way"
    return proc, out


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
@pytest.mark.parametrize(("entry", "signum"), [("cli", signal.SIGTERM), ("cli", signal.SIGINT), ("api", signal.SIGTERM)])
def test_sigterm_stops_the_batch_like_ctrl_c_and_leaves_no_temporary_file(tmp_path, entry, signum) -> None:
    proc, out = _stalled_run(tmp_path, entry)
    proc.send_signal(signum)
    code = proc.wait(timeout=30)
    _, stderr = proc.communicate()
    assert code != 0 and "Traceback" not in stderr, stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no .part, no partial a.png, nothing after it


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_the_next_run_removes_what_a_killed_run_left(tmp_path) -> None:
    proc, out = _stalled_run(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    proc.communicate()
    left = [p for p in out.iterdir() if p.name.endswith(".part")]
    assert len(left) == 1 and str(proc.pid) in left[0].name
    result = run("down", str(tmp_path / "in"), "--scale", "2", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_only_dead_writers_temporaries_are_removed(tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid that is gone
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host = files._HOST
        names = {
            "dead": f".a.png.{host}-{dead.pid}.abcd_123.part",
            "live": f".b.png.{host}-{live.pid}.abcd_123.part",
            "mine": f".c.png.{host}-{os.getpid()}.abcd_123.part",
            "other_host_recent": f".d.png.000000-{dead.pid}.abcd_123.part",
            "other_host_old": f".e.png.000000-{dead.pid}.abcd_123.part",
            "not_ours": ".f.png.part",
            "other_suffix": f".g.png.{host}-{dead.pid}.abcd_123.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        old = time.time() - 2 * files.STALE_AGE_S
        os.utime(tmp_path / names["other_host_old"], (old, old))
        removed = {p.name for p in files.remove_stale_temporaries(tmp_path, ".part")}
        assert removed == {names["dead"], names["other_host_old"]}
    finally:
        live.kill()
        live.wait()


def test_temporary_names_stay_short_for_long_targets(tmp_path) -> None:
    target = tmp_path / ("n" * 250 + ".png")
    files.atomic_write_bytes(target, b"data", suffix=".part")
    assert target.read_bytes() == b"data"


# --------------------------------------------------------------------------- odd paths and formats


def test_a_file_name_too_long_is_that_file_one_line_error(tmp_path) -> None:
    long_input = make_png(tmp_path / ("b" * 246 + ".png"))  # 250 characters; its default output name is 256
    short = make_png(tmp_path / "short.png")
    result = run("down", str(long_input), str(short), "--scale", "2", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0  # into a folder, the names fit
    result = run("down", str(long_input), "--scale", "2")
    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "too long" in lines[0] and long_input.name in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["../x", "x/y", "nope", ""])
def test_a_format_that_is_no_format_is_a_usage_error_before_any_work(tmp_path, fmt) -> None:
    folder = tmp_path / "in"
    make_png(folder / "a.png")
    result = run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "out"), "--format", fmt)
    assert result.exit_code == 2, result.output
    assert "--format" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_known_formats_still_work_with_or_without_a_dot(tmp_path) -> None:
    src = make_png(tmp_path / "in" / "a.png")
    assert run("down", str(src.parent), "--scale", "2", "-o", str(tmp_path / "out"), "--format", ".JPG").exit_code == 0
    with Image.open(tmp_path / "out" / "a.jpg") as im:
        assert im.format == "JPEG"
