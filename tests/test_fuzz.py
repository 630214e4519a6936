"""Fuzz test of ``resizer down``/``up`` on malformed files (issue 21): the promises under hostile input.

Inputs are valid seeds of every format Pillow reads and writes, made here from a synthetic
picture, then mutated: bits flipped, truncated, byte ranges and whole chunks duplicated,
zeroed or dropped, absurd values written into width/height/DPI/offset fields (see
``tests/fuzz_cases.py``). Whatever the bytes, a run must keep the promises of the README and
issue 21, which :func:`tests.fuzz_cases.problems` checks:

- the exit status is 0, 1 or 2, and 0 exactly when every input was written;
- no traceback: the CLI runs in-process with ``catch_exceptions=False``, so any exception
  that escapes resizer fails the example (with the mutation that caused it);
- a failed input gets exactly one stderr line, naming it, and leaves no output; every line
  on stderr is resizer's own (``resizer: ...``): no library warning, log record or C library
  message (fully checked only in a real process: pytest captures warnings and logging);
- an output that is written is a whole image that reads back;
- the valid files of a folder are written whatever the bad files beside them do;
- no temporary file (``.*.part``, ``.*.tmp``) is left behind, and inputs are untouched;
- no hang (an alarm ends an in-process run after ``HANG_SECONDS``).

``--max-pixels`` is small, so absurd header sizes are refused before any decoding and the
whole file runs in well under a minute; hypothesis is derandomized, so CI tests the same
examples every time. A failure prints the seed and the ``ops`` that rebuild the file:
``tests.fuzz_cases.mutate(seed, ops)``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from resizer.cli import app
from resizer.image_io import is_image_path

from .fuzz_cases import (
    GOOD_NEIGHBOURS, MAX_PIXELS, OP_KINDS, SEED_NAMES, Input, Mutant, make_mutant, problems, random_corpus,
    readable, seed_bytes, suffix_of,
)

HANG_SECONDS = 60  # one tiny image takes well under a second; this only catches endless loops
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def fuzz(examples: int) -> settings:
    """The shared settings with ``examples`` examples (sized so the file runs in about 45 s on 2 cores)."""
    return settings(FUZZ, max_examples=examples)


LEARNED_SEEDS = ("png-rgb", "png-paired", "png-rgba16", "jpeg-exif", "webp-rgba", "tiff-rgb16", "gif-2frames")


@st.composite
def mutants(draw, seeds: tuple[str, ...] = SEED_NAMES) -> Mutant:
    """A seed with one to three mutations (PNG: CRCs sometimes fixed, to reach the decoder)."""
    seed = draw(st.sampled_from(seeds))
    kinds = draw(st.lists(st.sampled_from(OP_KINDS), min_size=1, max_size=3))
    return make_mutant(seed, kinds, lambda lo, hi: draw(st.integers(lo, hi)), fix_crc=draw(st.booleans()))


class Hang(BaseException):
    """Raised by the alarm: a run took longer than ``HANG_SECONDS`` (BaseException: nothing swallows it)."""


@contextmanager
def hang_alarm(seconds: int = HANG_SECONDS):
    def ring(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_checked(args: list[str], inputs: list[Input], out_dir: Path, root: Path) -> None:
    """Run the CLI in-process and assert that every promise held."""
    with hang_alarm():
        result = CliRunner().invoke(app, args, catch_exceptions=False)
    found = problems(result.exit_code, result.stdout, result.stderr, inputs, out_dir, root, "--json" in args)
    assert not found, "\n".join(found + ["--- stderr:", result.stderr])


def stem(index: int, role: str) -> str:
    """``f007-bad``: stems that no other stem contains, so stderr lines are matched to their file."""
    return f"f{index:03d}-{role}"


def write_input(folder: Path, name: str, data: bytes, suffix: str, good: bool) -> Input:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    path.write_bytes(data)
    return Input(path, data, good)


def not_picked(inputs: list[Input]) -> list[str]:
    """Inputs a folder walk skips (suffixes outside resizer's image-file rule): named on the command line."""
    return [str(i.path) for i in inputs if not is_image_path(i.path)]


# --------------------------------------------------------------------------- the seeds themselves


@pytest.mark.parametrize("seed", SEED_NAMES)
def test_every_valid_seed_is_resized(tmp_path: Path, seed: str) -> None:
    """The unmutated seeds are valid: each must be written, in its own format or a writable default."""
    item = write_input(tmp_path / "in", stem(0, "good"), seed_bytes(seed), suffix_of(seed), good=True)
    out = tmp_path / "out"
    run_checked(["down", str(item.path), "--scale", "2", "-o", f"{out}/", "--max-pixels", str(MAX_PIXELS)],
                [item], out, tmp_path)


# --------------------------------------------------------------------------- one mutated file


OUTPUT_FORMATS = [[], ["--format", "png"], ["--format", "jpg"], ["--format", "webp"], ["--format", "tif"],
                  ["--format", "bmp"], ["--format", "gif"], ["--format", "ppm"]]


@fuzz(400)
@given(mutant=mutants(), size=st.sampled_from([["--scale", "2"], ["--width", "5"], ["--scale", "1.5"]]),
       fmt=st.sampled_from(OUTPUT_FORMATS), strip=st.sampled_from([[], ["--strip"]]), as_json=st.booleans())
def test_mutated_file_down(mutant: Mutant, size: list[str], fmt: list[str], strip: list[str], as_json: bool) -> None:
    """One mutated file, written in its own format or another one (encoders see odd decoded modes too)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        item = write_input(root / "in", stem(0, "bad"), mutant.data, mutant.suffix, good=False)
        out = root / "out"
        args = ["down", str(item.path), *size, *fmt, *strip, "-o", f"{out}/", "--max-pixels", str(MAX_PIXELS),
                "--jobs", "1"]
        run_checked(args + (["--json"] if as_json else []), [item], out, root)


@fuzz(60)
@given(mutant=mutants(), fmt=st.sampled_from(["png", "jpg", "tif", "webp"]))
def test_overwrite_keeps_the_old_output_when_a_file_fails(mutant: Mutant, fmt: str) -> None:
    """``--overwrite`` onto an existing output: a failure leaves the old file as it was (atomic writes)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        item = write_input(root / "in", stem(0, "bad"), mutant.data, mutant.suffix, good=False)
        target = root / "out" / f"result.{fmt}"
        target.parent.mkdir()
        old = seed_bytes("png-rgb")  # any bytes will do: they must survive a failure
        target.write_bytes(old)
        with hang_alarm():
            result = CliRunner().invoke(app, ["down", str(item.path), "--scale", "2", "-o", str(target), "--overwrite",
                                              "--max-pixels", str(MAX_PIXELS)], catch_exceptions=False)
        lines = result.stderr.splitlines()
        assert result.exit_code in (0, 1, 2), result.stderr
        if result.exit_code == 0:
            assert target.read_bytes() != old and readable(target), result.stderr
        else:
            assert target.read_bytes() == old, f"a failed run changed the existing output\n{result.stderr}"
            assert len(lines) == 1 and stem(0, "bad") in lines[0], result.stderr
        assert not list(root.rglob(".*")), f"leftover {list(root.rglob('.*'))}"


@fuzz(60)
@given(mutant=mutants())
def test_mutated_stdin_to_stdout(mutant: Mutant) -> None:
    """``-`` to ``-o -``: standard output holds a whole image, or nothing and one line naming ``<stdin>``."""
    with hang_alarm():
        result = CliRunner().invoke(app, ["down", "-", "--scale", "2", "-o", "-", "--max-pixels", str(MAX_PIXELS)],
                                    input=mutant.data, catch_exceptions=False)
    lines = result.stderr.splitlines()
    assert result.exit_code in (0, 1, 2), result.stderr
    assert all(line.startswith("resizer: ") for line in lines), result.stderr
    if result.exit_code == 0:
        assert result.stdout_bytes and readable(result.stdout_bytes), result.stderr
    else:
        assert result.stdout_bytes == b"", "a failed run wrote to standard output"
        assert len(lines) == 1 and "<stdin>" in lines[0] and "error" in lines[0], result.stderr


@fuzz(24)
@given(mutant=mutants(LEARNED_SEEDS),
       how=st.sampled_from([["--scale", "2", "--method", "asdn"], ["--scale", "3", "--method", "srcnn"], []]))
def test_mutated_file_up_learned(mutant: Mutant, how: list[str]) -> None:
    """A learned upscaler (``[]``: the pairing metadata picks it, or a size is missing: exit 2)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        item = write_input(root / "in", stem(0, "bad"), mutant.data, mutant.suffix, good=False)
        out = root / "out"
        args = ["up", str(item.path), *how, "-o", f"{out}/", "--max-pixels", str(MAX_PIXELS), "--device", "cpu"]
        run_checked(args, [item], out, root)


# --------------------------------------------------------------------------- batches


@fuzz(60)
@given(bad=st.lists(mutants(), min_size=1, max_size=2), jobs=st.sampled_from([["--jobs", "1"], []]),
       as_json=st.booleans())
def test_batch_goes_on_after_bad_files(bad: list[Mutant], jobs: list[str], as_json: bool) -> None:
    """A folder: bad files first (sorted names), then one valid file of each writable format."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, out = root / "in", root / "out"
        inputs = [write_input(folder, stem(i, "bad"), m.data, m.suffix, good=False) for i, m in enumerate(bad)]
        inputs += [write_input(folder, stem(len(bad) + i, "good"), seed_bytes(name), suffix_of(name), good=True)
                   for i, name in enumerate(GOOD_NEIGHBOURS)]
        args = ["down", str(folder), *not_picked(inputs), "--scale", "2", "-o", f"{out}/",
                "--max-pixels", str(MAX_PIXELS), *jobs]
        run_checked(args + (["--json"] if as_json else []), inputs, out, root)


def test_corpus_in_a_real_process(tmp_path: Path) -> None:
    """A seeded corpus of mutants and valid files through a real ``resizer`` process.

    Only a real process shows all a user sees on stderr: libraries' Python warnings and log
    records (pytest captures both in-process) and C libraries' own messages (libtiff writes
    to file descriptor 2). The default ``--jobs`` (threads) is used. A hang is a timeout.
    """
    folder, out = tmp_path / "in", tmp_path / "out"
    corpus = random_corpus(4 * len(SEED_NAMES), random.Random(21))
    inputs = []
    for i, mutant in enumerate(corpus):
        inputs.append(write_input(folder, stem(2 * i, "bad"), mutant.data, mutant.suffix, good=False))
        name = GOOD_NEIGHBOURS[i % len(GOOD_NEIGHBOURS)]
        inputs.append(write_input(folder, stem(2 * i + 1, "good"), seed_bytes(name), suffix_of(name), good=True))
    env = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-m", "resizer", "down", str(folder), *not_picked(inputs), "--scale", "2",
                           "-o", f"{out}/", "--max-pixels", str(MAX_PIXELS)],
                          capture_output=True, text=True, timeout=HANG_SECONDS * 2, env=env)
    found = problems(done.returncode, done.stdout, done.stderr, inputs, out, tmp_path)
    named = {stem(2 * i, "bad"): m for i, m in enumerate(corpus)}
    hints = [f"{key}: {m}" for key, m in named.items() if any(key in p for p in found)]
    assert not found, "\n".join(found + ["--- mutants:"] + hints + ["--- stderr:", done.stderr])
