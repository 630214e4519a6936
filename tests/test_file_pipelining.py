"""Folders of learned resizes: neighbouring files decode and encode while one computes; same results, same order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from resizer import learned, pipeline
from resizer.methods import get_method

from .conftest import synthetic_photo
from .test_cli import json_lines, run


def _folder(tmp_path: Path, count: int = 5) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(count):  # different sizes, so a mix-up of outputs would show
        Image.fromarray(synthetic_photo(20 + 3 * i, 26 + 2 * i, seed=i)).save(folder / f"{i}.png")
    return folder


def _run(folder: Path, out: Path, *extra: str) -> list[dict]:
    result = run("up", str(folder), "--scale", "2", "--method", "vdsr", "--device", "cpu", "--json", "-o", str(out),
                 *extra)
    assert result.exit_code == 0, result.output
    return json_lines(result.stdout)


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


def test_pipelined_folder_equals_the_sequential_run(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert get_method("vdsr").default_jobs() == 2 and get_method("bicubic").default_jobs() >= 1
    sequential = _run(folder, tmp_path / "seq", "--jobs", "1")
    for name, extra in (("default", ()), ("three", ("--jobs", "3"))):
        rows = _run(folder, tmp_path / name, *extra)
        assert [r["input"] for r in rows] == [r["input"] for r in sequential]  # the same order
        assert [(r["status"], r["output_size"], r["precision"]) for r in rows] == \
               [(r["status"], r["output_size"], r["precision"]) for r in sequential]
        ours, reference = _pixels(tmp_path / name), _pixels(tmp_path / "seq")
        assert ours.keys() == reference.keys()
        for key in reference:
            assert np.array_equal(ours[key], reference[key]), key


def test_decoding_overlaps_the_network_run(tmp_path: Path, monkeypatch) -> None:
    """While one file's network runs, the next file is being decoded (not after it).

    The k-th network run (a stand-in that sleeps) lasts until the (k+1)-th decode has begun,
    or 5 s: pipelined, that decode happens meanwhile whatever the machine's load (a slow
    write of the previous file only makes the run wait); run one file after another, it
    can only begin afterwards, and the assertion fails.
    """
    count = 4
    real_load, real_up = pipeline.load_picture, learned.upscale_picture
    overlapped = False
    for attempt in range(3):  # a thread woken late can let the next decode begin just before a run: retry
        events = _timed_batch(tmp_path / f"try{attempt}", count, monkeypatch, real_load, real_up)
        computes = [(s, e) for k, s, e in events if k == "compute"]
        decodes = [(s, e) for k, s, e in events if k == "decode"]
        assert len(computes) == len(decodes) == 4
        assert all(a_end <= b_start + 1e-3 for (_, a_end), (b_start, _) in zip(sorted(computes), sorted(computes)[1:])), \
            "two network runs at once"
        overlapped = any(cs < ds < ce for cs, ce in computes for ds, _ in decodes)
        if overlapped:
            break
    assert overlapped, "no decoding during a network run"


def _timed_batch(folder: Path, count: int, monkeypatch, real_load, real_up) -> list[tuple[str, float, float]]:
    """Run ``count`` files with timed stand-ins for the decode and the network run; their (kind, start, end)."""
    events: list[tuple[str, float, float]] = []
    progress = threading.Condition()
    started = {"decode": 0, "compute": 0}

    def timed(kind, fn):
        def call(*args, **kwargs):
            start = time.monotonic()
            with progress:
                index = started[kind]
                started[kind] += 1
                progress.notify_all()
            try:
                if kind == "compute":
                    time.sleep(0.2)
                    if index + 1 < count:  # until the next file's decode has begun
                        with progress:
                            progress.wait_for(lambda: started["decode"] >= index + 2, timeout=5.0)
                return fn(*args, **kwargs)
            finally:
                with progress:
                    events.append((kind, start, time.monotonic()))
        return call

    folder.mkdir()
    monkeypatch.setattr(pipeline, "load_picture", timed("decode", real_load))
    monkeypatch.setattr(learned, "upscale_picture", timed("compute", real_up))
    _run(_folder(folder, count), folder / "out")
    return events

