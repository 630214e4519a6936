"""The per-image progress bar (tiles done / total) on a pseudo-terminal, for one slow image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .conftest import synthetic_photo
from .test_cli import _run_on_terminal


def _slow_image(tmp_path: Path) -> Path:
    """One image that a learned method enlarges in many tiles, for longer than the bar's delay."""
    source = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(96, 112, seed=2)).save(source)
    return source


def test_one_slow_image_shows_its_tiles_on_a_terminal_only(tmp_path: Path) -> None:
    source = _slow_image(tmp_path)
    args = ["up", str(source), "--scale", "2", "--method", "vdsr", "--tile", "24", "--device", "cpu"]
    # The bar waits RESIZER_PROGRESS_AFTER seconds (default 1): 0.2 keeps this test short on a fast machine.
    slow = {"RESIZER_PROGRESS_AFTER": "0.2"}
    status, shown = _run_on_terminal([*args, "-o", str(tmp_path / "a.png")], slow)
    assert status == 0, shown
    assert "tiles" in shown and "20/20" in shown  # 4 x 5 tiles of 24 input pixels
    status, shown = _run_on_terminal([*args, "-o", str(tmp_path / "b.png"), "--quiet"], slow)
    assert status == 0 and shown.strip() == ""
    status, shown = _run_on_terminal([*args, "-o", str(tmp_path / "c.png"), "--json"], slow)
    assert status == 0 and "tiles" not in shown
    # An image that finishes before the delay gets no bar.
    status, shown = _run_on_terminal([*args, "-o", str(tmp_path / "d.png")], {"RESIZER_PROGRESS_AFTER": "600"})
    assert status == 0 and "tiles" not in shown
