"""The Typer application and the options and error handling every command shares."""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

from ..errors import ResizerError, UsageError

app = typer.Typer(
    name="resizer",
    help="Resize images with learned and classical downscalers and upscalers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def stderr_console() -> Console:
    """Console for messages and progress; honours NO_COLOR."""
    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


def fail_usage(message: str) -> NoReturn:
    """Print a usage error the way Click does and exit with status 2."""
    _usage_exit(message)


def _usage_exit(message: str) -> NoReturn:
    print(f"resizer: error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def run_api(call, *, debug: bool = False):
    """Call the API; turn ``ResizerError`` into one stderr line and an exit status."""
    try:
        return call()
    except UsageError as exc:
        if debug:
            raise
        _usage_exit(str(exc))
    except ResizerError as exc:
        if debug:
            raise
        print(f"resizer: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        print(f"resizer {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Resize images with learned and classical downscalers and upscalers."""


# Options shared by several commands (Annotated aliases keep the signatures short).
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
TileOpt = Annotated[Optional[int], typer.Option("--tile", min=0, help="Tile size in input pixels; 0 = whole image.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto (fp32 on CPUs, bf16/fp16 on GPUs), fp32, fp16 or bf16 (half precisions on GPUs).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="Weights file, or hf://OWNER/REPO/FILE.safetensors[@REVISION].")]


def main() -> None:
    """Console-script entry point."""
    app()
