"""Inference precisions: what ``--precision`` means when a network runs, and how ``auto`` chooses.

``fp32`` is the reference. ``bf16`` and ``fp16`` run a network under autocast, ``int8`` (CPUs
with VNNI) its convolutions in 8 bits (:mod:`resizer.models.int8`, quantized at load); each model
keeps its numerically sensitive parts in fp32 itself (the bicubic base, the residual
add, the last layer, CAR's resampling: :func:`resizer.models.base.fp32_section`), so the
engine stays model-agnostic. Naive autocast of the whole network moved pixels by up to
4 of 255 levels; with those parts in fp32 the measured loss is what the manifest says.

``auto`` is data, not a guess: every weights entry of the manifest may carry a
``precision`` field, per *device kind* (:func:`device_kind`), with the PSNR loss of each
low precision against fp32 on Set5 and Set14 (the benchmark protocol, every scale the
entry serves) and its measured speed-up. ``auto`` picks the fastest precision whose loss
is at most ``MAX_LOSS_DB`` on both sets, else fp32. ``benchmarks/measure_precision.py``
writes those measurements.

Training keeps its own ``--precision`` (:func:`resizer.devices.resolve_precision`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator, Mapping

import torch

from .errors import UsageError

INFERENCE_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
MAX_LOSS_DB = 0.02  # the quality budget against fp32, on Set5 and Set14 alike
BENCH_SETS: tuple[str, ...] = ("set5", "set14")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

__all__ = ["BENCH_SETS", "INFERENCE_PRECISIONS", "MAX_LOSS_DB", "autocast_for", "check_precision", "choose_precision",
           "cpu_bf16_native", "cpu_int8_native", "cpu_supports", "device_kind", "int8_ranges", "supported_precisions"]


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16_native() -> bool:
    """True when the CPU computes bf16 in hardware (AVX-512 BF16 or AMX); elsewhere oneDNN emulates it, slowly."""
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_int8_native() -> bool:
    """True when the CPU has 8-bit dot products (AVX-512 VNNI, AVX-VNNI or AMX), which int8 inference needs to pay."""
    flags = _cpu_flags()
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def cpu_supports(precision: str) -> bool:
    """Whether this torch build can run convolutions in ``precision`` on the CPU at all (oneDNN's own check).

    int8 is offered only where the CPU has VNNI: without it the int8 kernels are no faster.
    """
    if precision == "fp32":
        return True
    if precision == "int8":
        from .models.int8 import int8_available

        return cpu_int8_native() and int8_available()
    if not torch.backends.mkldnn.is_available():
        return False
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}.get(precision)
    probe = getattr(torch.ops.mkldnn, check, None) if check else None
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def device_kind(device: torch.device) -> str:
    """The key of the manifest's measurements: ``cuda``, ``mps``, ``cpu-bf16`` (native bf16) or ``cpu``.

    A CPU that emulates bf16 runs it several times slower than one that has it, so the
    two are measured, and chosen for, separately.
    """
    if device.type == "cpu":
        return "cpu-bf16" if cpu_bf16_native() else "cpu"
    return device.type


def supported_precisions(device: torch.device) -> tuple[str, ...]:
    """The concrete precisions that run on ``device``, fp32 first."""
    if device.type == "cuda":
        return ("fp32", "bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    if device.type == "mps":
        return ("fp32", "fp16")
    return tuple(p for p in ("fp32", "bf16", "fp16", "int8") if cpu_supports(p))


def check_precision(precision: str | None, device: torch.device) -> str:
    """``precision`` normalised (``auto`` stays ``auto``); ``UsageError`` if unknown or not runnable on ``device``."""
    key = (precision or "auto").strip().lower()
    if key not in INFERENCE_PRECISIONS:
        raise UsageError(f"unknown precision '{precision}' (expected auto, fp32, bf16, fp16 or int8)")
    if key == "auto":
        return key
    usable = supported_precisions(device)
    if key not in usable:
        if device.type == "cpu":
            where = "this CPU (int8 needs VNNI)" if key == "int8" else "this CPU (or this torch build)"
        else:
            where = f"{device} (int8 runs on CPUs only)" if key == "int8" else f"{device}"
        raise UsageError(f"--precision {key} is not supported on {where}; use {' or '.join(['auto', *usable])}")
    return key


def choose_precision(precision: str | None, device: torch.device,
                     measured: Mapping[str, Any] | None = None) -> str:
    """The concrete precision to run: ``precision`` itself, or for ``auto`` the measured choice.

    ``measured`` is a weights entry's ``precision`` field. ``auto`` takes, for this
    :func:`device_kind`, the precision with the largest ``speedup`` (fp32 counts 1.0)
    among those runnable here whose ``loss_db`` is at most ``MAX_LOSS_DB`` on every set of
    ``BENCH_SETS``; without measurements, fp32.
    """
    key = check_precision(precision, device)
    if key != "auto":
        return key
    rows = (measured or {}).get(device_kind(device), {})
    best, best_speed = "fp32", 1.0
    for name in supported_precisions(device)[1:]:
        row = rows.get(name)
        if not isinstance(row, Mapping) or not _within_budget(row):
            continue
        speed = float(row.get("speedup", 0.0))
        if speed > best_speed:
            best, best_speed = name, speed
    return best


def int8_ranges(measured: Mapping[str, Any] | None, device: torch.device) -> Mapping[str, Any] | None:
    """The int8 calibration (``{conv name: [low, high]}``) of a weights entry's ``precision`` field on ``device``.

    It is stored beside the int8 measurements of this device kind; ``None`` where there is none.
    """
    row = (measured or {}).get(device_kind(device), {}).get("int8")
    ranges = row.get("ranges") if isinstance(row, Mapping) else None
    return ranges if isinstance(ranges, Mapping) and ranges else None


def _within_budget(row: Mapping[str, Any]) -> bool:
    """True when ``row["loss_db"]`` holds every benchmark set, each at most ``MAX_LOSS_DB``."""
    losses = row.get("loss_db")
    if not isinstance(losses, Mapping):
        return False
    return all(isinstance(losses.get(s), (int, float)) and losses[s] <= MAX_LOSS_DB for s in BENCH_SETS)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a concrete precision (``None`` for fp32 and ``auto``, which mean no autocast)."""
    return _DTYPES.get(precision)


@contextlib.contextmanager
def autocast_for(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast to ``precision`` on ``device`` (int8: int8 convolutions; nothing for fp32); thread-local, so
    every worker enters it."""
    if precision == "int8":
        from .models.int8 import int8_mode

        with int8_mode():
            yield
        return
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
