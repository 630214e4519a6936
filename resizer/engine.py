"""Run any registered resampling model over an image of any size, in tiles, on any device.

The engine knows only the model contract (:mod:`resizer.models.base`): ``forward(x,
scale)``, ``context(scale)`` (the halo) and ``color``. It cuts the input into tiles that
overlap by the halo, so every kept output pixel saw exactly the context it sees in a
whole-image run: tiled and whole results agree to float rounding, with no seams. The
output is assembled tile by tile into one preallocated CPU tensor, so peak memory is
the output plus a few tiles' activations, whatever the image size. On the CPU, up to
``CPU_TILE_WORKERS`` tiles run at once, each on its share of the cores: on 2 cores that
made the tiled run as fast as the whole image, where one tile at a time on every core
was 25-60% slower (convolutions on small inputs parallelise worse than on large ones).

Non-integer scales: a tile starting at input offset ``a`` must start at an integer output
position ``a * scale`` for its pixels to be the whole image's pixels, so tile edges (and
halos) are put on multiples of the scale's period ``q``, the smallest ``q <= MAX_PERIOD``
with ``q * scale`` an integer (2.5 -> 2, 1.75 -> 4). A scale without such a period (e.g.
1.2345, or a ``--width`` whose ratio has a large denominator) runs the whole image at
once, with a warning: exact, but its memory grows with the image.
"""

from __future__ import annotations

import math
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from .devices import resolve_device, use_all_cpu_threads
from .errors import ResizerError, UsageError
from .geometry import fit_to_size, upscaled_size
from .models.base import ResamplingModel
from .precision import autocast_for, check_precision

__all__ = [
    "DEFAULT_TILE_CPU", "DEFAULT_TILE_GPU", "MIN_TILE", "MAX_PERIOD", "default_tile", "scale_period",
    "upscale_tensor", "downscale_tensor",
]

# CPU: useful output per CPU-second of one VDSR x2 tile (halo 12), relative to the best, was
# 0.43 at 64 input pixels, 0.79 at 128 and 0.93-1.0 from 192 to 384: 256 is on the plateau,
# and a tile's activations (~80 MB per VDSR layer at x2) keep a 3 MP x2 run under 1 GB.
# GPU: not measured (no GPU was available); 4x the CPU tile's pixels, batched by 4.
DEFAULT_TILE_CPU = 256
DEFAULT_TILE_GPU = 512
MIN_TILE = 32  # the OOM retry halves the tile down to this, then gives up
MAX_PERIOD = 64  # largest tile-alignment period tried for non-integer scales
DEFAULT_BATCH_CPU = 1  # CPU tiles run concurrently instead (CPU_TILE_WORKERS)
DEFAULT_BATCH_GPU = 4
CPU_TILE_WORKERS = 4  # at most this many CPU tiles at once: bounds memory to 4 tiles' activations

def default_tile(device: torch.device) -> int:
    """The tile side in input pixels used when none is given."""
    return DEFAULT_TILE_CPU if device.type == "cpu" else DEFAULT_TILE_GPU


def scale_period(scale: float, max_period: int = MAX_PERIOD) -> int | None:
    """Smallest ``q <= max_period`` with ``q * scale`` an integer (1 for integer scales), else ``None``."""
    for q in range(1, max_period + 1):
        product = q * scale
        if abs(product - round(product)) <= 1e-9 * max(1.0, product):
            return q
    return None


def _boundaries(length: int, tile: int, period: int) -> list[int]:
    """Edges of near-equal tiles of at most ``tile`` pixels, interior edges on multiples of ``period``."""
    count = math.ceil(length / tile)
    edges = [0]
    for k in range(1, count):
        edge = period * round(k * length / (count * period))
        if edges[-1] < edge < length:
            edges.append(edge)
    edges.append(length)
    return edges


def _out_pos(edge: int, length: int, out_length: int, scale: float) -> int:
    """Output position of input edge ``edge`` (integer by construction of the edges)."""
    return out_length if edge == length else int(round(edge * scale))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()  # MPS says it this way


def upscale_tensor(
    model: ResamplingModel,
    x: torch.Tensor,
    scale: float,
    out_size: tuple[int, int] | None = None,
    *,
    tile: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run upscaler ``model`` on ``x`` ``(1, C, H, W)`` in [0, 1]; returns ``(1, C, *out_size)`` float32 on CPU.

    ``out_size`` is ``(height, width)``, default ``upscaled_size(H, W, scale)``. When it
    differs from that by one pixel (rounding elsewhere), the last row/column is cropped
    or repeated; by more (an aspect change), the model output is resized to it with
    MATLAB bicubic. ``tile`` is the tile side in input pixels (``None``: the device's
    default, ``0``: the whole image); ``batch`` tiles of equal shape run together
    (default 1 on CPU, 4 on GPUs). On out-of-memory the tile is halved down to
    ``MIN_TILE``, then a ``ResizerError`` says so. The result is not clamped.
    """
    dev, precision, batch = _prepare(model, x, scale, tile, device, precision, batch, "upscale")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    natural = upscaled_size(height, width, scale)
    target = (int(out_size[0]), int(out_size[1])) if out_size is not None else natural

    period = scale_period(scale)
    if period is not None:  # tiles also start where the model's windows and padding do (``tile_multiple``)
        period = math.lcm(period, max(1, int(getattr(model, "tile_multiple", 1))))
    side = default_tile(dev) if tile is None else tile
    if side == 0 or side >= max(height, width):
        side = 0
    elif period is None:
        warnings.warn(f"scale {scale:g} has no tiling period up to {MAX_PERIOD}: running the whole image at once",
                      RuntimeWarning, stacklevel=2)
        side = 0

    out = _run_with_retry(model, x, scale, scale, natural, side, period, dev, precision, batch, progress)
    return fit_to_size(out, target)


def downscale_tensor(
    model: ResamplingModel,
    x: torch.Tensor,
    scale: int,
    *,
    tile: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run downscaler ``model`` (integer ``scale``) on ``x`` ``(1, C, H, W)``; returns its natural output on CPU.

    The output size is the model's ``output_size(H, W, scale)``. Tiles are ``tile`` output
    (LR) pixels a side, so a tile costs about what an upscaler's tile does; their edges
    lie on multiples of the scale, where the model's LR grid has its block edges, so
    tiled and whole results agree like the upscalers'.
    """
    dev, precision, batch = _prepare(model, x, scale, tile, device, precision, batch, "downscale")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    natural = model.output_size(height, width, scale)
    period = int(scale)
    side = (default_tile(dev) if tile is None else tile) * period
    if side == 0 or side >= max(height, width):
        side = 0
    return _run_with_retry(model, x, scale, 1.0 / scale, natural, side, period, dev, precision, batch, progress)


def _prepare(model: ResamplingModel, x: torch.Tensor, scale: float, tile: int | None, device: str | torch.device,
             precision: str, batch: int | None, verb: str) -> tuple[torch.device, str, int]:
    """Check a run's arguments; ``(device, precision, batch)`` with the CPU threads set.

    The engine knows no measurements, so ``auto`` here is fp32; the learned methods resolve
    ``auto`` from the manifest (:func:`resizer.precision.choose_precision`) before they call it.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"{verb}_tensor needs a (1, C, H, W) tensor, got {tuple(x.shape)}")
    if not model.supports_scale(scale):
        raise UsageError(f"{type(model).__name__} cannot {verb} by {scale:g}")
    if tile is not None and tile < 0:
        raise UsageError(f"--tile must be 0 or more, not {tile}")
    dev = resolve_device(device)
    precision = check_precision(precision, dev)
    precision = "fp32" if precision == "auto" else precision
    if dev.type == "cpu":
        use_all_cpu_threads()
    if batch is None:
        batch = DEFAULT_BATCH_CPU if dev.type == "cpu" else DEFAULT_BATCH_GPU
    return dev, precision, max(1, int(batch))


def _run_with_retry(model: ResamplingModel, x: torch.Tensor, scale: float, factor: float, natural: tuple[int, int],
                    side: int, period: int | None, dev: torch.device, precision: str, batch: int,
                    progress: Callable[[int, int], None] | None) -> torch.Tensor:
    """``_run_tiles``, halving the tile on out-of-memory down to ``MIN_TILE`` (see ``upscale_tensor``)."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    model.eval()
    model.to(dev)
    while True:
        try:
            return _run_tiles(model, x, scale, factor, natural, side, period or 1, dev, precision, batch, progress)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            if not _is_oom(exc):
                raise
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            current = side or max(height, width)
            if period is None:
                raise ResizerError(
                    f"out of memory on {dev}: scale {scale:g} cannot be tiled exactly, so the whole image runs at "
                    f"once; use a scale like 2, 2.5 or 3, or --device cpu"
                ) from exc
            if current <= MIN_TILE:
                raise ResizerError(
                    f"out of memory on {dev} even with {current}-pixel tiles; try --device cpu"
                ) from exc
            side = max(MIN_TILE, current // 2)
            side = max(period, side // period * period)


def _run_tiles(model: ResamplingModel, x: torch.Tensor, scale: float, factor: float, natural: tuple[int, int],
               side: int, period: int, dev: torch.device, precision: str, batch: int,
               progress: Callable[[int, int], None] | None) -> torch.Tensor:
    """Run ``model(tile, scale)`` over tiles; ``factor`` is output pixels per input pixel (``1/scale`` down)."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    out_h, out_w = natural
    if side == 0:
        rows, cols, halo = [0, height], [0, width], 0
    else:
        side = max(period, side // period * period)
        rows, cols = _boundaries(height, side, period), _boundaries(width, side, period)
        halo = math.ceil(model.context(scale) / period) * period

    # Group tiles by the shape of their padded crop so that equal shapes run as one batch.
    groups: dict[tuple[int, int], list[tuple[int, int, int, int, int, int]]] = {}
    for r0, r1 in zip(rows, rows[1:]):
        for c0, c1 in zip(cols, cols[1:]):
            y0, y1 = max(0, r0 - halo), min(height, r1 + halo)
            x0, x1 = max(0, c0 - halo), min(width, c1 + halo)
            groups.setdefault((y1 - y0, x1 - x0), []).append((r0, r1, c0, c1, y0, x0))
    chunks = [(shape, tiles[i:i + batch]) for shape, tiles in groups.items() for i in range(0, len(tiles), batch)]
    total = sum(len(tiles) for tiles in groups.values())
    out = torch.empty((1, int(x.shape[1]), out_h, out_w), dtype=torch.float32)
    done = 0
    lock = threading.Lock()

    def run_chunk(shape: tuple[int, int], chunk: list[tuple[int, int, int, int, int, int]]) -> None:
        nonlocal done
        crop_h, crop_w = shape
        inp = torch.cat([x[:, :, y0:y0 + crop_h, x0:x0 + crop_w] for _, _, _, _, y0, x0 in chunk])
        result = model(inp.to(dev, torch.float32, non_blocking=True), scale).float().cpu()
        for i, (r0, r1, c0, c1, y0, x0) in enumerate(chunk):
            o_r0, o_r1 = _out_pos(r0, height, out_h, factor), _out_pos(r1, height, out_h, factor)
            o_c0, o_c1 = _out_pos(c0, width, out_w, factor), _out_pos(c1, width, out_w, factor)
            t_r, t_c = o_r0 - int(round(y0 * factor)), o_c0 - int(round(x0 * factor))
            out[0, :, o_r0:o_r1, o_c0:o_c1] = result[i, :, t_r:t_r + o_r1 - o_r0, t_c:t_c + o_c1 - o_c0]
        with lock:
            done += len(chunk)
            if progress is not None:
                progress(done, total)

    cores = torch.get_num_threads()
    concurrent = dev.type == "cpu" and getattr(model, "concurrent_tiles", True)
    workers = min(cores, CPU_TILE_WORKERS, len(chunks)) if concurrent else 1
    if workers <= 1:
        with torch.inference_mode(), autocast_for(dev, precision):
            for shape, chunk in chunks:
                run_chunk(shape, chunk)
        return out

    # CPU: tiles run concurrently, each on its share of the cores (see the module docstring).
    def work(item: tuple[tuple[int, int], list]) -> None:
        with torch.inference_mode(), autocast_for(dev, precision):  # autocast is per thread
            run_chunk(*item)

    torch.set_num_threads(max(1, cores // workers))  # worker threads take this count when they start
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resizer-tile") as pool:
            for future in [pool.submit(work, item) for item in chunks]:
                future.result()
    finally:
        torch.set_num_threads(cores)
    return out
