"""Start-up of a learned ``resizer up`` against ``import torch`` alone (target: within 0.5 s).

    python benchmarks/bench_startup.py [--runs 5] [--method asdn]

Each command runs in a fresh interpreter; the best wall time of ``--runs`` counts (the
machine's other work only ever adds time). The image is 32x32, so the difference is the
start-up: importing resizer, parsing, reading the manifest, loading the weights, the
first call of the network.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def best_of(command: list[str], runs: int) -> float:
    """The fastest wall time of ``runs`` runs of ``command`` (which must succeed)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--method", default="asdn")
    args = parser.parse_args(argv)
    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "small.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(source)
        torch_s = best_of([sys.executable, "-c", "import torch"], args.runs)
        up_s = best_of([sys.executable, "-m", "resizer", "up", str(source), "--scale", "2", "--method", args.method,
                        "--overwrite", "-q", "-o", str(Path(folder) / "out.png")], args.runs)
    extra = up_s - torch_s
    print(json.dumps({"import_torch_s": round(torch_s, 3), "resizer_up_s": round(up_s, 3), "extra_s": round(extra, 3),
                      "target_s": TARGET_S, "ok": extra <= TARGET_S, "method": args.method}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
