"""Speed and memory of the upscalers, beside Pillow and published reference networks.

Every speed claim is a ratio measured in one process, one run: a method's output
megapixels per second divided by Pillow's bicubic and by EDSR-baseline's on the same
machine at the same time, so the ratios survive a slower or busier machine where the
absolute numbers do not. Learned and reference networks run with random weights
(speed does not depend on the values) through the same path as ``resizer up``
(:func:`resizer.learned.upscale_picture`: colour conversion, engine, tiling).

Rates are in **output** megapixels per second. Memory is the peak resident set size
above the level before the run, sampled every 2 ms (``/proc/self/statm``; elsewhere the
``getrusage`` high-water mark, which only shows growth beyond earlier runs); on CUDA
it is ``torch.cuda.max_memory_allocated``.

``checks=True`` adds the two numbers the engine promises: the peak RSS of a 3 MP image
upscaled x2 with the default tile, measured in a fresh subprocess (its own ``VmHWM``,
a clean high-water mark; target < 3 GB), and the cost of tiling on a 1 MP image
(tiled / whole - 1, target <= 25 %).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    from .models import ModelFamily

PILLOW = "pillow-bicubic"
EDSR = "edsr-baseline"
RSS_TARGET_MB = 3000.0
OVERHEAD_TARGET = 0.25
_MIN_SECONDS = 1.0  # repeat a measurement until it has run this long (at most _MAX_RUNS)
_MAX_RUNS = 5
DEFAULT_SCALES = (2.0, 4.0)  # x4 too, the only scale RRDBNet is built for
_RRDB_SHARE = 1 / 16  # RRDBNet (x4 only, ~25x EDSR's work) runs on a 16th of the pixels


@dataclass
class BenchRow:
    """One method at one scale."""

    method: str
    kind: str  # "learned", "reference", "classical"
    scale: float
    device: str
    input_size: tuple[int, int]  # (width, height)
    output_size: tuple[int, int]
    seconds: float  # best of ``runs``
    runs: int
    out_mp_per_s: float
    peak_mb: float
    vs_pillow: float | None = None  # speed / Pillow bicubic's at the same scale
    vs_edsr: float | None = None  # speed / EDSR-baseline's at the same scale
    tile: int | None = None
    note: str = ""
    direction: str = "up"
    precision: str = "fp32"  # what ran (``auto`` resolved from the manifest's measurements)
    vs_rrdbnet: float | None = None  # speed / RRDBNet's fp32 x4 output rate in the same run

    @property
    def in_mp_per_s(self) -> float:
        """Input megapixels per second (the rate that matters for a downscaler)."""
        return self.input_size[0] * self.input_size[1] / 1e6 / self.seconds


@dataclass
class BenchReport:
    """Everything ``resizer bench`` measured, with the conditions it was measured under."""

    device: str
    threads: int
    torch: str
    cpu: str
    load_average: tuple[float, float, float] | None
    rows: list[BenchRow] = field(default_factory=list)
    memory_checks: list[dict] = field(default_factory=list)
    tiling_checks: list[dict] = field(default_factory=list)

    def to_json_lines(self) -> list[str]:
        head = {k: v for k, v in asdict(self).items() if k not in ("rows", "memory_checks", "tiling_checks")}
        lines = [json.dumps({"record": "machine", **head})]
        lines += [json.dumps({"record": "speed", **asdict(r), "in_mp_per_s": r.in_mp_per_s}) for r in self.rows]
        lines += [json.dumps({"record": "memory", **c}) for c in self.memory_checks]
        lines += [json.dumps({"record": "tiling", **c}) for c in self.tiling_checks]
        return lines


def learned_families() -> dict[str, "ModelFamily"]:
    """Every registered model family (the learned ``--method``s) by name."""
    from .models import list_families

    return {family.name: family for family in list_families()}


def available_methods() -> list[str]:
    """Names ``--method`` accepts: learned families, reference networks, Pillow bicubic, classical methods."""
    from .methods import list_methods
    from .models.reference import REFERENCE_MODELS

    names = list(learned_families()) + list(REFERENCE_MODELS) + [PILLOW]
    names += [m.name for m in list_methods("up") if m.name not in names]
    return names


def bench_picture(megapixels: float, seed: int = 0) -> np.ndarray:
    """A 4:3 RGB uint8 image of about ``megapixels``: smooth gradients, edges and noise."""
    width = max(8, int(round(math.sqrt(megapixels * 1e6 * 4 / 3))))
    height = max(8, int(round(width * 3 / 4)))
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    shape = (height, width)
    planes = [127 + 100 * np.sin(9 * x) * np.cos(7 * y), np.broadcast_to(255 * x, shape),
              np.broadcast_to(200 * ((x * 13 % 1) > 0.5), shape)]
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3)).astype(np.float32)
    return np.clip(np.stack(planes, axis=-1) + noise, 0, 255).astype(np.uint8)


class _PeakRSS:
    """Peak resident memory above the level at entry, sampled by a thread."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._statm = "/proc/self/statm" if os.path.exists("/proc/self/statm") else None
        self._page = os.sysconf("SC_PAGE_SIZE") if self._statm else 0

    def _rss_mb(self) -> float:
        if self._statm:
            with open(self._statm) as handle:
                return int(handle.read().split()[1]) * self._page / 1e6
        return _maxrss_mb()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb() - self._base)
            time.sleep(self.interval)

    def __enter__(self) -> "_PeakRSS":
        self._base = self._rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb() - self._base)


def _maxrss_mb() -> float:
    """This process's RSS high-water mark.

    Linux: ``VmHWM``, the peak of this process image only; ``ru_maxrss`` would also hold
    the peak of the parent that forked it (it survives fork and exec), so a subprocess
    started by a big benchmark would report the benchmark's peak. Elsewhere ``ru_maxrss``
    (macOS reports bytes).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def _timed(run: Callable[[], object], device_type: str) -> tuple[float, int, float]:
    """(best seconds, runs, peak MB): repeat ``run`` until ``_MIN_SECONDS`` or ``_MAX_RUNS``."""
    import torch

    best, runs, total, peak = math.inf, 0, 0.0, 0.0
    while runs < _MAX_RUNS and (runs == 0 or total < _MIN_SECONDS):
        if device_type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with _PeakRSS() as rss:
            start = time.perf_counter()
            run()
            if device_type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
        gpu_peak = torch.cuda.max_memory_allocated() / 1e6 if device_type == "cuda" else 0.0
        best, runs, total = min(best, elapsed), runs + 1, total + elapsed
        peak = max(peak, gpu_peak if device_type == "cuda" else rss.peak_mb)
    return best, runs, peak


def _build(method: str, scale: float, task: str = "up"):
    """A randomly initialised network for a learned family (its ``task`` network) or a reference name.

    A learned family is built with the configuration of the entry a run at ``scale`` reads, so a
    shipped model larger than its family's default (DSN's Up-SNet) is timed at its own size.
    """
    from .models.reference import REFERENCE_MODELS, build_reference

    if method in REFERENCE_MODELS:
        return build_reference(method, scale)
    family = learned_families()[method]
    entry = _entry(method, scale, task)  # time the size the shipped weights have, not the family default
    return family.architecture(task).build(entry.config if entry is not None else _scale_config(family, scale))


def _buildable(method: str, scale: float, task: str = "up"):
    """:func:`_build`, or ``None`` for a family built per scale that has no network at ``scale`` (CAR at x3)."""
    try:
        return _build(method, scale, task)
    except ValueError:
        return None


def _scale_config(family: "ModelFamily", scale: float) -> dict:
    """Families built per integer scale (CAR, DSN, DAIR) get it; the others take the scale at run time."""
    return {"scale": int(scale)} if family.per_scale_config and float(scale).is_integer() else {}


def _measure_down(family: str, scale: float, megapixels: float, device, tile: int | None,
                  precision: str = "fp32") -> list[BenchRow]:
    """A paired family's downscaler beside Pillow's bicubic downscale of the same image; ``[]`` if none.

    Rates here are in *input* megapixels per second (``in_mp_per_s``); ``vs_pillow`` compares them.
    """
    from PIL import Image

    from .engine import default_tile
    from .image_io import Picture
    from .learned import downscale_picture, inference_model

    if not learned_families()[family].is_pair or not float(scale).is_integer():
        return []
    precision = _concrete(family, scale, "down", precision, device)
    ranges = _int8_ranges(family, scale, "down", device)
    if precision == "int8" and ranges is None:
        return []  # no int8 calibration for these weights
    network = _buildable(family, scale, "down")
    if network is None:
        return []
    model = inference_model(network, device, precision, ranges)
    if not model.supports_scale(scale):
        return []
    pixels = bench_picture(megapixels)
    height, width = pixels.shape[:2]
    out_h, out_w = model.output_size(height, width, int(scale))
    image = Image.fromarray(pixels)
    p_seconds, p_runs, p_peak = _timed(lambda: image.resize((out_w, out_h), Image.Resampling.BICUBIC), "cpu")
    picture = Picture(pixels)
    run = dict(tile=tile, device=device, precision=precision)
    downscale_picture(model, Picture(pixels[:64, :64].copy()), int(scale), **run)  # warm-up
    seconds, runs, peak = _timed(lambda: downscale_picture(model, picture, int(scale), **run), device.type)
    pillow = BenchRow(PILLOW, "classical", scale, "cpu", (width, height), (out_w, out_h), p_seconds, p_runs,
                      out_w * out_h / 1e6 / p_seconds, p_peak, vs_pillow=1.0, direction="down", precision="-")
    learned = BenchRow(family, "learned", scale, str(device), (width, height), (out_w, out_h), seconds, runs,
                       out_w * out_h / 1e6 / seconds, peak, vs_pillow=p_seconds / seconds,
                       tile=tile if tile is not None else default_tile(device), direction="down",
                       precision=precision)
    return [pillow, learned]


def _concrete(method: str, scale: float, task: str, precision: str, device) -> str:
    """``precision`` as it runs: ``auto`` for a learned family reads its manifest entry's measurements."""
    from .precision import choose_precision

    if precision != "auto" or method not in learned_families():
        return choose_precision(precision, device)
    return choose_precision(precision, device, _measured(method, scale, task))


def _entry(method: str, scale: float, task: str):
    """The manifest entry a learned family reads at ``scale`` for ``task``; ``None`` without one."""
    if method not in learned_families():
        return None
    try:
        from .weights import find_entry

        return find_entry(method, scale, task=task)
    except Exception:  # noqa: BLE001 - no weights for this scale
        return None


def _measured(method: str, scale: float, task: str) -> dict | None:
    """The manifest entry's ``precision`` field for a learned family at ``scale`` (``None`` if none)."""
    entry = _entry(method, scale, task)
    return None if entry is None else entry.precision


def _int8_ranges(method: str, scale: float, task: str, device) -> dict | None:
    """The int8 calibration of the family's weights at ``scale``; the bench's networks are built alike."""
    from .precision import int8_ranges

    return int8_ranges(_measured(method, scale, task), device)


def _measure(method: str, scale: float, megapixels: float, device, tile: int | None,
             precision: str = "fp32") -> BenchRow | None:
    """Time one method at one scale; ``None`` when it cannot do that scale."""
    from PIL import Image

    from .engine import default_tile
    from .image_io import Picture
    from .learned import upscale_picture
    from .geometry import upscaled_size
    from .methods import ResizeRequest, RunOptions, get_method
    from .models.reference import REFERENCE_MODELS

    share = _RRDB_SHARE if method == "rrdbnet" else 1.0
    pixels = bench_picture(megapixels * share)
    height, width = pixels.shape[:2]
    out_h, out_w = upscaled_size(height, width, scale)
    note = f"1/{round(1 / share)} of the pixels" if share != 1.0 else ""
    if method == PILLOW:
        image = Image.fromarray(pixels)
        seconds, runs, peak = _timed(lambda: image.resize((out_w, out_h), Image.Resampling.BICUBIC), "cpu")
        kind, dev_name = "classical", "cpu"
    elif method in REFERENCE_MODELS or method in learned_families():
        if method in REFERENCE_MODELS and not any(math.isclose(scale, s) for s in REFERENCE_MODELS[method][1]):
            return None
        from .learned import inference_model

        precision = _concrete(method, scale, "up", precision, device)
        ranges = _int8_ranges(method, scale, "up", device)
        if precision == "int8" and ranges is None:
            return None  # no int8 calibration for these weights
        network = _buildable(method, scale)
        if network is None:
            return None
        model = inference_model(network, device, precision, ranges)  # as resizer up runs it
        if not model.supports_scale(scale):
            return None
        picture = Picture(pixels)
        warm = Picture(pixels[:48, :64].copy())

        def run(p: Picture = picture) -> object:
            return upscale_picture(model, p, upscaled_size(p.height, p.width, scale), scale, tile=tile, device=device,
                                   precision=precision)

        run(warm)  # first calls build kernels and allocator pools
        seconds, runs, peak = _timed(run, device.type)
        kind = "reference" if method in REFERENCE_MODELS else "learned"
        dev_name = str(device)
    else:
        chosen = get_method(method)
        if "up" not in chosen.directions:
            raise UsageError(f"method '{method}' does not upscale")
        picture, request = Picture(pixels), ResizeRequest("up", (out_w, out_h), scale)
        chosen.validate(request)
        seconds, runs, peak = _timed(lambda: chosen.resize(picture, request, RunOptions(device=str(device))), "cpu")
        kind, dev_name = "classical", "cpu"
    used_tile = None if kind == "classical" else (tile if tile is not None else default_tile(device))
    return BenchRow(method, kind, scale, dev_name, (width, height), (out_w, out_h), seconds, runs,
                    out_w * out_h / 1e6 / seconds, peak, tile=used_tile, note=note,
                    precision=precision if kind != "classical" else "-")


def _machine(device) -> BenchReport:
    import torch

    from .devices import cpu_name

    cpu = cpu_name()
    if device.type == "cuda":
        cpu += f"; GPU {torch.cuda.get_device_name(device)}"
    return BenchReport(str(device), torch.get_num_threads(), torch.__version__, cpu, _load_average())


def _load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages; ``None`` where the system has none (Windows)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def run_bench(
    methods: list[str] | None = None,
    scales: list[float] | None = None,
    megapixels: float = 0.1,
    device: str = "auto",
    tile: int | None = None,
    checks: bool = False,
    on_row: Callable[[BenchRow], None] | None = None,
    precisions: list[str] | None = None,
) -> BenchReport:
    """Measure ``methods`` (default: every learned family and reference network) at ``scales`` (default 2 and 4).

    Pillow's bicubic and EDSR-baseline always run too (EDSR in fp32), as the denominators
    of the ratios; RRDBNet's fp32 x4 rate is the third when it is measured. ``megapixels``
    is the input size (RRDBNet gets a 16th of it). Each network runs in every one of
    ``precisions`` (default fp32; ``auto`` reads a learned family's manifest measurements,
    and a precision that resolves to one already measured is not run twice). With
    ``checks``, also the 3 MP x2 RSS check (subprocess) and the 1 MP tiling overhead for
    each learned family measured.
    """
    from .devices import resolve_device, use_all_cpu_threads
    from .models.reference import REFERENCE_MODELS
    from .precision import check_precision

    if not (megapixels > 0 and math.isfinite(megapixels)):
        raise UsageError(f"--megapixels must be a positive number, not {megapixels}")
    scales = [float(s) for s in (scales or DEFAULT_SCALES)]
    if any(not (s > 1 and math.isfinite(s)) for s in scales):
        raise UsageError("--scale must be greater than 1 (the benchmark measures upscalers)")
    known = available_methods()
    wanted = [m.strip().lower() for m in (methods or list(learned_families()) + list(REFERENCE_MODELS))]
    for name in wanted:
        if name not in known:
            raise UsageError(f"unknown method '{name}' for bench (available: {', '.join(known)})")
    order = [PILLOW, EDSR] + [m for m in dict.fromkeys(wanted) if m not in (PILLOW, EDSR)]
    dev = resolve_device(device)
    chosen = list(dict.fromkeys(check_precision(p, dev) for p in (precisions or ["fp32"])))
    if dev.type == "cpu":
        use_all_cpu_threads()
    report = _machine(dev)

    def add(row: BenchRow) -> None:
        report.rows.append(row)
        if on_row:
            on_row(row)

    for scale in scales:
        rows = _measure_all(order, scale, megapixels, dev, tile, chosen)
        base = {r.method: r.out_mp_per_s for r in rows if r.method in (PILLOW, EDSR) and r.precision in ("fp32", "-")}
        for row in rows:
            row.vs_pillow = row.out_mp_per_s / base[PILLOW]
            row.vs_edsr = row.out_mp_per_s / base[EDSR] if EDSR in base else None  # EDSR has no x2.5
            add(row)
        for name in order:  # paired families: their downscaler too
            if name in learned_families():
                for row in _measure_all_down(name, scale, megapixels, dev, tile, chosen):
                    add(row)
    rrdb = [r.out_mp_per_s for r in report.rows if r.method == "rrdbnet" and r.precision == "fp32"]
    for row in report.rows if rrdb else []:
        row.vs_rrdbnet = row.out_mp_per_s / rrdb[0] if row.direction == "up" else None

    if checks:  # the engine's promises are about x2; networks that cannot do x2 are left out
        families = [m for m in dict.fromkeys(wanted) if m in learned_families() and _build(m, 2.0).supports_scale(2.0)]
        for family in families:
            report.memory_checks.append(memory_check(family, device=str(dev), tile=tile))
            report.tiling_checks.append(tiling_overhead(family, device=dev, tile=tile or None))
    return report


def _measure_all(order: list[str], scale: float, megapixels: float, dev, tile: int | None,
                 precisions: list[str]) -> list[BenchRow]:
    """Every method of ``order`` at ``scale``: networks once per distinct concrete precision, the rest once."""
    rows: list[BenchRow] = []
    for name in order:
        if name not in learned_families() and name not in _reference_names():
            row = _measure(name, scale, megapixels, dev, tile)  # classical: no precision
            rows += [row] if row is not None else []
            continue
        seen: dict[str, BenchRow] = {}
        for precision in ["fp32"] if name == EDSR else precisions:  # EDSR is the fp32 yardstick
            concrete = _concrete(name, scale, "up", precision, dev)
            if concrete == "int8" and _int8_ranges(name, scale, "up", dev) is None:
                continue  # no int8 calibration for these weights: no int8 row
            row = seen.get(concrete) or _measure(name, scale, megapixels, dev, tile, concrete)
            if row is None:
                break  # the method cannot do this scale
            if precision == "auto":
                row.note = (row.note + " = auto").strip()
            if concrete not in seen:
                seen[concrete] = row
                rows.append(row)
    return rows


def _measure_all_down(name: str, scale: float, megapixels: float, dev, tile: int | None,
                      precisions: list[str]) -> list[BenchRow]:
    """A paired family's downscaler in each distinct precision, Pillow's bicubic downscale once."""
    rows: list[BenchRow] = []
    seen: set[str] = set()
    for precision in precisions:
        concrete = _concrete(name, scale, "down", precision, dev)
        if concrete in seen:
            continue
        seen.add(concrete)
        measured = _measure_down(name, scale, megapixels, dev, tile, concrete)
        rows += measured if not rows else measured[1:]
    return rows


def _reference_names() -> set[str]:
    from .models.reference import REFERENCE_MODELS

    return set(REFERENCE_MODELS)


def memory_check(family: str, megapixels: float = 3.0, scale: float = 2.0, device: str = "cpu",
                 tile: int | None = None) -> dict:
    """Peak RSS of upscaling a ``megapixels`` RGB image by ``scale``, in a fresh Python process.

    A subprocess so the high-water mark holds nothing but this run (plus torch itself,
    reported separately as ``baseline_mb``).
    """
    code = (
        "import json, sys; from resizer.bench import _memory_child; "
        f"print(json.dumps(_memory_child({family!r}, {megapixels!r}, {scale!r}, {device!r}, {tile!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"method": family, "megapixels": megapixels, "scale": scale, "error": tail}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["target_mb"] = RSS_TARGET_MB
    result["ok"] = result["peak_rss_mb"] < RSS_TARGET_MB
    return result


def _memory_child(family: str, megapixels: float, scale: float, device: str, tile: int | None) -> dict:
    from .devices import resolve_device
    from .engine import default_tile
    from .image_io import Picture
    from .geometry import upscaled_size
    from .learned import upscale_picture

    dev = resolve_device(device)
    model = _build(family, scale)
    picture = Picture(bench_picture(megapixels))
    baseline = _maxrss_mb()
    start = time.perf_counter()
    out = upscale_picture(model, picture, upscaled_size(picture.height, picture.width, scale), scale,
                          tile=tile, device=dev)
    seconds = time.perf_counter() - start
    return {
        "method": family, "megapixels": megapixels, "scale": scale, "device": str(dev),
        "tile": tile if tile is not None else default_tile(dev),
        "input_size": [picture.width, picture.height], "output_size": [out.width, out.height],
        "peak_rss_mb": round(_maxrss_mb(), 1), "baseline_mb": round(baseline, 1), "seconds": round(seconds, 2),
    }


def tiling_overhead(family: str, megapixels: float = 1.0, scale: float = 2.0, device=None,
                    tile: int | None = None) -> dict:
    """Time of the tiled run (default tile) over the whole-image run on a ``megapixels`` image, minus one."""
    import torch

    from .devices import resolve_device
    from .engine import default_tile, upscale_tensor

    dev = device if device is not None else resolve_device("auto")
    model = _build(family, scale)
    channels = 1 if learned_families()[family].color == "y" else 3
    pixels = bench_picture(megapixels)
    x = torch.from_numpy(pixels[..., :channels].transpose(2, 0, 1).astype(np.float32) / 255).unsqueeze(0)
    upscale_tensor(model, x[..., :48, :64], scale, tile=0, device=dev)  # warm-up
    times = {}
    side = tile or default_tile(dev)
    for label, t in (("whole", 0), ("tiled", side)):
        times[label], _, _ = _timed(lambda t=t: upscale_tensor(model, x, scale, tile=t, device=dev), dev.type)
    overhead = times["tiled"] / times["whole"] - 1
    return {
        "method": family, "megapixels": megapixels, "scale": scale, "device": str(dev), "tile": side,
        "whole_s": round(times["whole"], 3), "tiled_s": round(times["tiled"], 3),
        "overhead": round(overhead, 4), "target": OVERHEAD_TARGET, "ok": overhead <= OVERHEAD_TARGET,
    }
