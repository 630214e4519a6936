"""``resizer eval``: parse, then hand everything to :func:`resizer.evaluation.evaluate`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..methods import RunOptions
from .app import (DebugOpt, DeviceOpt, JsonOpt, PrecisionOpt, QuietOpt, TileOpt, WeightsOpt, app, fail_usage, run_api,
                  stderr_console)

DatasetsArg = Annotated[List[Path], typer.Argument(help="Dataset folders of HR images (e.g. .../bench/set5).",
                                                    show_default=False)]
ScalesOpt = Annotated[Optional[str], typer.Option("--scale", "-s", help="Comma-separated scale factors > 1, e.g. 2,3,4 "
                                                  "or 2.5 (required unless --restore).", show_default=False)]
RestoreOpt = Annotated[Optional[str], typer.Option(
    "--restore", help="Score a restoration method (dejpeg) on JPEGs of the sets at each --quality (default "
    "10,20,30,...,95) against the decoded files.", metavar="METHOD", show_default=False)]
DownOpt = Annotated[str, typer.Option("--down", help="Method that makes the LR images (see 'resizer methods').")]
UpOpt = Annotated[str, typer.Option("--up", help="Method that brings them back to the HR size.")]
CodecOpt = Annotated[Optional[str], typer.Option("--codec", help="Rate-distortion mode: jpeg, webp, avif or jpeg2000.")]
QualitiesOpt = Annotated[str, typer.Option("--quality", help="Codec qualities, comma-separated (with --codec).")]
MaxBppOpt = Annotated[Optional[float], typer.Option("--max-bpp", min=0, help="With --codec: summarize only the points at or below this many bits per pixel.")]
_DEFAULT_QUALITIES = "20,40,60,80,95"  # --codec's; --restore's default is its own list
UseOpt = Annotated[str, typer.Option("--use", help="Which pair a learned --down/--up method runs: view (the pairs "
                                     "'down' picks, whose thumbnails are seen) or encode (the pairs 'resizer encode' "
                                     "picks, encode-only ones first).", metavar="view|encode")]
SaveOpt = Annotated[Optional[Path], typer.Option("--save", help="Write the LR and SR images under DIR/<dataset>/x<scale>/.",
                                                 metavar="DIR")]


def parse_scales(text: str) -> list[float]:
    """``"2,3,4"`` -> ``[2.0, 3.0, 4.0]``; anything else is a usage error."""
    scales = []
    for part in text.split(","):
        try:
            scales.append(float(part.strip()))
        except ValueError:
            fail_usage(f"invalid --scale '{text}': give comma-separated numbers such as 2,3,4")
    return scales


@app.command("eval")
def eval_command(
    datasets: DatasetsArg,
    scale: ScalesOpt = None,
    down: DownOpt = "matlab-bicubic",
    up: UpOpt = "matlab-bicubic",
    save: SaveOpt = None,
    codec: CodecOpt = None,
    quality: QualitiesOpt = _DEFAULT_QUALITIES,
    max_bpp: MaxBppOpt = None,
    restore: RestoreOpt = None,
    device: DeviceOpt = "auto",
    tile: TileOpt = None,
    precision: PrecisionOpt = "auto",
    weights: WeightsOpt = None,
    use: UseOpt = "view",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score a down/up pair on benchmark sets with the papers' protocol (PSNR/SSIM on luma)."""
    from ..evaluation import evaluate

    from ..weights import USES

    if use not in USES:
        fail_usage(f"--use takes {' or '.join(USES)}, not '{use}'")
    options = RunOptions(device=device, tile=tile, precision=precision, weights=weights, use=use)
    if restore is not None:
        _restoration(datasets, restore, scale, quality, codec, options, as_json, debug)
        return
    if scale is None:
        fail_usage("Missing option '--scale' / '-s'.")
    scales = parse_scales(scale)
    if codec is not None:
        _rate_distortion(datasets, scales, codec, quality, down, up, options, as_json, debug, max_bpp)
        return
    if max_bpp is not None:
        fail_usage("--max-bpp goes with --codec")
    console = stderr_console()
    show_progress = not quiet and console.is_terminal

    def run() -> list:
        results = []
        progress_bar, task, on_progress = None, None, None
        if show_progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            progress_bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=console, transient=True)
            task = progress_bar.add_task("evaluating", total=None)

            def on_progress(done: int, total: int, label: str) -> None:
                progress_bar.update(task, completed=done, total=total, description=label)

            progress_bar.start()
        try:
            for result in evaluate(datasets, scales, down=down, up=up, options=options,
                                   save_dir=save, progress=on_progress):
                results.append(result)
                if as_json:
                    print(json.dumps(result.to_json()), flush=True)
        finally:
            if progress_bar is not None:
                progress_bar.stop()
        return results

    results = run_api(run, debug=debug)
    if not as_json:
        _print_table(results)


def _print_table(results: list) -> None:
    from rich.console import Console
    from rich.table import Table

    # No box, one space of padding: the eight columns fit an 80-column terminal in full.
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    longest = max([len(r.down) for r in results] + [len(r.up) for r in results] + [4])
    # Optional columns: the bicubic-up baseline from the same LR (a learned --up), and how
    # close the LR stays to the MATLAB-bicubic one (a learned --down).
    baseline = any(r.bicubic_psnr is not None for r in results)
    thumbnail = any(r.lr_psnr is not None for r in results)
    columns = [("dataset", "left"), ("scale", "right"), ("down", "left"), ("up", "left"), ("PSNR", "right"),
               ("SSIM", "right")]
    columns += [("bicubic", "right"), ("gain", "right")] if baseline else []
    columns += [("LR PSNR", "right")] if thumbnail else []
    for name, justify in columns + [("images", "right"), ("seconds", "right")]:
        table.add_column(name, justify=justify, no_wrap=True,
                         min_width=longest if name in ("down", "up") else None)
    for r in results:
        row = [r.dataset, f"x{r.scale:g}", r.down, r.up, f"{r.psnr:.2f}", f"{r.ssim:.4f}"]
        if baseline:
            row += [f"{r.bicubic_psnr:.2f}", f"{r.psnr - r.bicubic_psnr:+.2f}"] if r.bicubic_psnr is not None else ["", ""]
        if thumbnail:
            row += [f"{r.lr_psnr:.2f}" if r.lr_psnr is not None else ""]
        table.add_row(*row, str(len(r.images)), f"{r.seconds:.1f}")
    console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    if not console.is_terminal:  # a pipe or file: never truncate to 80 columns
        console = Console(no_color=True, highlight=False, width=200)
    console.print(table)


def _rate_distortion(datasets, scales, codec, quality, down, up, options, as_json, debug, max_bpp) -> None:
    """``--codec``: the codec alone, MATLAB bicubic around it, and the learned pair around it."""
    from ..codec import DEFAULT_PAIR, rate_distortion, summarize

    if len(scales) != 1:
        fail_usage("--codec takes one --scale")
    pair = DEFAULT_PAIR if down == "matlab-bicubic" else down
    if up not in ("matlab-bicubic", pair):
        fail_usage(f"--codec compares a down/up pair: give --down {pair} (and --up {pair} or no --up)")
    try:
        qualities = [int(q) for q in quality.split(",")]
    except ValueError:
        fail_usage(f"invalid --quality '{quality}': give comma-separated integers such as 20,40,60")
    points = run_api(lambda: rate_distortion(datasets, scales[0], codec, qualities, pair, options,
                                             rate_targeted=True), debug=debug)
    summaries = summarize(points, max_bpp)
    if as_json:
        for record in [*points, *summaries]:
            print(json.dumps(record.to_json()), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for name in ("dataset", "pipeline", "codec", "quality", "bpp", "PSNR", "SSIM", "gain"):
        table.add_column(name, justify="left" if name in ("dataset", "pipeline", "codec") else "right", no_wrap=True)
    for p in points:
        table.add_row(p.dataset, _pipeline_label(p.pipeline, p.scale, pair, codec), p.codec, str(p.quality), f"{p.bpp:.3f}", f"{p.psnr:.2f}", f"{p.ssim:.4f}",
                      "" if p.gain is None else f"{p.gain:+.2f}")
    console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    if not console.is_terminal:
        console = Console(no_color=True, highlight=False, width=200)
    console.print(table)
    summary = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold",
                    title=None if max_bpp is None else f"at or below {max_bpp:g} bpp", title_justify="left")
    for name in ("dataset", "pipeline", "against", "points", "BD-PSNR", "BD-rate", "min gain"):
        summary.add_column(name, justify="left" if name in ("dataset", "pipeline", "against") else "right",
                           no_wrap=True)

    def cell(value, text: str) -> str:
        return "-" if value is None else text.format(value)

    for r in summaries:
        summary.add_row(r.dataset, _pipeline_label(r.pipeline, r.scale, pair, codec),
                        _pipeline_label(r.reference, r.scale, pair, codec),
                        str(r.points),
                        cell(r.bd_psnr, "{:+.2f} dB"), cell(r.bd_rate, "{:+.1f} %"), cell(r.min_gain, "{:+.2f}"))
    console.print()
    console.print(summary)


def _pipeline_label(pipeline: str, scale: float, pair: str, codec: str) -> str:
    """How the tables name a pipeline: the codec alone, a resampler around it, or the rate-targeted encode.

    The rate-targeted label lists what ``encode --max-bytes`` searches (:func:`resizer.rate_encode.candidates`).
    """
    if pipeline == "plain":
        return "codec only"
    if pipeline == "rate":
        if codec == "jpeg":
            return f"rate-targeted (best of jpeg, {pair} x2-x4, bicubic x2; each ± dejpeg)"
        return f"rate-targeted (best of {codec}, {pair} x2-x4)"
    return f"{pipeline} x{scale:g} + codec"


def _restoration(datasets, method, scale, quality, codec, options, as_json, debug) -> None:
    """``--restore``: JPEGs of every image at each quality, restored at scale 1, against the decoded files."""
    from ..evaluation import evaluate_restoration
    from ..restoration import SCORED_QUALITIES

    if scale is not None and parse_scales(scale) != [1.0]:
        fail_usage("--restore keeps the size: leave out --scale (or give --scale 1)")
    if codec not in (None, "jpeg"):
        fail_usage(f"--restore restores JPEG files, not --codec {codec}")
    if quality == _DEFAULT_QUALITIES:
        qualities = list(SCORED_QUALITIES)
    else:
        try:
            qualities = [int(q) for q in quality.split(",")]
        except ValueError:
            fail_usage(f"invalid --quality '{quality}': give comma-separated integers such as 10,20,30")
    results = run_api(lambda: list(evaluate_restoration(datasets, qualities, method, options)), debug=debug)
    if as_json:
        for r in results:
            print(json.dumps(r.to_json()), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for name in ("dataset", "method", "quality", "JPEG PSNR", "PSNR", "gain", "JPEG SSIM", "SSIM", "images"):
        table.add_column(name, justify="left" if name in ("dataset", "method") else "right", no_wrap=True)
    for r in results:
        table.add_row(r.dataset, r.method, str(r.quality), f"{r.decoded_psnr:.2f}", f"{r.psnr:.2f}", f"{r.gain:+.2f}",
                      f"{r.decoded_ssim:.4f}", f"{r.ssim:.4f}", str(r.images))
    console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    if not console.is_terminal:
        console = Console(no_color=True, highlight=False, width=200)
    console.print(table)
