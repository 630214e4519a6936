"""``resizer bench``: parse, then hand everything to :mod:`resizer.bench`."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from .app import DebugOpt, DeviceOpt, JsonOpt, TileOpt, app, run_api

BenchMethodOpt = Annotated[Optional[List[str]], typer.Option(
    "--method", "-m", help="Method to measure (repeatable): a learned method, edsr-baseline, rrdbnet, pillow-bicubic "
    "or a classical method. Default: every learned method and reference network.")]
BenchScaleOpt = Annotated[Optional[List[float]], typer.Option("--scale", "-s", help="Upscaling factor (repeatable). Default: 2 and 4.")]
MegapixelsOpt = Annotated[float, typer.Option("--megapixels", help="Input image size in megapixels (rrdbnet gets 1/16).")]
BenchPrecisionOpt = Annotated[Optional[List[str]], typer.Option(
    "--precision", help="Precision to run the networks in (repeatable): fp32, bf16, fp16, int8 or auto (a learned "
    "method's measured choice). Default: fp32. EDSR-baseline, the yardstick, always runs fp32.")]
ChecksOpt = Annotated[bool, typer.Option(
    "--checks", help="Also measure peak RSS of a 3 MP image x2 (subprocess) and tiling overhead on 1 MP; slow on CPU.")]


@app.command("bench")
def bench(
    method: BenchMethodOpt = None,
    scale: BenchScaleOpt = None,
    megapixels: MegapixelsOpt = 0.1,
    device: DeviceOpt = "auto",
    tile: TileOpt = None,
    checks: ChecksOpt = False,
    precision: BenchPrecisionOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Speed (output megapixels per second) and peak memory per method, beside Pillow and reference networks."""
    from .. import bench as api

    def progress(row: api.BenchRow) -> None:
        print(f"resizer: bench: {row.method} {row.precision} x{row.scale:g}: {row.seconds:.2f} s", file=sys.stderr,
              flush=True)

    report = run_api(lambda: api.run_bench(method, scale, megapixels, device, tile, checks, on_row=progress,
                                           precisions=precision), debug=debug)
    if json_out:
        print("\n".join(report.to_json_lines()))
    else:
        print(api.format_report(report))
