"""The Typer application and the options and error handling every command shares.

:func:`main`, the console script, adds what a command cannot do for itself: SIGTERM and
SIGHUP stop a run the way Ctrl-C does (:class:`Terminated`), library warnings stay out of
the output unless ``--debug``, ``--json`` runs get their command-line errors as one JSON
object too, and a closed standard output fails the run quietly.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated, Iterator, NoReturn, Optional

import typer
from rich.console import Console

from ..errors import ResizerError, Terminated, UsageError

try:  # typer >= 0.24 bundles its own Click
    from typer._click.exceptions import ClickException
    from typer._click.exceptions import UsageError as ClickUsageError
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer on the Click package
    from click import ClickException, get_current_context
    from click import UsageError as ClickUsageError

app = typer.Typer(
    name="resizer",
    help="Resize images with learned and classical downscalers and upscalers.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: no "<bool>" after flags, no markup eating "[@REVISION]"
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def stderr_console() -> Console:
    """Console for messages and progress; honours NO_COLOR."""
    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


# --------------------------------------------------------------------------- errors


def json_requested() -> bool:
    """True inside a command run with ``--json`` (whatever the command calls that parameter)."""
    ctx = get_current_context(silent=True)
    while ctx is not None:
        for param in ctx.command.params:
            if "--json" in getattr(param, "opts", ()) and ctx.params.get(param.name):
                return True
        ctx = ctx.parent
    return False


def report_error(message: str, *, usage: bool, as_json: bool | None = None) -> None:
    """One ``resizer: error:`` line on stderr; with ``--json`` also one JSON object on stdout."""
    print(f"resizer: error: {message}", file=sys.stderr)
    if json_requested() if as_json is None else as_json:
        print(json.dumps({"status": "error", "error": message, "usage_error": usage}), flush=True)


def fail_usage(message: str) -> NoReturn:
    """Print a usage error the way Click does and exit with status 2."""
    _usage_exit(message)


def _usage_exit(message: str) -> NoReturn:
    report_error(message, usage=True)
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
        report_error(str(exc), usage=False)
        raise typer.Exit(EXIT_FAILED)


# --------------------------------------------------------------------------- signals


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_received: list[int] = []  # the stop signals received, first first
_announced: list[bool] = []  # "resizer: terminated" was printed


def _on_stop_signal(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) == 1:  # later ones must not break the cleanup of the first
        raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (no-op elsewhere).

    Only where the signal has its default action: ``nohup``'s ignored SIGHUP stays ignored.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_stop_signal)


def interrupted_exit(exc: KeyboardInterrupt | None = None) -> NoReturn:
    """One line for Ctrl-C (exit 130) or a stop signal (``resizer: terminated``, exit 128 + signal)."""
    signum = getattr(exc, "signum", None) or (_received[0] if _received else None)
    if signum is None:
        print("resizer: interrupted", file=sys.stderr)
        raise typer.Exit(130)
    if not _announced:
        _announced.append(True)
        print("resizer: terminated", file=sys.stderr)
    raise typer.Exit(128 + signum)


# --------------------------------------------------------------------------- warnings and standard output


@contextlib.contextmanager
def library_warnings(debug: bool) -> Iterator[None]:
    """Other libraries' warnings and log messages are shown only with ``--debug``; resizer's own warnings are one line.

    Pillow warns about corrupt EXIF, odd chunks and the like with its own file paths, and
    tifffile logs what it could not parse; the file's outcome is in resizer's result line
    already. ``-W``/``PYTHONWARNINGS`` win for warnings; a configured logging wins for logs.
    """
    if debug:
        yield
        return
    root = logging.getLogger()
    silent = logging.NullHandler() if not root.handlers else None  # else Python's last-resort handler prints
    if silent is not None:
        root.addHandler(silent)
    try:
        with _own_warnings_only(), _quiet_libtiff():
            yield
    finally:
        if silent is not None:
            root.removeHandler(silent)


@contextlib.contextmanager
def _quiet_libtiff() -> Iterator[None]:
    """Silence the libtiff that Pillow loaded: its default handlers print to stderr from C.

    Pillow still raises its own error for a TIFF libtiff cannot decode. Where the library
    cannot be found (not Linux, no libtiff), nothing changes.
    """
    lib = _loaded_libtiff()
    if lib is None:
        yield
        return
    previous = [(setter, setter(None)) for setter in (lib.TIFFSetWarningHandler, lib.TIFFSetErrorHandler)]
    try:
        yield
    finally:
        for setter, handler in previous:
            setter(handler)


def _loaded_libtiff():
    """A ``ctypes`` handle on the libtiff this process already has mapped (Linux), or None."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "/libtiff" in line}
        path = next(p for p in sorted(paths) if os.path.basename(p).startswith(("libtiff-", "libtiff.")))
        lib = ctypes.CDLL(path)
        for setter in (lib.TIFFSetWarningHandler, lib.TIFFSetErrorHandler):
            setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
        return lib
    except (OSError, StopIteration, AttributeError):
        return None


@contextlib.contextmanager
def _own_warnings_only() -> Iterator[None]:
    if sys.warnoptions:
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if str(filename).startswith(_PACKAGE_DIR):
            print(f"resizer: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _buffered_stdout() -> None:
    """Make standard output's binary layer buffered, so that a write is whole or raises.

    Under ``PYTHONUNBUFFERED`` (``python -u``, many containers) ``sys.stdout.buffer`` is
    the raw file, whose ``write`` may write part of an image and return the count: a
    reader that goes away then loses the rest without an error (and exit 0).
    Text stays line-buffered and written through, as ``-u`` asks.
    """
    raw = getattr(sys.stdout, "buffer", None)
    if isinstance(raw, io.RawIOBase):
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), encoding=sys.stdout.encoding, errors=sys.stdout.errors,
                                      line_buffering=True, write_through=True)


def _stdout_closed() -> bool:
    """Flush standard output now; if its reader went away, point it at /dev/null (a quiet exit) and say so."""
    try:
        sys.stdout.flush()
        return False
    except (BrokenPipeError, ValueError):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.__stdout__.fileno())
        return True


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
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto (the fastest precision measured within 0.02 dB of fp32 for these weights on this device, else fp32), fp32, bf16, fp16 or int8 (CPUs with VNNI, weights calibrated for it).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
RayOpt = Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Run the files on a Ray cluster: HOST:PORT of its head, 'auto' (RAY_ADDRESS, else the cluster 'ray start' runs here) or 'local' (a private one for this run). Needs 'resizer[ray]'.", show_default=False)]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="Weights: a model file (.safetensors, or a community .pth/.ckpt), a 'resizer train' run folder, or hf://OWNER/REPO/FILE.safetensors[@REVISION]; the method follows from the file.")]


def _flag_given(args: list[str], flag: str) -> bool:
    """``flag`` among the options (not after ``--``)."""
    return flag in (args[: args.index("--")] if "--" in args else args)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Plain runs keep Click's usage boxes; with ``--json`` a command-line error is also one
    JSON object on stdout (``{"status": "error", "error": ..., "usage_error": true}``).
    A closed standard output makes the run fail (exit 1, or the run's own failure status).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    install_signal_handlers()
    _buffered_stdout()
    code: int | str | None = EXIT_OK
    try:
        with library_warnings(_flag_given(args, "--debug")):
            code = _invoke(args, _flag_given(args, "--json"))
    except SystemExit as exc:
        code = exc.code
    except BrokenPipeError:
        code = EXIT_FAILED
    except KeyboardInterrupt as exc:  # a stop signal outside any command's own handling
        signum = getattr(exc, "signum", None)
        code = 128 + signum if signum else 130
    if _received and not _announced:  # stopped while Click turned the interrupt into exit 130
        _announced.append(True)
        print("resizer: terminated", file=sys.stderr)
        code = 128 + _received[0]
    if _stdout_closed() and not code:
        code = EXIT_FAILED
    sys.exit(code)


def _invoke(args: list[str], as_json: bool) -> int:
    if not as_json:
        app(args=args, prog_name="resizer")  # exits
        return EXIT_OK
    try:
        code = app(args=args, prog_name="resizer", standalone_mode=False)
    except ClickException as exc:  # a bad option or value: Click's message, as a line and a JSON object
        report_error(_click_message(exc), usage=isinstance(exc, ClickUsageError), as_json=True)
        return exc.exit_code
    except typer.Abort:
        return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


def _click_message(exc: ClickException) -> str:
    """Click's message on one line, after the command it is about (``down: No such option: --bogus``)."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    command = " ".join(ctx.command_path.split()[1:]) if ctx is not None else ""
    return f"{command}: {message}" if command else message
