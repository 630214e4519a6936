"""``resizer encode`` and ``resizer decode``: parse, then hand everything to :mod:`resizer.codec`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..image_io import DEFAULT_MAX_PIXELS
from ..methods import RunOptions
from .app import DebugOpt, DeviceOpt, JsonOpt, PrecisionOpt, QuietOpt, RayOpt, TileOpt, WeightsOpt, app
from .resize_cmd import (FormatOpt, InputsArg, JobsOpt, MaxOutputPixelsOpt, MaxPixelsOpt, OutputOpt, OverwriteOpt,
                         QualityOpt, SkipOpt, StripOpt, execute_batch)

CodecOpt = Annotated[str, typer.Option("--codec", "-c", help="jpeg, webp, avif or jpeg2000.")]
EncodeScaleOpt = Annotated[Optional[float], typer.Option("--scale", "-s", show_default=False,
                                                          help="Integer factor of the learned downscale (2, 3 or 4; default 2).")]
MaxBytesOpt = Annotated[Optional[int], typer.Option("--max-bytes", show_default=False, metavar="N",
                                                    help="Byte budget per file: search the pipeline (codec alone, pair x2, x3, x4) "
                                                         "and quality for the best decoded PSNR that fits.")]
BppOpt = Annotated[Optional[float], typer.Option("--bpp", show_default=False, metavar="B",
                                                 help="Budget in bits per pixel of the original (like --max-bytes).")]
EnsembleOpt = Annotated[int, typer.Option(
    "--ensemble", metavar="N",
    help="Restoration (dejpeg) as the mean of N flipped/transposed passes: 1, 2, 4 or 8 (N times slower).")]
PairOpt = Annotated[str, typer.Option("--method", "-m", help="The learned down/up pair (dsn or car).")]


@app.command("encode")
def encode_command(
    inputs: InputsArg,
    output: OutputOpt = None,
    scale: EncodeScaleOpt = None,
    codec: CodecOpt = "jpeg",
    quality: QualityOpt = None,
    max_bytes: MaxBytesOpt = None,
    bpp: BppOpt = None,
    method: PairOpt = "dsn",
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    strip: StripOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
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
    """Shrink with a learned downscaler, then compress with an image codec; 'resizer decode' restores the size.

    With --max-bytes or --bpp each file gets the pipeline (codec alone, or the pair at x2, x3, x4)
    and quality that decode best within the budget.
    """
    from ..codec import encode_settings

    execute_batch(lambda: encode_settings(
        scale, codec, quality, method=method, max_bytes=max_bytes, bpp=bpp, output=output, overwrite=overwrite, skip_existing=skip_existing,
        strip=strip, max_pixels=max_pixels, jobs=jobs,
        run=RunOptions(device=device, tile=tile, precision=precision, weights=weights),
    ), inputs, as_json=as_json, quiet=quiet, debug=debug, ray=ray)


@app.command("decode")
def decode_command(
    inputs: InputsArg,
    output: OutputOpt = None,
    fmt: FormatOpt = None,
    quality: QualityOpt = None,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    strip: StripOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    max_output_pixels: MaxOutputPixelsOpt = DEFAULT_MAX_PIXELS,
    jobs: JobsOpt = None,
    device: DeviceOpt = "auto",
    tile: TileOpt = None,
    precision: PrecisionOpt = "auto",
    weights: WeightsOpt = None,
    ensemble: EnsembleOpt = 1,
    ray: RayOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Decompress files made by 'resizer encode' and restore their original size with the paired upscaler."""
    from ..codec import decode_settings

    execute_batch(lambda: decode_settings(
        fmt, output=output, quality=quality, overwrite=overwrite, skip_existing=skip_existing, strip=strip,
        max_pixels=max_pixels, max_output_pixels=max_output_pixels, jobs=jobs,
        run=RunOptions(device=device, tile=tile, precision=precision, weights=weights, restore_passes=ensemble),
    ), inputs, as_json=as_json, quiet=quiet, debug=debug, ray=ray)
