"""Devices and precisions: what ``--device`` and ``--precision`` mean, said once.

Every layer (engine, training, the MATLAB resampler, the weights loader, the benchmark)
resolves a device name and an autocast precision here, so ``auto`` and the error
messages are the same everywhere.
"""

from __future__ import annotations

import os
import platform

import torch

from .errors import UsageError

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def mps_available() -> bool:
    """True when this torch build can run on an Apple GPU."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(device: str | torch.device | None = "auto", *, allow_mps: bool = True) -> torch.device:
    """``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    ``allow_mps=False`` keeps ``auto`` off MPS (it lacks float64, which exact resampling
    needs). Raises ``UsageError`` naming the backend when the device asked for is not there.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if allow_mps and mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            reason = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU was found"
            raise UsageError(f"--device {device}: CUDA is not available ({reason}); use --device cpu")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(f"--device {device}: no such CUDA device ({torch.cuda.device_count()} found)")
        return torch.device(name)
    if name == "mps":
        if not mps_available():
            raise UsageError(f"--device {device}: MPS (Apple GPU) is not available; use --device cpu")
        return torch.device("mps")
    raise UsageError(f"unknown device '{device}' (expected auto, cpu, cuda, cuda:N or mps)")


def resolve_precision(precision: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain fp32).

    ``auto`` is bf16 on CUDA GPUs that support it, fp16 on older ones and MPS, fp32 on
    CPUs. Half precisions are refused on CPU: fp16 convolutions are slow or missing there
    and bf16 loses the 1/255 agreement the engine promises.
    """
    key = (precision or "fp32").strip().lower()
    if key not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}' (expected auto, fp32, fp16 or bf16)")
    if key == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else None
    dtype = _DTYPES[key]
    if dtype is None:
        return None
    if device.type == "cpu":
        raise UsageError(f"--precision {key} needs a GPU; use fp32 on CPU")
    if device.type == "mps" and dtype is torch.bfloat16:
        raise UsageError("--precision bf16 is not supported on MPS; use fp16 or fp32")
    if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise UsageError("--precision bf16 is not supported by this GPU; use fp16 or fp32")
    return dtype


def cpu_cores() -> int:
    """Cores this process may run on (its affinity on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def use_all_cpu_threads() -> None:
    """Give torch one intra-op thread per available core (a learned resize uses them all)."""
    cores = cpu_cores()
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def hardware_string(device: torch.device | str = "cpu") -> str:
    """E.g. ``"AMD EPYC, 2 cores, 1 torch thread"`` or ``"NVIDIA H100 80GB HBM3"`` (recipes, bench)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{cpu_name()}, {os.cpu_count()} cores, {threads} torch thread{'s' if threads != 1 else ''}"
