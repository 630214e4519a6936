"""The device checks behind benchmarks/gpu_check.sh: quality per precision, tiling, OOM, throughput.

    python benchmarks/gpu_check.py --device cuda          # on a GPU machine (well under 5 minutes)
    python benchmarks/gpu_check.py --device cpu --quick   # the CPU side here: one image per set

Prints one JSON line per check and a final summary line; exits 1 if a check failed.
Quality: every bundled weights entry, each precision the device runs against fp32 with
the benchmark protocol on Set5 and Set14 (resizer.precision_survey, nothing written
to the manifest: pass --record to write the measurements).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _sets(root: Path, quick: bool, scratch: Path) -> dict[str, Path]:
    """Set5 and Set14, or with ``quick`` a folder holding the first image of each."""
    sets = {name: root / "bench" / name for name in ("set5", "set14")}
    if not quick:
        return sets
    small = {}
    for name, folder in sets.items():
        first = sorted(folder.glob("*.png"))[0]
        (scratch / name).mkdir()
        shutil.copy(first, scratch / name / first.name)
        small[name] = scratch / name
    return small


def quality(device: str, datasets: dict[str, Path], record: bool, megapixels: float) -> list[dict]:
    import torch

    from resizer.precision import MAX_LOSS_DB
    from resizer.precision_survey import measure_entry, record_measurement
    from resizer.weights import read_manifest

    # int8 is a CPU precision with its own calibration (benchmarks/measure_precision.py --precision int8)
    low = [p for p in _float_precisions(torch.device(device)) if p != "fp32"]
    rows, done = [], set()
    for entry in read_manifest():
        if entry.name in done:
            continue
        for name, measured in measure_entry(entry.name, datasets, device=device, megapixels=megapixels,
                                            precisions=low).items():
            done.add(name)
            if record:
                record_measurement(name, measured, device=device)
            for precision, row in measured.items():
                worst = max(row["loss_db"].values())
                rows.append({"check": "quality", "entry": name, "precision": precision, "loss_db": row["loss_db"],
                             "speedup": row["speedup"], "ok": worst <= MAX_LOSS_DB, "within_budget": worst <= MAX_LOSS_DB})
    return rows


def _float_precisions(device) -> list[str]:
    """The precisions the device runs, int8 left out (it needs a calibrated network copy)."""
    from resizer.precision import supported_precisions

    return [p for p in supported_precisions(device) if p != "int8"]


def tiling(device: str) -> list[dict]:
    import torch

    from resizer.engine import upscale_tensor
    from resizer.weights import load

    rows = []
    side = (200, 230) if device.startswith("cuda") else (90, 110)
    x = torch.rand(1, 1, *side, generator=torch.Generator().manual_seed(0))
    for family, scale in (("asdn", 2.5), ("dair", 2), ("vdsr", 3)):
        model = load(family, scale, device=device).model
        for precision in _float_precisions(torch.device(device)):
            whole = upscale_tensor(model, x, scale, tile=0, device=device, precision=precision)
            tiled = upscale_tensor(model, x, scale, tile=64 if device.startswith("cuda") else 32, device=device,
                                   precision=precision)
            diff = (whole - tiled).abs().max().item() * 255
            rows.append({"check": "tiled==whole", "method": family, "scale": scale, "precision": precision,
                         "max_diff_levels": round(diff, 5), "ok": diff <= (0.01 if precision == "fp32" else 0.5)})
    return rows


def out_of_memory(device: str) -> list[dict]:
    """A real CUDA OOM (memory capped) recovered by halving the tile; on a CPU a simulated one."""
    import torch

    from resizer.engine import upscale_tensor
    from resizer.weights import load

    model = load("vdsr", 2, device=device).model
    if device.startswith("cuda"):
        x = torch.rand(1, 1, 1500, 1500)
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5e9 / total), torch.device(device))
    else:
        x = torch.rand(1, 1, 120, 120)
        real = model.forward

        def forward(t, scale):  # the first whole-image call fails as CUDA would
            if max(t.shape[-2:]) > 100:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated on the CPU)")
            return real(t, scale)

        model.forward = forward
    started = time.perf_counter()
    try:
        out = upscale_tensor(model, x, 2, tile=0, device=device)
        ok, error = bool(torch.isfinite(out).all()), None
    except Exception as exc:  # noqa: BLE001 - the check reports it
        ok, error = False, str(exc)
    finally:
        if device.startswith("cuda"):
            torch.cuda.set_per_process_memory_fraction(1.0, torch.device(device))
            torch.cuda.empty_cache()
        else:
            del model.forward
    return [{"check": "out-of-memory", "input": list(x.shape[-2:]), "ok": ok, "error": error,
             "seconds": round(time.perf_counter() - started, 2), "simulated": not device.startswith("cuda")}]


def throughput(device: str, megapixels: float) -> list[dict]:
    from resizer.bench import run_bench
    from resizer.precision import supported_precisions
    import torch

    methods = ["asdn", "dair", "vdsr", "car", "srcnn", "dsn"] if device.startswith("cuda") else ["asdn", "car"]
    report = run_bench(methods, [2.0, 4.0], megapixels, device,
                       precisions=list(supported_precisions(torch.device(device))))
    return [{"check": "throughput", "method": r.method, "direction": r.direction, "scale": r.scale,
             "precision": r.precision, "out_mp_per_s": round(r.out_mp_per_s, 3), "in_mp_per_s": round(r.in_mp_per_s, 3),
             "vs_edsr": r.vs_edsr and round(r.vs_edsr, 3), "ok": True} for r in report.rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="one image per benchmark set, small throughput images")
    parser.add_argument("--record", action="store_true", help="write the quality measurements into the manifest")
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("RESIZER_DATASETS", "../shared/datasets")))
    args = parser.parse_args(argv)
    started, failed = time.perf_counter(), 0
    with tempfile.TemporaryDirectory() as scratch:
        datasets = _sets(args.datasets, args.quick, Path(scratch))
        checks = [lambda: tiling(args.device), lambda: out_of_memory(args.device),
                  lambda: quality(args.device, datasets, args.record, 0.02 if args.quick else 0.25),
                  lambda: throughput(args.device, 0.01 if args.quick else 1.0)]
        for check in checks:
            for row in check():
                failed += not row["ok"]
                print(json.dumps(row), flush=True)
    print(json.dumps({"check": "summary", "device": args.device, "failed": failed,
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
