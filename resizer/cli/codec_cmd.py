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
EncodeScaleOpt = Annotated[float, typer.Option("--scale", "-s", help="Integer factor of the learned downscale (2, 3 or 4).")]
PairOpt = Annotated[str, typer.Option("--method", "-m", help="The learned down/up pair (dsn or car).")]


@app.command("encode")
def encode_command(
    inputs: InputsArg,
    output: OutputOpt = None,
    scale: EncodeScaleOpt = 2.0,
    codec: CodecOpt = "jpeg",
    quality: QualityOpt = None,
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
    """Shrink with a learned downscaler, then compress with an image codec; 'resizer decode' restores the size."""
    from ..codec import encode_settings

    execute_batch(lambda: encode_settings(
        scale, codec, quality, method=method, output=output, overwrite=overwrite, skip_existing=skip_existing,
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
        run=RunOptions(device=device, tile=tile, precision=precision, weights=weights),
    ), inputs, as_json=as_json, quiet=quiet, debug=debug, ray=ray)
