"""The README's "web thumbnails" recipe works copy-pasted: run it, twice, on a folder the test makes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import numpy as np
from PIL import Image

from resizer.image_io.profiles import profile_description

from .conftest import REPO, synthetic_photo
from .icc_profiles import adobe_rgb


def recipe() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- web-thumbnails:[^>]*-->\s*```sh\n(.*?)```", text, re.S)
    assert block, "the README has no web-thumbnails block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_web_thumbnails_recipe_runs_and_reruns(tmp_path) -> None:
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    (photos / "raw").mkdir()
    Image.fromarray(synthetic_photo(600, 800)).save(photos / "landscape.jpg", quality=90, icc_profile=adobe_rgb())
    Image.fromarray(synthetic_photo(400, 300, seed=1)).save(photos / "trip" / "portrait.jpg", quality=90)
    Image.fromarray(synthetic_photo(100, 150, seed=2)).save(photos / "trip" / "small.png")
    Image.fromarray(synthetic_photo(200, 200, seed=3)).save(photos / "raw" / "scan.png")
    Image.fromarray(synthetic_photo(50, 50, seed=4)).save(photos / "._landscape.jpg")  # a macOS fork
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lines = recipe()
    assert len(lines) == 2
    for attempt in range(2):
        for line in lines:
            argv = shlex.split(line)
            assert argv[0] == "resizer"
            proc = subprocess.run([sys.executable, "-m", "resizer", *argv[1:]], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, (line, proc.stderr)
            summary = proc.stderr.strip().splitlines()[-1]
            assert (" 0 written" in " " + summary) == (attempt == 1), summary  # the rerun writes nothing
    web = tmp_path / "web"
    found = sorted(p.relative_to(web).as_posix() for p in web.rglob("*") if p.is_file())
    assert found == ["landscape_320.webp", "landscape_square.jpg", "raw/scan_200.webp", "trip/portrait_240.webp",
                     "trip/portrait_square.jpg", "trip/small_150.webp", "trip/small_square.jpg"]
    with Image.open(web / "landscape_320.webp") as im:
        assert im.size == (320, 240) and profile_description(im.info["icc_profile"]) == "sRGB built-in"
    with Image.open(web / "trip" / "small_square.jpg") as im:
        assert im.size == (150, 100)  # smaller than the box: never enlarged, only cut to it
    assert Image.open(web / "landscape_square.jpg").size == (160, 160)
    assert np.asarray(Image.open(web / "trip" / "portrait_square.jpg")).shape == (160, 160, 3)
