"""Measure what each low precision costs and gains for one weights entry, and record it in the manifest.

``--precision auto`` (:mod:`resizer.precision`) chooses from these numbers, so they are
measured, never assumed: the benchmark protocol (:func:`resizer.evaluation.evaluate`,
exactly what ``resizer eval`` runs) on Set5 and Set14 at every scale the entry is
scored at, in fp32 and in each low precision this device runs, in the same process;
``loss_db`` is the worst (largest) fp32-minus-low PSNR over those scales, per set. A pair
(CAR, DSN) is measured on its round trip with both halves in the precision, and that
result is recorded on both halves. ``speedup`` is fp32's time over the precision's on
one synthetic image through the same method path (best of a few runs).

The result is written into the entry's ``precision`` field under this machine's
:func:`resizer.precision.device_kind`, beside the measurements of other device kinds.
``benchmarks/measure_precision.py NAME...`` is the command.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from .precision import BENCH_SETS, device_kind, supported_precisions

__all__ = ["calibrate_int8", "entry_scales", "measure_entry", "partner_entries", "record_measurement"]


def entry_scales(entry: Any) -> list[float]:
    """The scales to measure an entry at: those it is scored at in the manifest, else those it serves."""
    scored = {float(key[1:]) for by_scale in entry.scores.values() for key in by_scale}
    return sorted(scored or {float(s) for s in entry.scales})


def _quality(entry: Any, datasets: dict[str, Path], scales: list[float], precision: str,
             device: str) -> dict[str, dict[str, float]]:
    """``{set: {"x2": psnr}}`` of the entry's method with the benchmark protocol in ``precision``."""
    from .evaluation import evaluate
    from .methods import RunOptions
    from .models import get_family
    from .weights.manifest import format_scale

    family = get_family(entry.family)
    down = family.name if family.is_pair else "matlab-bicubic"
    options = RunOptions(device=device, precision=precision, use=entry.use)
    scores: dict[str, dict[str, float]] = {}
    for name, folder in datasets.items():
        for result in evaluate([folder], scales, down=down, up=family.name, options=options):
            scores.setdefault(name, {})[f"x{format_scale(result.scale)}"] = round(result.psnr, 4)
    return scores


def _seconds(entry: Any, scale: float, precision: str, device: str, megapixels: float) -> float:
    """Best time of the entry's method on a synthetic ``megapixels`` image in ``precision``."""
    from .bench import bench_picture
    from .geometry import downscaled_size, upscaled_size
    from .image_io import Picture
    from .methods import ResizeRequest, RunOptions, get_method

    method = get_method(entry.family)
    pixels = bench_picture(megapixels)
    height, width = pixels.shape[:2]
    if entry.task == "down":
        out_h, out_w = downscaled_size(height, width, int(scale))
    else:
        out_h, out_w = upscaled_size(height, width, scale)
    maker = entry.name if entry.task == "down" else next(iter(partner_entries(entry.name)), None)
    request = ResizeRequest(entry.task, (out_w, out_h), scale, paired_with=maker)  # this very entry
    options = RunOptions(device=device, precision=precision, use=entry.use)
    picture = Picture(pixels)
    best = math.inf
    for _ in range(3):  # the first run also warms kernels and caches; the best one counts
        started = time.perf_counter()
        method.resize(picture, request, options)
        best = min(best, time.perf_counter() - started)
    return best


def measure_entry(name: str, datasets: dict[str, Path], device: str = "cpu", megapixels: float = 0.25,
                  log: Callable[[str], None] = lambda _: None, precisions: list[str] | None = None,
                  train: Path | None = None, dry_run: bool = False) -> dict[str, dict[str, Any]]:
    """``{entry name: {precision: {"loss_db": {set: dB}, "speedup": x, ...}}}`` for ``name`` on ``device``.

    A pair's half brings its partner: the round trip is scored once, each half timed on its
    own. ``datasets`` maps each of ``BENCH_SETS`` to its folder. Only precisions this
    device runs are measured (of ``precisions`` where given). int8 is first calibrated on
    patches of the photos under ``train`` (:func:`calibrate_int8`); the ranges go into the
    manifest before it is scored (``dry_run``: the entries' old field is put back after).
    """
    import torch

    from .devices import cpu_name, resolve_device
    from .errors import UsageError
    from .weights import get_entry

    missing = [s for s in BENCH_SETS if s not in datasets]
    if missing:
        raise UsageError(f"need the benchmark sets {', '.join(missing)}")
    entries = [get_entry(n) for n in [name, *partner_entries(name)]]
    dev = resolve_device(device)
    scales = [s for s in entry_scales(entries[0]) if s > 1]
    if not scales:
        raise UsageError(f"weights '{name}' are scored at no scale above 1; nothing to measure")
    speed_scale = 2.0 if any(abs(s - 2.0) < 1e-9 for s in scales) else scales[0]
    log(f"{name}: fp32 on {', '.join(datasets)} at x{', x'.join(f'{s:g}' for s in scales)}")
    reference = _quality(entries[0], datasets, scales, "fp32", str(dev))
    fp32_s = {e.name: _seconds(e, speed_scale, "fp32", str(dev), megapixels) for e in entries}
    where = f"{cpu_name() if dev.type == 'cpu' else torch.cuda.get_device_name(dev)}, torch {torch.__version__}, " \
            f"{torch.get_num_threads()} threads"
    how = "round trip, both halves in this precision" if len(entries) > 1 else "matlab-bicubic down, this entry up"
    results: dict[str, dict[str, Any]] = {e.name: {} for e in entries}
    for precision in [p for p in supported_precisions(dev)[1:] if precisions is None or p in precisions]:
        log(f"{name}: {precision}")
        with _calibrated(entries, precision, train, device, dry_run) as extra:
            scores = _quality(entries[0], datasets, scales, precision, str(dev))
            by_scale = {s: {k: round(reference[s][k] - scores[s][k], 4) for k in reference[s]} for s in reference}
            for e in entries:
                seconds = _seconds(e, speed_scale, precision, str(dev), megapixels)
                results[e.name][precision] = {
                    "loss_db": {s: max(by_scale[s].values()) for s in by_scale}, "loss_by_scale": by_scale,
                    "speedup": round(fp32_s[e.name] / seconds, 3), "speed_scale": speed_scale,
                    "speed_megapixels": megapixels, "measured_on": where, "how": how, **extra[e.name],
                }
    return results


@contextlib.contextmanager
def _calibrated(entries: list[Any], precision: str, train: Path | None, device: str,
                dry_run: bool) -> Iterator[dict[str, dict[str, Any]]]:
    """For int8: each entry calibrated and its ranges in the manifest while the block measures it.

    Yields the extra fields of each entry's row (``{"ranges": ...}`` for int8, else nothing).
    ``dry_run`` puts the entries back afterwards.
    """
    from .errors import UsageError
    from .weights import clear_model_cache

    if precision != "int8":
        yield {e.name: {} for e in entries}
        return
    if train is None:
        raise UsageError("int8 needs training photos to calibrate on (the datasets' train folder)")
    extra = {e.name: {"ranges": calibrate_int8(e, train)} for e in entries}
    for e in entries:
        record_measurement(e.name, {"int8": extra[e.name]}, device=device)
    clear_model_cache()  # loaded networks carry their entry: read the calibrated one
    try:
        yield extra
    finally:
        if dry_run:
            _restore(entries)


def _restore(entries: list[Any]) -> None:
    """Put the manifest entries back as they were read (a dry run's calibration is not kept)."""
    from .weights import clear_model_cache, upsert_manifest_entry

    for entry in entries:
        upsert_manifest_entry(entry)
    clear_model_cache()


def calibrate_int8(entry: Any, train: Path, count: int = 24, size: int = 96,
                   seed: int = 0) -> dict[str, list[float]]:
    """The int8 input range of each convolution of ``entry``'s network over ``count`` training patches.

    Patches of ``size`` pixels at seeded places in photos spread over ``train``, as the
    network sees them (luma networks: MATLAB BT.601 Y), run at the network's own scale.
    """
    import numpy as np
    import torch

    from .color import rgb_to_ycbcr
    from .image_io import load_picture
    from .models.int8 import calibrate, calibration_scale
    from .tensors import pixels_to_tensor
    from .weights import load

    files = sorted(p for p in train.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise FileNotFoundError(f"{train}: no training photos to calibrate int8 on")
    model = load(entry.family, float(entry.scales[0]) if entry.scales else 2.0, task=entry.task).model
    rng = np.random.default_rng(seed)
    inputs = []
    for path in [files[i] for i in np.linspace(0, len(files) - 1, count).astype(int)]:
        pixels = load_picture(path).pixels
        x = pixels_to_tensor(pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., :1])
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        top, left = (int(rng.integers(0, max(1, n - size + 1))) for n in x.shape[-2:])
        x = x[..., top:top + size, left:left + size]
        inputs.append(rgb_to_ycbcr(x)[:, :1].contiguous() if model.color == "y" else x.contiguous())
    ranges = calibrate(model, inputs, calibration_scale(model))
    return {name: [round(low, 5), round(high, 5)] for name, (low, high) in sorted(ranges.items())}


def _is_pair(entry: Any) -> bool:
    from .models import get_family

    return get_family(entry.family).is_pair


def record_measurement(name: str, results: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Write ``results`` into entry ``name``'s ``precision`` field under this device's kind; returns the field.

    Other device kinds' numbers are kept, and so are this kind's for precisions not in ``results``.
    """
    from .devices import resolve_device
    from .weights import get_entry, upsert_manifest_entry

    kind = device_kind(resolve_device(device))
    entry = get_entry(name)
    field = {**entry.precision, kind: {**entry.precision.get(kind, {}), **results}}
    upsert_manifest_entry(replace(entry, precision=field))
    return field


def partner_entries(name: str) -> list[str]:
    """The other half of a pair's entry (same family and pair stem, the other task); ``[]`` for single networks.

    Where no entry shares the stem, the other halves of the same scales and use.
    """
    from .weights import get_entry, read_manifest

    entry = get_entry(name)
    if not _is_pair(entry):
        return []
    others = [e for e in read_manifest() if e.family == entry.family and e.task != entry.task]
    named = [e.name for e in others if e.pair_stem == entry.pair_stem]
    return named or [e.name for e in others if sorted(e.scales) == sorted(entry.scales) and e.use == entry.use]
