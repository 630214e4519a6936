"""The man pages and the changelog describe the CLI that really exists."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from resizer.cli import app

REPO = Path(__file__).resolve().parents[1]
MAN = REPO / "man"


def _page_text(name: str) -> str:
    path = MAN / f"{name}.1"
    assert path.exists(), f"missing man page {path}"
    # troff escapes hyphens as \- ; fonts as \fB..\fR
    return re.sub(r"\\f[BIRP]", "", path.read_text().replace("\\-", "-"))


def _commands() -> dict:
    """Every leaf command by its full name: 'down', 'models list', ..."""
    root = typer.main.get_command(app)
    found: dict = {}

    def walk(prefix: str, command) -> None:
        if hasattr(command, "commands"):  # a group (typer bundles its own click)
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found[prefix] = command

    walk("", root)
    return found


def _page_for(command_name: str) -> str:
    top = command_name.split()[0]
    return "resizer" if top in ("down", "up", "methods") else f"resizer-{top}"


def test_every_command_has_a_page_that_lists_all_its_options() -> None:
    commands = _commands()
    assert {"down", "up", "methods"} <= set(commands)
    missing: list[str] = []
    for name, command in commands.items():
        text = _page_text(_page_for(name))
        for param in command.params:
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("-") and opt not in ("--help", "-h") and opt not in text:
                    missing.append(f"{name}: {opt} not in man/{_page_for(name)}.1")
    assert not missing, "\n".join(missing)


def test_main_page_names_every_command() -> None:
    text = _page_text("resizer")
    for name in _commands():
        assert name.split()[0] in text, f"man/resizer.1 does not mention '{name}'"


def test_man_pages_do_not_document_options_that_do_not_exist() -> None:
    commands = _commands()
    real = {opt for c in commands.values() for p in c.params for opt in p.opts + p.secondary_opts}
    real |= {opt for p in typer.main.get_command(app).params for opt in p.opts} | {"--help", "-h"}
    for page in MAN.glob("*.1"):
        text = page.read_text().replace("\\-", "-")
        documented: set[str] = set()
        for line in text.splitlines():
            if line.startswith((".B ", ".BR ", ".TP")) or line.startswith("\\fB"):
                documented.update(re.findall(r"(--[a-z][a-z0-9-]+)", line))
        stale = sorted(documented - real)
        assert not stale, f"{page.name} documents options the CLI lacks: {stale}"


def test_changelog_follows_keep_a_changelog() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "## [Unreleased]" in text
    assert re.search(r"^### (Added|Changed|Fixed|Removed)", text, flags=re.M)
