"""The console script imports only the module of the command it runs (issues 15 and 17: start-up)."""

from __future__ import annotations

import subprocess
import sys

import resizer.cli as cli
from resizer.cli import app


def _command_names() -> set[str]:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    return commands | {g.name for g in app.registered_groups}


def test_every_registered_command_has_its_module_listed() -> None:
    assert _command_names() == set(cli.COMMAND_MODULES)
    assert set(cli.COMMAND_MODULES.values()) == set(cli.ALL_MODULES)


def _loaded_command_modules(args: list[str]) -> set[str]:
    code = ("import sys, resizer.cli as c; c.load_commands(sys.argv[1:]); "
            "print(' '.join(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('resizer.cli.') and m.endswith('_cmd')))")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_a_run_loads_only_its_command_and_help_loads_them_all() -> None:
    assert _loaded_command_modules(["down", "a.png", "--scale", "2"]) == {"resize_cmd"}
    assert "bench_cmd" not in _loaded_command_modules(["models", "list"])
    assert _loaded_command_modules(["--version"]) == set()
    assert _loaded_command_modules(["--help"]) == set(cli.ALL_MODULES)
    assert _loaded_command_modules(["dwon"]) == set(cli.ALL_MODULES)  # a typo still gets "did you mean"


def test_the_console_script_runs_a_lazily_loaded_command(tmp_path) -> None:
    from PIL import Image

    source = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(source)
    result = subprocess.run([sys.executable, "-m", "resizer", "down", str(source), "--scale", "2", "-o",
                             str(tmp_path / "b.png")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "b.png") as im:
        assert im.size == (20, 15)
    listing = subprocess.run([sys.executable, "-m", "resizer", "--help"], capture_output=True, text=True).stdout
    assert all(name in listing for name in cli.COMMAND_MODULES)
