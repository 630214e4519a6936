"""``resizer down`` and ``resizer up``: parse, then hand everything to :mod:`resizer.pipeline`."""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from typing import Annotated, List, Optional

import typer

from ..batch_output import FolderSelection, summary_line
from ..errors import ResizerError, UsageError
from ..geometry import parse_box, parse_scale, round_half_up
from ..image_io import DEFAULT_MAX_PIXELS, EncodeOptions
from ..image_io.write import SUBSAMPLINGS
from ..methods import RunOptions
from ..geometry import SizeSpec
from ..pipeline import BatchSettings, FileResult, run_batch
from .app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DebugOpt,
    DeviceOpt,
    JsonOpt,
    PrecisionOpt,
    QuietOpt,
    RayOpt,
    TileOpt,
    WeightsOpt,
    app,
    interrupted_exit,
    library_warnings,
    report_error,
    stderr_console,
)
from .tile_progress import TileProgress

InputsArg = Annotated[List[str], typer.Argument(help="Image files, folders (recursive), URLs (s3://, gs://, az://, http(s)://; prefixes end in /) or '-' for standard input.", metavar="INPUT", show_default=False)]
ScaleOpts = {  # the example in each command's help is of its own direction
    "down": Annotated[Optional[str], typer.Option("--scale", "-s", help="Factor of at least 1: '--scale 4' gives a quarter of the width and height; or a percentage of the input size ('--scale 25%').", show_default=False)],
    "up": Annotated[Optional[str], typer.Option("--scale", "-s", help="Factor of at least 1: '--scale 2.7' gives 2.7 times the width and height; or a percentage of the input size ('--scale 250%').", show_default=False)],
}
WidthOpt = Annotated[Optional[int], typer.Option("--width", "-W", help="Output width in pixels; the height keeps the aspect ratio.")]
HeightOpt = Annotated[Optional[int], typer.Option("--height", "-H", help="Output height in pixels; the width keeps the aspect ratio.")]
MethodOpt = Annotated[Optional[str], typer.Option("--method", "-m", help="Resizing method (see 'resizer methods').")]
OutputOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="Output file, folder, URL or prefix (s3://, gs://, az://), or '-' for standard output.")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", help="Output format (png, jpeg, webp, tiff, ...); default from the output name.")]
QualityOpt = Annotated[Optional[int], typer.Option("--quality", min=1, max=100, help="Quality of lossy formats (1-100).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files, the input itself included.")]
SkipOpt = Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists (status 'skipped') instead of failing.")]
StripOpt = Annotated[bool, typer.Option("--strip", help="Drop ICC profile, EXIF, DPI and XMP from the output.")]
MaxPixelsOpt = Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse inputs with more pixels than this (decompression bombs).")]
MaxOutputPixelsOpt = Annotated[int, typer.Option("--max-output-pixels", min=1, help="Refuse to make outputs with more pixels than this (checked before resizing).")]
# box geometry (issue 17): sizes that follow each input's shape
FitOpt = Annotated[Optional[str], typer.Option("--fit", help="Largest size inside the box WxH, aspect kept ('320x' or 'x240': one side free). 'down' never enlarges, 'up' never shrinks.", show_default=False)]
FillOpt = Annotated[Optional[str], typer.Option("--fill", help="Cover the box WxH, then crop to it (see --gravity).", show_default=False)]
GravityOpt = Annotated[str, typer.Option("--gravity", help="Where --fill crops: centre, north, south, east, west, north-east, north-west, south-east, south-west, or attention (the most salient region).")]
ShrinkOnLoadOpt = Annotated[bool, typer.Option("--shrink-on-load/--no-shrink-on-load", help="Large JPEG reductions decode at 1/2, 1/4 or 1/8 size in the DCT domain (faster, less memory; within 0.5 dB of the exact path).")]
RestoreOpt = Annotated[Optional[bool], typer.Option("--restore/--no-restore", help="'up' of a JPEG: remove its compression artefacts first with the learned restorer (dejpeg), unless its estimated quality is above 65; lossless inputs are never restored. Default: with learned methods only (--restore for the classical filters too).", show_default=False)]
OnlyShrinkOpt = Annotated[bool, typer.Option("--only-shrink", help="'down --width/--height': inputs already smaller keep their size (still written in the output format).")]
# colour and metadata of outputs (issue 17)
SrgbOpt = Annotated[bool, typer.Option("--srgb", help="Convert from the embedded ICC profile to sRGB (perceptual) and tag the output sRGB (untagged with --strip).")]
StripGpsOpt = Annotated[bool, typer.Option("--strip-gps/--keep-gps", help="Drop the GPS location (EXIF and XMP) from outputs; the rest of the EXIF is kept.")]
ProgressiveOpt = Annotated[bool, typer.Option("--progressive", help="JPEG outputs: progressive scans.")]
SubsamplingOpt = Annotated[Optional[str], typer.Option("--subsampling", help="JPEG outputs: chroma subsampling 4:4:4, 4:2:2 or 4:2:0 (default 4:2:0).", show_default=False)]
LinearOpt = Annotated[bool, typer.Option("--linear", help="Resample in linear light (sRGB decoded first): fine bright "
                                         "detail keeps its brightness. Classical filters only.")]
LosslessOpt = Annotated[bool, typer.Option("--lossless", help="WebP outputs: lossless (--quality is then the compression effort).")]
# batches (issue 17)
IncludeOpt = Annotated[Optional[List[str]], typer.Option("--include", help="Folders: only files matching this glob (path inside the folder or name; repeatable).", show_default=False)]
ExcludeOpt = Annotated[Optional[List[str]], typer.Option("--exclude", help="Folders: skip files matching this glob (repeatable).", show_default=False)]
HiddenOpt = Annotated[bool, typer.Option("--hidden", help="Folders: also read hidden files and folders (names starting with a dot).")]
JobsOpt = Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Files processed at once (default: all cores for classical methods).")]


def _report(results_json: bool, quiet: bool):
    """A callback printing each result as it arrives: JSON lines on stdout, errors on stderr."""

    def on_result(result: FileResult) -> None:
        if results_json:
            print(json.dumps(result.to_json()), flush=True)
        if result.status != "error" and not quiet:  # a failed file gets its one error line, nothing more
            for warning in result.warnings:
                print(f"resizer: warning: {warning}", file=sys.stderr)
        if result.status == "error":
            print(f"resizer: error: {result.error}", file=sys.stderr)
        elif result.status == "skipped" and not quiet:
            print(f"resizer: skipped: {result.error} (use --overwrite to replace it)", file=sys.stderr)

    return on_result


def size_spec(direction: str, scale: str | None, width: int | None, height: int | None, fit: str | None,
              fill: str | None, gravity: str, only_shrink: bool, max_output_pixels: int) -> SizeSpec:
    """The ``SizeSpec`` of the size options, checked against the direction and the output limit."""
    factor, percent = parse_scale(scale)
    spec = SizeSpec(scale=factor, percent=percent, width=width, height=height, fit=parse_box(fit, "--fit"),
                    fill=parse_box(fill, "--fill", partial=False), gravity=gravity, only_shrink=only_shrink)
    spec.check_direction(direction)  # type: ignore[arg-type]
    check_size_options(direction, factor, width, height, max_output_pixels)
    for box in (spec.fit, spec.fill):
        if box is not None and (box[0] or 1) * (box[1] or 1) > max_output_pixels:
            raise UsageError(f"the box {box[0] or ''}x{box[1] or ''} has more than {max_output_pixels} pixels "
                             "(--max-output-pixels)")
    return spec


def encode_options(progressive: bool, subsampling: str | None, lossless: bool) -> EncodeOptions | None:
    """The per-format options, or None when none is given (the writers' defaults)."""
    if subsampling is not None and subsampling.strip() not in SUBSAMPLINGS:
        raise UsageError(f"--subsampling {subsampling}: give one of {', '.join(SUBSAMPLINGS)}")
    if not (progressive or subsampling or lossless):
        return None
    return EncodeOptions(progressive, subsampling.strip() if subsampling else None, lossless)


def check_size_options(direction: str, scale: float | None, width: int | None, height: int | None,
                       max_output_pixels: int) -> None:
    """Refuse sizes that no input could be resized to within ``max_output_pixels``, before any file is read.

    ``--width``/``--height`` above the limit, or a ``--scale`` that makes even a 1x1 image
    too large (``up --scale 1e308``, ``down --scale 1e-9``), are usage errors. Whether one
    file's output fits is checked per file, once its size is known.
    """
    for name, value in (("--width", width), ("--height", height)):
        if value is not None and value > max_output_pixels:
            raise UsageError(f"{name} {value}: every output would have more than {max_output_pixels} pixels "
                             "(--max-output-pixels)")
    if scale is None or not (math.isfinite(scale) and scale > 0):
        return  # SizeSpec says what is wrong with it
    factor = scale if direction == "up" else 1.0 / scale
    side = max(1, round_half_up(factor)) if math.isfinite(factor) and factor <= max_output_pixels else None
    if side is None or side * side > max_output_pixels:
        raise UsageError(f"--scale {scale:g}: even a 1x1 image would give an output of more than {max_output_pixels} "
                         "pixels (--max-output-pixels)")


def _run(direction: str, inputs: list[str], *, scale, width, height, box, batch, method, output, fmt, quality, overwrite,
         skip_existing, strip, max_pixels, max_output_pixels, jobs, device, tile, precision, weights, linear, as_json,
         quiet, debug, ray=None) -> None:
    def settings() -> BatchSettings:
        made = BatchSettings(
            direction=direction,  # type: ignore[arg-type]
            size=size_spec(direction, scale, width, height, max_output_pixels=max_output_pixels, **box),
            method=method, output=output, format=fmt, quality=quality, overwrite=overwrite,
            skip_existing=skip_existing, strip=strip, max_pixels=max_pixels, max_output_pixels=max_output_pixels,
            jobs=jobs, run=RunOptions(device=device, tile=tile, precision=precision, weights=weights, linear_light=linear),
            **{**batch, "encode": encode_options(*batch["encode"])},
        )
        if made.size.empty and direction == "down":
            raise UsageError("give one of --scale, --width, --height, --fit or --fill")
        return made

    execute_batch(settings, inputs, as_json=as_json, quiet=quiet, debug=debug, ray=ray)


def batch_executor(ray: str | None, settings: BatchSettings):
    """The executor for ``--ray ADDRESS`` (imported only then: Ray is an optional extra), else None (local)."""
    if ray is None:
        return None
    from ..distributed import RayExecutor

    return RayExecutor(ray, num_cpus=settings.jobs)


def execute_batch(make_settings, inputs: list[str], *, as_json: bool, quiet: bool, debug: bool,
                  ray: str | None = None) -> None:
    """Build the settings, run the batch with its reporting, and exit with the batch's status.

    ``make_settings()`` runs inside the error handling, so a bad option is a one-line
    usage error like any other. Shared by ``down``/``up`` and ``encode``/``decode``;
    ``ray`` is ``--ray``'s address (:mod:`resizer.distributed`).
    """
    started = time.perf_counter()
    try:
        with library_warnings(debug):
            settings = make_settings()
            console = stderr_console()
            tiles = TileProgress(console) if not quiet and not as_json and console.is_terminal else None
            settings = tiles.attach(settings) if tiles else settings
            report = tiles.wrap(_report(as_json, quiet)) if tiles else _report(as_json, quiet)
            show_progress = tiles is not None and (len(inputs) > 1 or _has_folder(inputs))
            executor = batch_executor(ray, settings)
            try:
                if show_progress:
                    results = _run_with_progress(inputs, settings, report, console, tiles, executor)
                else:
                    results = run_batch(inputs, settings, on_result=report, executor=executor)
            finally:
                if tiles:
                    tiles.close()
    except ResizerError as exc:
        if debug:
            traceback.print_exc()
        usage = isinstance(exc, UsageError)
        report_error(str(exc), usage=usage, as_json=as_json)
        raise typer.Exit(EXIT_USAGE if usage else EXIT_FAILED)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (resizer.errors.Terminated)
        interrupted_exit(exc)
    if debug:
        for result in results:
            if result.status == "error":
                print(f"resizer: debug: {result.to_json()}", file=sys.stderr)
                if result.detail:
                    print(result.detail, end="", file=sys.stderr)
    if not quiet and (len(inputs) > 1 or _has_folder(inputs)):
        print(f"resizer: {summary_line((r.status for r in results), time.perf_counter() - started)}", file=sys.stderr)
    failed = [r for r in results if r.status == "error"]
    if failed and all(r.usage_error for r in failed):
        raise typer.Exit(EXIT_USAGE)  # e.g. 'up' without a size of an image that has no pairing metadata
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _has_folder(inputs: list[str]) -> bool:
    """A local folder, or a URL prefix ending in ``/`` (no store is asked just for the summary line)."""
    from pathlib import Path

    from ..storage import is_url

    return any(i.endswith("/") if is_url(i) else i != "-" and Path(i).is_dir() for i in inputs)


def _run_with_progress(inputs, settings, report, console, tiles: TileProgress, executor=None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..pipeline import plan_jobs

    total = len(plan_jobs(inputs, settings)[0])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"resizing {settings.tag or settings.direction}", total=total)
        tiles.use(progress)  # the image's tiles as a second line

        def on_result(result: FileResult) -> None:
            report(result)
            progress.advance(task)

        return run_batch(inputs, settings, on_result=on_result, executor=executor)


# ``down``-only options stay accepted by ``up`` (which refuses them with a reason) but out of its help.
_UP_HIDDEN = {
    "only_shrink": Annotated[bool, typer.Option("--only-shrink", hidden=True)],
    "shrink_on_load": Annotated[bool, typer.Option("--shrink-on-load/--no-shrink-on-load", hidden=True)],
}
# ``up``-only options: accepted by ``down`` (where nothing is restored) but out of its help.
_DOWN_HIDDEN = {"restore": Annotated[Optional[bool], typer.Option("--restore/--no-restore", hidden=True)]}


def _make_command(direction: str, help_text: str):
    def command(
        inputs: InputsArg,
        scale: Optional[str] = None,
        width: WidthOpt = None,
        height: HeightOpt = None,
        method: MethodOpt = None,
        output: OutputOpt = None,
        fmt: FormatOpt = None,
        quality: QualityOpt = None,
        overwrite: OverwriteOpt = False,
        skip_existing: SkipOpt = False,
        strip: StripOpt = False,
        fit: FitOpt = None,
        fill: FillOpt = None,
        gravity: GravityOpt = "centre",
        only_shrink: OnlyShrinkOpt = False,
        shrink_on_load: ShrinkOnLoadOpt = True,
        restore: RestoreOpt = None,
        srgb: SrgbOpt = False,
        strip_gps: StripGpsOpt = True,
        progressive: ProgressiveOpt = False,
        subsampling: SubsamplingOpt = None,
        lossless: LosslessOpt = False,
        linear: LinearOpt = False,
        include: IncludeOpt = None,
        exclude: ExcludeOpt = None,
        hidden: HiddenOpt = False,
        max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
        max_output_pixels: MaxOutputPixelsOpt = DEFAULT_MAX_PIXELS,
        jobs: JobsOpt = None,
        device: DeviceOpt = "auto",
        tile: TileOpt = None,
        precision: PrecisionOpt = "auto",
        weights: WeightsOpt = None,
        ray: RayOpt = None,
        as_json: JsonOpt = False,
        quiet: QuietOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        box = dict(fit=fit, fill=fill, gravity=gravity, only_shrink=only_shrink)
        selection = FolderSelection(tuple(include or ()), tuple(exclude or ()), hidden)
        selection = dict(selection=selection, shrink_on_load=shrink_on_load, srgb=srgb, strip_gps=strip_gps,
                         encode=(progressive, subsampling, lossless), restore=restore if direction == "up" else False)
        _run(direction, inputs, scale=scale, width=width, height=height, box=box, batch=selection, method=method, output=output, fmt=fmt,
             quality=quality, overwrite=overwrite, skip_existing=skip_existing, strip=strip, max_pixels=max_pixels,
             max_output_pixels=max_output_pixels, jobs=jobs, device=device, tile=tile, precision=precision,
             weights=weights, linear=linear, as_json=as_json, quiet=quiet, debug=debug, ray=ray)

    command.__doc__ = help_text
    # typer reads the annotations: give each direction its own --scale help, and hide down's options from up
    command.__annotations__["scale"] = ScaleOpts[direction]
    command.__annotations__.update(_UP_HIDDEN if direction == "up" else _DOWN_HIDDEN)
    return command


app.command("down")(_make_command("down", "Make images smaller: '--scale 4' gives a quarter of the width and height."))
app.command("up")(_make_command("up", "Make images larger: '--scale 2.7' gives 2.7 times the width and height."))


@app.command("methods")
def methods_command(as_json: JsonOpt = False) -> None:
    """List the resizing methods and the directions they serve."""
    from ..methods import list_methods

    for method in list_methods():
        if as_json:
            print(json.dumps({"name": method.name, "directions": sorted(method.directions), "summary": method.summary}))
        else:
            print(f"{method.name:16} {'/'.join(sorted(method.directions)):8} {method.summary}")
