"""Files per second with ``--ray`` (1 and 2 workers) against the local run, and Ray's per-file overhead.

Starts its own Ray head (``ray start --head`` with ``--cpus`` CPUs in a temporary folder,
stopped at the end), makes ``--files`` RGB PNGs of ``--megapixels`` and runs ``down --scale 2``
through :func:`resizer.pipeline.run_batch` with a classical (lanczos) and a learned (dsn)
method: locally (default jobs), then on the cluster with 1 and 2 actors.

Each configuration runs N and 2N files; the difference is the steady cost of N files, free of
the fixed cost of a run (connecting, starting the actors, loading the network), which is
reported apart. Overhead = Ray's steady per-file time with one actor (using every CPU, like the
local run) over the local one, minus 1; the target is at most 15% for the learned method.

    python benchmarks/ray_throughput.py [--files 6] [--megapixels 0.25] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.15


def make_inputs(folder: Path, count: int, megapixels: float) -> None:
    height = int(round(math.sqrt(megapixels * 1e6 * 3 / 4)))
    width = int(round(height * 4 / 3))
    folder.mkdir(parents=True)
    for index in range(count):
        rng = np.random.default_rng(index)
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([127 + 90 * np.sin(x / (7 + index)), 255 * x / width, 200 * (y > height / 2)], axis=-1)
        image = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"im{index:03d}.png")


def start_head(cpus: int, temp: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--num-cpus", str(cpus), "--num-gpus", "0", "--port", str(port), "--temp-dir", temp,
                             "--include-dashboard", "false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return head, f"127.0.0.1:{port}"
        except OSError:
            if head.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("ray start --head did not come up")
            time.sleep(0.2)


def stop_head(head: subprocess.Popen) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(head.pid, signum)
            head.wait(timeout=3)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def timed_run(inputs: list[str], method: str, out: Path, jobs: int | None, address: str | None) -> float:
    from resizer.distributed import RayExecutor
    from resizer.geometry import SizeSpec
    from resizer.pipeline import BatchSettings, run_batch

    settings = BatchSettings("down", SizeSpec(scale=2), method=method, output=str(out), jobs=jobs)
    executor = RayExecutor(address) if address else None
    started = time.perf_counter()
    results = run_batch(inputs, settings, executor=executor)
    seconds = time.perf_counter() - started
    assert all(r.status == "ok" for r in results), [r.error for r in results if r.error]
    return seconds


def measure(work: Path, files: list[str], method: str, label: str, jobs: int | None, address: str | None) -> dict:
    half = files[: len(files) // 2]
    small = timed_run(half, method, work / f"{method}-{label}-small", jobs, address)
    big = timed_run(files, method, work / f"{method}-{label}-big", jobs, address)
    per_file = max(big - small, 1e-9) / len(half)
    return {"method": method, "run": label, "files": len(files), "seconds": round(big, 2),
            "files_per_s": round(len(files) / big, 2), "steady_s_per_file": round(per_file, 4),
            "steady_files_per_s": round(1 / per_file, 2), "fixed_s": round(big - per_file * len(files), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6, help="N (the big run has 2N files)")
    parser.add_argument("--megapixels", type=float, default=0.25)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--methods", default="lanczos,dsn")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # this run's own token, not ~/.ray/auth_token
    os.environ.setdefault("RAY_AUTH_TOKEN", os.urandom(16).hex())
    work = Path(tempfile.mkdtemp(prefix="rz-bench-"))
    temp = tempfile.mkdtemp(prefix="rzb-", dir="/tmp")
    head, address = start_head(args.cpus, temp)
    rows = []
    try:
        make_inputs(work / "in", 2 * args.files, args.megapixels)
        files = sorted(str(p) for p in (work / "in").iterdir())
        for method in args.methods.split(","):
            rows.append(measure(work, files, method, "local", None, None))
            rows.append(measure(work, files, method, "ray-1", 1, address))
            rows.append(measure(work, files, method, "ray-2", 2, address))
    finally:
        stop_head(head)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print(json.dumps(row))
    failed = False
    for method in args.methods.split(","):
        local, one = (next(r for r in rows if r["method"] == method and r["run"] == run) for run in ("local", "ray-1"))
        overhead = one["steady_s_per_file"] / local["steady_s_per_file"] - 1
        learned = method != "lanczos"
        print(f"{method}: Ray per-file overhead with one actor {overhead:+.1%}"
              + (f" (target <= {TARGET:.0%})" if learned else ""))
        failed |= learned and overhead > TARGET
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
