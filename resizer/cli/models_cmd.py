"""``resizer models``: list, inspect, download, import and remove weights (bundled and the user's own)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..weights import WeightsEntry, get_entry, manifest_path, model_location, pull_weights, read_manifest
from ..weights.user_manifest import read_user_models
from .app import JsonOpt, app, run_api, stderr_console

models_app = typer.Typer(
    name="models",
    help="List, inspect, download and import pretrained weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models_app, name="models")


def _stdout() -> Console:
    """The table's console: the terminal's width, or wide enough that a pipe or file gets every column.

    (Rich would assume 80 columns off a terminal and drop the last ones of a wide table.)
    """
    import os
    import sys

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True, width=width)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


# A restoration family's scores are per JPEG quality: the list shows its gain at these (the targets).
LISTED_RESTORE_QUALITIES = (10, 20, 30)


def score_label(entry: WeightsEntry) -> str:
    """Set5 PSNR per scale from the manifest's measured scores (``x2 37.1  x4 31.0``), ``-`` if none.

    A restoration model (scores at ``x1`` per JPEG quality) shows its gain over the decoded
    file instead: ``q10 +0.97  q20 +1.30  q30 +1.39 dB``.
    """
    by_scale = entry.scores.get("set5") or {}
    shown = [f"{key} {metrics['psnr']:.2f}" for key, metrics in by_scale.items()
             if "psnr" in metrics and key in ("x2", "x3", "x4")]
    gains = by_scale.get("x1") or {}
    restored = [f"q{q} {gains[f'gain_q{q}']:+.2f}" for q in LISTED_RESTORE_QUALITIES if f"gain_q{q}" in gains]
    if restored:
        shown.append("  ".join(restored) + " dB")
    return "  ".join(shown) or "-"


def _family_info(family: str, entries: list[WeightsEntry], json_out: bool) -> None:
    """``models info car``: the family's files, one line each."""
    if json_out:
        for entry in entries:
            print(json.dumps({**_summary(entry, run_api(lambda e=entry: model_location(e))), "scores": entry.scores}))
        return
    out = _stdout()
    out.print(f"[bold]{family}[/bold]  {len(entries)} weights file(s); 'resizer models info NAME' shows one in full")
    for entry in entries:
        out.print(f"  {entry.name:<16} {entry.task:<5} {entry.use:<6} {entry.scales_label:<12} {entry.arch:<12} "
                  f"{_human_size(entry.size):>9}  set5 {score_label(entry)}", markup=False)


def _use_label(entry: WeightsEntry) -> str:
    """``view`` or ``encode (only 'resizer encode' picks it; ...)`` for ``models info``."""
    if not entry.encode_only:
        return entry.use
    return "encode (only 'resizer encode' picks this pair; its thumbnails are not for viewing)"


def _imported_info(model: Any, json_out: bool) -> None:
    if json_out:
        print(json.dumps({**dataclasses.asdict(model), "location": "imported"}))
        return
    out = _stdout()
    out.print(f"[bold]{model.name}[/bold]  imported, read by method '{model.method}', architecture '{model.arch}'")
    for key, value in [("scale", model.scale_label), ("file", model.path), ("size", f"{model.size:,} bytes"),
                       ("sha256", model.sha256), ("parameters", f"{model.params:,}")]:
        out.print(f"  {key:<11} {value}", markup=False)


def _summary(entry: WeightsEntry, location: str) -> dict[str, Any]:
    return {
        "name": entry.name,
        "family": entry.family,
        "arch": entry.arch,
        "task": entry.task,
        "use": entry.use,
        "scales": entry.scales,
        "params": entry.params,
        "size": entry.size,
        "sha256": entry.sha256,
        "file": entry.file,
        "source": entry.source,
        "license": entry.license,
        "location": location,
    }


@models_app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """List the weights of the manifest and where each file is (bundled, cached, remote)."""
    entries = run_api(read_manifest)
    rows = [(entry, run_api(lambda e=entry: model_location(e))) for entry in entries]
    imported = run_api(read_user_models)
    if json_out:
        for entry, location in rows:
            print(json.dumps({**_summary(entry, location), "scores": entry.scores}))
        for model in imported:
            print(json.dumps({**dataclasses.asdict(model), "location": "imported"}))
        return
    if not rows and not imported:
        stderr_console().print(f"No weights in {run_api(manifest_path)}.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    for column, justify in [
        ("NAME", "left"), ("TASK", "left"), ("USE", "left"), ("SCALES", "left"), ("PARAMS", "right"),
        ("SIZE", "right"), ("SHA256", "left"), ("LOCATION", "left"), ("SET5 PSNR", "left"),
    ]:  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=column != "SET5 PSNR")
    for entry, location in rows:
        table.add_row(
            entry.name, entry.task, entry.use, entry.scales_label, f"{entry.params:,}",
            _human_size(entry.size), entry.sha256[:12], location, score_label(entry),
        )  # fmt: skip
    for model in imported:
        table.add_row(model.name, model.task, "view", model.scale_label, f"{model.params:,}" if model.params else "-",
                      _human_size(model.size), model.sha256[:12], "imported", "-")
    _stdout().print(table)


@models_app.command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="Weights name, method (family) or imported name, as in 'resizer models list'.")],
    json_out: JsonOpt = False,
) -> None:
    """Show one entry in full (or, for a method such as 'car', its files): architecture, config, file, hub source, training recipe, scores."""
    family = [e for e in run_api(read_manifest) if e.family == name.strip().lower()]
    if family and not any(e.name == name.strip() for e in family):
        _family_info(name.strip().lower(), family, json_out)
        return
    imported = [m for m in run_api(read_user_models) if m.name == name.strip()]
    if imported:
        _imported_info(imported[0], json_out)
        return
    entry = run_api(lambda: get_entry(name))
    location = run_api(lambda: model_location(entry))
    if json_out:
        print(json.dumps({**entry.to_dict(), "use": entry.use, "location": location}))
        return
    out = _stdout()
    out.print(f"[bold]{entry.name}[/bold]  {entry.task}scaling method '{entry.family}', architecture '{entry.arch}'")
    lines = [
        ("scales", entry.scales_label),
        ("use", _use_label(entry)),
        ("config", json.dumps(entry.config, sort_keys=True)),
        ("parameters", f"{entry.params:,}"),
        ("file", f"{entry.file} ({entry.size:,} bytes)"),
        ("sha256", entry.sha256),
        ("license", entry.license),
        ("source", entry.source),
        ("hub", f"{entry.repo}@{entry.revision}"),
        ("location", location),
    ]
    for key, value in lines:
        out.print(f"  {key:<11} {value}", markup=False)
    out.print("  recipe", markup=False)
    for key, value in entry.recipe.items():
        out.print(f"    {key:<12} {value}", markup=False)
    if entry.scores:
        out.print("  scores", markup=False)
        for dataset, by_scale in entry.scores.items():
            for scale_key, metrics in by_scale.items():
                shown = "  ".join(f"{k} {v:.4f}" if k == "ssim" else f"{k} {v:.2f}" for k, v in metrics.items())
                out.print(f"    {dataset:<8} {scale_key:<5} {shown}", markup=False)


@models_app.command("pull")
def pull_cmd(
    names: Annotated[list[str], typer.Argument(help="Weights names, as in 'resizer models list'.")],
    json_out: JsonOpt = False,
) -> None:
    """Download weights into the Hugging Face cache and verify them, for offline use."""
    entries = run_api(read_manifest)
    for name in names:  # unknown names are a usage error before anything is downloaded
        run_api(lambda n=name: get_entry(n, entries))
    failed = False
    for name in names:
        try:
            result = run_api(lambda n=name: pull_weights(n))
        except typer.Exit:
            failed = True
            continue
        if json_out:
            row = {"name": name, "status": result.status, "path": str(result.path), "sha256": result.entry.sha256}
            print(json.dumps(row))
        elif result.status == "bundled":
            print(f"{name}: bundled with resizer, nothing to download ({result.path})")
        elif result.status == "cached":
            print(f"{name}: already in the cache, verified ({result.path})")
        else:
            print(f"{name}: downloaded and verified ({result.path})")
    if failed:
        raise typer.Exit(1)


@models_app.command("import")
def import_cmd(
    file: Annotated[str, typer.Argument(help="A model file: .pth, .ckpt or .safetensors (community or resizer's own).")],
    name: Annotated[Optional[str], typer.Option("--name", help="The --method name to give it (default: from the file name).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Record a local model file in your user manifest, so that '--method NAME' runs it."""
    from ..weights.importing import import_model

    model, where = run_api(lambda: import_model(file, name))
    if json_out:
        print(json.dumps({**dataclasses.asdict(model), "manifest": str(where)}))
        return
    print(f"{model.name}: {model.arch} {model.scale_label}, read by method '{model.method}' "
          f"(sha256 {model.sha256[:12]}); recorded in {where}")


@models_app.command("remove")
def remove_cmd(
    name: Annotated[str, typer.Argument(help="An imported name, as in 'resizer models list'.")],
) -> None:
    """Forget an imported model (its file is left where it is)."""
    from ..weights.user_manifest import remove_user_model

    model = run_api(lambda: remove_user_model(name))
    print(f"{model.name}: removed from the imported models ({model.path} is left alone)")
