"""The ``resizer`` command line: parsing only; every command calls the Python API.

Each command lives in its own module of this package and attaches itself to ``app``.
``resizer.cli.app`` (the Typer application) imports every command module; the console
script (:func:`main`) imports only the module of the command it runs, which saves the
others' imports at every start (help, completion and unknown commands still load them all).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

# Every command module, in the order they register (the order ``--help`` lists the commands in).
ALL_MODULES: tuple[str, ...] = ("bench_cmd", "codec_cmd", "eval_cmd", "kernels_cmd", "models_cmd", "resize_cmd", "train_cmd")
# The module that registers each command.
COMMAND_MODULES: dict[str, str] = {
    "down": "resize_cmd", "up": "resize_cmd", "methods": "resize_cmd",
    "encode": "codec_cmd", "decode": "codec_cmd",
    "eval": "eval_cmd", "bench": "bench_cmd", "kernels": "kernels_cmd",
    "models": "models_cmd", "train": "train_cmd",
}


def _modules_for(args: list[str] | None) -> list[str]:
    """The command modules a run of ``args`` needs: the named command's, none for ``--version``, else all.

    All of them for help, completion and a mistyped command (Click then suggests the closest).
    """
    command = next((a for a in args if not a.startswith("-")), None) if args is not None else None
    if command in COMMAND_MODULES:
        return [COMMAND_MODULES[command]]
    if args == ["--version"]:
        return []
    return list(ALL_MODULES)


def load_commands(args: list[str] | None = None) -> "typer.Typer":
    """The Typer application with the command ``args`` name registered (every command without ``args``)."""
    app_module = importlib.import_module(f"{__name__}.app")
    modules = _modules_for(args)
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")
    package = globals()
    if len(modules) == len(ALL_MODULES):
        package["app"] = app_module.app  # not the submodule the import machinery set here
    elif package.get("app") is app_module:
        del package["app"]  # a later ``resizer.cli.app`` goes through __getattr__ and loads every command
    return app_module.app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: :func:`resizer.cli.app.main` with only the command it runs loaded."""
    args = sys.argv[1:] if argv is None else list(argv)
    load_commands(args)
    from .app import main as run

    run(args)


def __getattr__(name: str) -> Any:
    """``resizer.cli.app`` is the Typer application, every command registered (as before the lazy start)."""
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main", "load_commands", "ALL_MODULES", "COMMAND_MODULES"]
