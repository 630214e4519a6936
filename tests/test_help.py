"""Help texts and shell completion: what a user reads and types."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _resizer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "100", **(env or {})}
    return subprocess.run([sys.executable, "-m", "resizer", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


@pytest.mark.parametrize("command", [[], ["up"], ["down"], ["models", "list"], ["eval"]])
def test_help_shows_flags_without_a_value_placeholder(command: list[str]) -> None:
    result = _resizer(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "Usage: resizer" in result.stdout


def test_help_keeps_square_brackets_of_the_weights_reference() -> None:
    result = _resizer("up", "--help")
    assert "hf://OWNER/REPO/FILE.safetensors[@REVISION]" in result.stdout.replace("\n", "").replace(" ", "")


def test_bash_completion_offers_commands_and_options() -> None:
    env = {"_RESIZER_COMPLETE": "complete_bash", "COMP_CWORD": "1", "COMP_WORDS": "resizer d"}
    commands = subprocess.run([sys.executable, "-m", "resizer"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
    assert set(commands.stdout.split()) == {"down", "decode"}
    env.update(COMP_CWORD="2", COMP_WORDS="resizer up --me")
    options = subprocess.run([sys.executable, "-m", "resizer"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **env})
    assert options.stdout.split() == ["--method"]


def test_show_completion_prints_a_script() -> None:
    for shell, marker in (("bash", "complete_bash"), ("zsh", "complete_zsh"), ("fish", "complete_fish")):
        result = _resizer("--show-completion", shell, env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
        assert result.returncode == 0, result.stderr
        assert f"_RESIZER_COMPLETE={marker}" in result.stdout.replace(" ", ""), shell


def test_each_direction_explains_scale_with_its_own_example_and_options() -> None:
    up = " ".join(_resizer("up", "--help").stdout.split())
    down = " ".join(_resizer("down", "--help").stdout.split())
    assert "'--scale 2.7' gives 2.7 times" in up and "a quarter" not in up
    assert "'--scale 4' gives a quarter" in down and "2.7 times" not in down
    for option in ("--only-shrink", "--shrink-on-load"):
        assert option in down and option not in up
    assert ".pth" in up and "run folder" in up  # --weights takes community files and training runs


def test_a_hidden_down_option_given_to_up_is_refused_with_a_reason(tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    result = _resizer("up", str(tmp_path / "a.png"), "--width", "16", "--only-shrink", "-m", "bicubic")
    assert result.returncode == 2 and "--only-shrink is for 'resizer down'" in result.stderr
