"""``resizer bench``: parse, then hand everything to :mod:`resizer.bench`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from .app import DebugOpt, DeviceOpt, JsonOpt, TileOpt, app, run_api

if TYPE_CHECKING:
    from ..bench import BenchReport

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
        print(format_report(report))


def format_report(report: "BenchReport") -> str:
    """The human-readable table (plain text, fixed columns)."""
    lines = [
        f"device {report.device}, {report.threads} threads, torch {report.torch}, {report.cpu}"
        + (f", load average {report.load_average[0]:.1f}" if report.load_average else ""),
        "speed in megapixels per second (output, and input for downscalers); x-ratios measured in this run; "
        "memory = peak RSS above the start",
        "",
        f"{'method':<16} {'dir':<4} {'prec':<4} {'scale':>5} {'input':>10} {'output':>10} {'seconds':>8} "
        f"{'out MP/s':>9} {'in MP/s':>8} {'vs pillow':>10} {'vs EDSR':>8} {'vs RRDB':>8} {'peak MB':>8}  note",
    ]
    for r in report.rows:
        lines.append(
            f"{r.method:<16} {r.direction:<4} {r.precision:<4} {r.scale:>5g} {r.input_size[0]:>4}x{r.input_size[1]:<5} "
            f"{r.output_size[0]:>4}x{r.output_size[1]:<5} {r.seconds:>8.4g} {r.out_mp_per_s:>9.4g} "
            f"{r.in_mp_per_s:>8.4g} {_ratio(r.vs_pillow):>10} {_ratio(r.vs_edsr):>8} {_ratio(r.vs_rrdbnet):>8} "
            f"{r.peak_mb:>8.0f}  {r.note}".rstrip()
        )
    if report.memory_checks or report.tiling_checks:
        lines.append("")
    for c in report.memory_checks:
        if "error" in c:
            lines.append(f"memory {c['method']}: failed: {c['error']}")
            continue
        lines.append(
            f"memory {c['method']}: {c['megapixels']:g} MP x{c['scale']:g} ({c['input_size'][0]}x{c['input_size'][1]} -> "
            f"{c['output_size'][0]}x{c['output_size'][1]}), tile {c['tile']}: peak RSS {c['peak_rss_mb']:.0f} MB "
            f"(torch and the input alone {c['baseline_mb']:.0f} MB), {c['seconds']:.1f} s; "
            f"target < {c['target_mb']:.0f} MB: {'ok' if c['ok'] else 'MISSED'}"
        )
    for c in report.tiling_checks:
        lines.append(
            f"tiling {c['method']}: {c['megapixels']:g} MP x{c['scale']:g}, tile {c['tile']} {c['tiled_s']:.2f} s vs whole "
            f"{c['whole_s']:.2f} s: overhead {100 * c['overhead']:+.1f}% (target <= {100 * c['target']:.0f}%: "
            f"{'ok' if c['ok'] else 'MISSED'})"
        )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    """``4.21x`` for faster, ``1/244`` for slower: both readable at a glance."""
    if value is None:
        return "-"
    return f"{_num(value)}x" if value >= 1 else f"1/{_num(1 / value)}"


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
