"""Peak memory of the classical path, per megapixel of input: read PNG, resize, write PNG.

Each case runs in a fresh subprocess and reads its peak resident memory
(``resource.getrusage(...).ru_maxrss``) after the imports (the baseline), after reading,
after resizing and after writing, then once more end to end through the CLI
(``resizer down --scale 2 --method lanczos``). Peaks are reported above the baseline, in
MB and MB per input megapixel.

    python benchmarks/bench_memory.py [--megapixels 16] [--cases rgb8,rgba8,rgb16,rgba16] [--cli]

Nothing here is a pass/fail test: memory depends on the allocator and the Pillow build.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

STAGES = r"""
import json, resource, sys
def reset():  # Linux: "5" resets the peak (VmHWM) to the current resident size
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
def peak():
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # KiB -> MiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def current():
    with open("/proc/self/status") as handle:
        return next(int(l.split()[1]) / 1024 for l in handle if l.startswith("VmRSS:"))
from resizer.image_io import load_picture, save_picture
from resizer.classical import resize_picture
reset()
base = current()
picture = load_picture(sys.argv[1])
read = peak()
reset()
held = current()  # the decoded picture stays in memory from here on
out = resize_picture(picture, ((picture.width + 1) // 2, (picture.height + 1) // 2), "lanczos")
resized = peak()
reset()
save_picture(out, sys.argv[2], overwrite=True)
print(json.dumps({"base": base, "read": read, "held": held, "resize": resized, "write": peak()}))
"""

CLI = r"""
import resource, subprocess, sys
code = subprocess.call([sys.executable, "-m", "resizer"] + sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
sys.exit(code)
"""

CLI_BASE = r"""
import resource, subprocess, sys
subprocess.call([sys.executable, "-c", "import resizer.cli, resizer.pipeline, resizer.classical"])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def make_image(case: str, megapixels: float, path: Path) -> tuple[int, int]:
    """A 4:3 picture with gradients and noise (compresses like a photo, not like a flat field)."""
    from resizer.image_io import Picture, save_picture

    height = int(round(math.sqrt(megapixels * 1e6 * 3 / 4)))
    width = int(round(height * 4 / 3))
    channels = 4 if case.startswith("rgba") else 3
    peak = 65535 if case.endswith("16") else 255
    dtype = np.uint16 if peak == 65535 else np.uint8
    rng = np.random.default_rng(0)
    pixels = np.empty((height, width, channels), dtype)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    for start in range(0, height, 512):  # in bands, so that making the image needs little memory
        y = np.linspace(start / height, min(start + 512, height) / height, min(512, height - start),
                        endpoint=False, dtype=np.float32)[:, None]
        for c in range(channels):
            band = (0.5 + 0.4 * np.sin(6 * x + 3 * y + c)) * peak
            band = band + rng.normal(0, peak / 200, band.shape).astype(np.float32)
            pixels[start:start + 512, :, c] = np.clip(band, 0, peak).astype(dtype)
    save_picture(Picture(pixels), path, overwrite=True)
    return width, height


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=16.0)
    parser.add_argument("--cases", default="rgb8,rgba8,rgb16,rgba16")
    parser.add_argument("--cli", action="store_true", help="also measure the whole CLI run")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        cli_base = float(subprocess.check_output([sys.executable, "-c", CLI_BASE], text=True)) if args.cli else 0
        for case in args.cases.split(","):
            source, target = Path(folder) / f"{case}.png", Path(folder) / f"{case}_out.png"
            width, height = make_image(case, args.megapixels, source)
            mp = width * height / 1e6
            stages = json.loads(subprocess.check_output([sys.executable, "-c", STAGES, str(source), str(target)],
                                                        text=True))
            row = {"case": case, "size": f"{width}x{height}", "megapixels": round(mp, 2)}
            for stage in ("read", "resize", "write"):
                above = stages[stage] - stages["base"]
                row[f"{stage}_mb"] = round(above)
                row[f"{stage}_mb_per_mp"] = round(above / mp, 1)
            if args.cli:
                target.unlink(missing_ok=True)
                peak = float(subprocess.check_output(
                    [sys.executable, "-c", CLI, "down", "--scale", "2", "--method", "lanczos", str(source),
                     "-o", str(target)], text=True))
                row["cli_mb"] = round(peak - cli_base)
                row["cli_mb_per_mp"] = round((peak - cli_base) / mp, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
