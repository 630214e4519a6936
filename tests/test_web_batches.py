"""Issue 17: batches a web team can rerun: -o FILE vs several inputs, templates, globs, hidden files,
--skip-existing reruns, the summary line, and -o - refusing a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.batch_output import FolderSelection, summary_line
from resizer.cli import app
from resizer.geometry import SizeSpec
from resizer.pipeline import BatchSettings, run_batch

from .conftest import REPO, synthetic_photo


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def make(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo(size[1], size[0])).save(path)
    return path


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_one_output_file_for_several_inputs_is_a_usage_error(tmp_path) -> None:
    a, b = make(tmp_path / "a.png"), make(tmp_path / "b.png")
    result = run("down", str(a), str(b), "--scale", "2", "-o", str(tmp_path / "single.png"))
    assert result.exit_code == 2 and "single.png" in result.stderr
    assert not (tmp_path / "single.png").exists()
    folder = run("down", str(a), str(b), "--scale", "2", "-o", str(tmp_path / "out") + "/")
    assert folder.exit_code == 0 and tree(tmp_path / "out") == ["a.png", "b.png"]


def test_a_rerun_with_skip_existing_exits_0_and_says_so(tmp_path) -> None:
    folder = tmp_path / "photos"
    make(folder / "a.png")
    make(folder / "b.png")
    first = run("down", str(folder), "--fit", "32x32", "-o", str(tmp_path / "out"))
    assert first.exit_code == 0 and "2 written, 0 skipped, 0 failed in" in first.stderr
    again = run("down", str(folder), "--fit", "32x32", "-o", str(tmp_path / "out"), "--skip-existing")
    assert again.exit_code == 0, again.output
    assert "0 written, 2 skipped, 0 failed in" in again.stderr.splitlines()[-1]
    quiet = run("down", str(folder), "--fit", "32x32", "-o", str(tmp_path / "out"), "--skip-existing", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_single_file_prints_no_summary(tmp_path) -> None:
    result = run("down", str(make(tmp_path / "a.png")), "--scale", "2")
    assert result.exit_code == 0 and result.stderr == ""


def test_summary_line_counts() -> None:
    assert summary_line(["ok"] * 12 + ["skipped", "error"], 3.21) == "12 written, 1 skipped, 1 failed in 3.2 s"


def test_templates_fill_in_names_and_sizes(tmp_path) -> None:
    folder = tmp_path / "photos"
    make(folder / "IMG_1.png", (64, 48))
    make(folder / "trip" / "IMG_2.jpg", (48, 64))
    template = str(tmp_path / "web" / "{dir}" / "{stem}_{width}x{height}.webp")
    result = run("down", str(folder), "--fit", "32x32", "-o", template, "--json")
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "web") == ["IMG_1_32x24.webp", "trip/IMG_2_24x32.webp"]
    outputs = [json.loads(line)["output"] for line in result.stdout.splitlines()]
    assert all(Path(o).is_file() for o in outputs)
    assert Image.open(tmp_path / "web" / "IMG_1_32x24.webp").format == "WEBP"
    rerun = run("down", str(folder), "--fit", "32x32", "-o", template, "--skip-existing")
    assert rerun.exit_code == 0 and "2 skipped" in rerun.stderr
    names = run("down", str(folder), "--fit", "32x32", "-o", str(tmp_path / "t" / "{tag}-{name}.{ext}"))
    assert names.exit_code == 0 and tree(tmp_path / "t") == ["fit32x32-IMG_1.png.png", "fit32x32-IMG_2.jpg.jpg"]


@pytest.mark.parametrize("template", ["out/{nope}.png", "out/{stem.png", "out/{}.png"])
def test_a_bad_template_is_a_usage_error(tmp_path, template) -> None:
    result = run("down", str(make(tmp_path / "a.png")), "--scale", "2", "-o", str(tmp_path / template))
    assert result.exit_code == 2 and ("template" in result.stderr or "field" in result.stderr), result.output


def test_include_exclude_and_hidden(tmp_path) -> None:
    folder = tmp_path / "photos"
    for name in ("a.png", "b.jpg", "raw/c.png", ".cache/d.png", "._e.png"):
        make(folder / name)
    assert run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "1")).exit_code == 0
    assert tree(tmp_path / "1") == ["a.png", "b.jpg", "raw/c.png"]
    assert run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "2"), "--include", "*.png").exit_code == 0
    assert tree(tmp_path / "2") == ["a.png", "raw/c.png"]
    assert run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "3"), "--exclude", "raw/*",
               "--exclude", "b.*").exit_code == 0
    assert tree(tmp_path / "3") == ["a.png"]
    assert run("down", str(folder), "--scale", "2", "-o", str(tmp_path / "4"), "--hidden").exit_code == 0
    assert tree(tmp_path / "4") == ["._e.png", ".cache/d.png", "a.png", "b.jpg", "raw/c.png"]


def test_the_api_takes_a_folder_selection(tmp_path) -> None:
    folder = tmp_path / "photos"
    make(folder / "a.png")
    make(folder / "b.png")
    settings = BatchSettings("down", SizeSpec(scale=2), output=str(tmp_path / "o"),
                             selection=FolderSelection(exclude=("a.*",)))
    assert [Path(r.input).name for r in run_batch([str(folder)], settings)] == ["b.png"]


def test_standard_output_refuses_a_terminal(tmp_path) -> None:
    src = make(tmp_path / "a.png")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "resizer", "down", str(src), "--scale", "2", "-o", "-"],
                              stdout=follower, stderr=subprocess.PIPE, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2 and b"terminal" in proc.stderr
    piped = subprocess.run([sys.executable, "-m", "resizer", "down", str(src), "--scale", "2", "-o", "-"],
                           capture_output=True, cwd=REPO, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert piped.returncode == 0 and piped.stdout.startswith(b"\x89PNG")
