"""``resizer train``: its flags are generated from the training options' schema, then it calls ``train``.

Every flag (name, default, help, range) comes from :data:`resizer.training.OPTIONS`, the
same list that gives ``TrainConfig`` its fields and the recipe its command line; this
module only adds ``--json``/``--quiet``/``--debug`` and prints progress.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from typing import Annotated, Any, Callable, List, Optional

import typer

from ..errors import UsageError
from ..training import OPTIONS, Option, config_from_cli
from .app import DebugOpt, JsonOpt, QuietOpt, app, fail_usage, run_api, stderr_console

_OUTPUT = {"json_out": JsonOpt, "quiet": QuietOpt, "debug": DebugOpt}


def _annotation(o: Option) -> Any:
    """``Annotated[type, typer.Argument/Option(...)]`` of one option, as a hand-written signature would say it."""
    if o.argument:
        return Annotated[o.cli_type, typer.Argument(help=o.help)]
    kind = List[o.cli_type] if o.multiple else o.cli_type
    if not o.required and o.cli_default is None:
        kind = Optional[kind]
    names = (o.flag, o.short) if o.short else (o.flag,)
    extra = {"min": o.min} if o.min is not None else {}
    return Annotated[kind, typer.Option(*names, help=o.help, **extra)]


def _signature() -> inspect.Signature:
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(o.param, keyword, annotation=_annotation(o),
                                default=inspect.Parameter.empty if (o.required or o.argument) else o.cli_default)
              for o in OPTIONS if o.flag is not None]
    params += [inspect.Parameter(name, keyword, annotation=kind, default=False) for name, kind in _OUTPUT.items()]
    return inspect.Signature(params, return_annotation=None)


def _printer(arch: str, scales: Any, steps: int, json_out: bool, quiet: bool) -> Callable[[dict[str, Any]], None]:
    console = stderr_console()
    started = time.perf_counter()

    def progress(event: dict[str, Any]) -> None:
        if json_out:
            print(json.dumps(event), flush=True)
            return
        if quiet:
            return
        kind = event["event"]
        if kind == "start":
            console.print(f"training {arch} x{'/'.join(f'{s:g}' for s in scales)} on {event['images']} images, "
                          f"{event['hardware']} ({event['device']}); run folder {event['run_dir']}; "
                          f"from step {event['step']} to {event['steps']}")
        elif kind == "step":
            rate = event["steps_per_s"]
            eta = (steps - event["step"]) / rate if rate > 0 else 0
            console.print(f"step {event['step']}/{steps}  loss {event['loss']:.6f}  lr {event['lr']:.3g}  "
                          f"{rate:.2f} step/s  eta {eta / 60:.0f} min")
        elif kind == "val":
            scores = "  ".join(f"{k} {v:.2f} dB" for k, v in event["psnr"].items())
            console.print(f"val at step {event['step']}: {scores}")
        elif kind == "checkpoint":
            console.print(f"checkpoint {event['path']}")
        elif kind == "export":
            console.print(f"exported {event['name']} -> {event['file']} ({event['manifest']}): "
                          f"{json.dumps(event['scores'])}")
        elif kind == "done":
            what = "stopped (resume with --resume)" if event["stopped"] else "done"
            console.print(f"{what} at step {event['step']} in {time.perf_counter() - started:.0f} s")
        sys.stderr.flush()

    return progress


def train_command(**params: Any) -> None:
    """Train an upscaler on random patches of HR images; checkpoint, resume, export."""
    from ..training import train

    json_out, quiet, debug = (params.pop(name) for name in _OUTPUT)
    try:
        cfg = config_from_cli(params)
    except UsageError as exc:
        fail_usage(str(exc))
    progress = _printer(cfg.arch, params["scale"], cfg.steps, json_out, quiet)
    result = run_api(lambda: train(cfg, progress=progress), debug=debug)
    if result.stopped:
        raise typer.Exit(130)


train_command.__signature__ = _signature()  # type: ignore[attr-defined]
train_command.__annotations__ = {p.name: p.annotation for p in train_command.__signature__.parameters.values()}
app.command("train")(train_command)
