"""How much resizer's classical path adds to a bare Pillow resize.

Budget: end to end (read PNG, resize, write PNG) resizer may add at most 10% to the same
work done with Pillow alone. Exits 1 when a case is over budget.

    python benchmarks/bench_classical.py [--megapixels 12] [--repeat 3] [--clock cpu|wall]

The default clock is this process's CPU time: everything timed here is single-threaded,
and on a shared machine wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from resizer.image_io import Picture, load_picture, save_picture
from resizer.methods import ResizeRequest, RunOptions, get_method

BUDGET = 0.10
FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def photo_like(megapixels: float, seed: int = 0) -> np.ndarray:
    """A 4:3 RGB image with smooth shading, hard edges, fine texture and sensor-like noise."""
    height = int(round(math.sqrt(megapixels * 1e6 * 3 / 4)))
    width = int(round(height * 4 / 3))
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    sky = 170 + 60 * y - 30 * x
    hills = (y > 0.55 + 0.1 * np.sin(9 * x)).astype(np.float32)
    disc = ((x - 0.7) ** 2 + (y - 0.3) ** 2 < 0.01).astype(np.float32)
    texture = 12 * np.sin(400 * x) * np.sin(300 * y)
    red = sky * (1 - hills) + (90 + texture) * hills + 60 * disc
    green = (sky + 10) * (1 - hills) + (140 + texture) * hills + 40 * disc
    blue = (sky + 50) * (1 - hills) + (60 + texture) * hills - 80 * disc
    image = np.stack([red, green, blue], axis=-1)
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).round().astype(np.uint8)


CLOCK: Callable[[], float] = time.process_time


def best_of(repeat: int, work: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(repeat):
        start = CLOCK()
        work()
        best = min(best, CLOCK() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=12.0, help="size of the source photo (default 12)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (default 3)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="process CPU time (default; robust on a busy machine) or wall time")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    with tempfile.TemporaryDirectory(prefix="bench-classical-") as folder:
        work = Path(folder)
        big = photo_like(args.megapixels)
        Image.fromarray(big).save(work / "big.png")
        small_size = (big.shape[1] // 2, big.shape[0] // 2)
        Image.fromarray(big).resize(small_size, Image.Resampling.BOX).save(work / "small.png")
        print(f"source: {big.shape[1]}x{big.shape[0]} ({big.shape[0] * big.shape[1] / 1e6:.1f} MP) PNG; "
              f"x2 source: {small_size[0]}x{small_size[1]}; best of >= {args.repeat} runs, {args.clock} time")

        cases = []
        for name in FILTERS:
            cases.append((f"{name} /4 down", name, work / "big.png", (big.shape[1] // 4, big.shape[0] // 4), "down"))
        for name in FILTERS:
            cases.append((f"{name} x2 up", name, work / "small.png", (small_size[0] * 2, small_size[1] * 2), "up"))

        rows = []
        runs_used: dict[str, int] = {}
        over = False
        for label, name, source, size, direction in cases:
            method = get_method(name)
            request = ResizeRequest(direction=direction, size=size, scale=4.0 if direction == "down" else 2.0)
            options = RunOptions()
            out_pillow, out_resizer = work / "pillow.png", work / "resizer.png"

            def pillow_end_to_end() -> None:
                with Image.open(source) as image:
                    image.resize(size, FILTERS[name]).save(out_pillow)

            def resizer_end_to_end() -> None:
                picture = load_picture(source)
                save_picture(method.resize(picture, request, options), out_resizer, overwrite=True)

            loaded_image = Image.open(source)
            loaded_image.load()
            loaded_picture = load_picture(source)
            array_picture = Picture(np.array(loaded_picture.pixels))

            pillow_e2e = resizer_e2e = math.inf
            runs = args.repeat
            index = 0
            while index < runs:  # interleaved, so drift hits both sides alike
                pillow_e2e = min(pillow_e2e, best_of(1, pillow_end_to_end))
                resizer_e2e = min(resizer_e2e, best_of(1, resizer_end_to_end))
                if index == 0:  # short cases get more runs: at least ~3 s a side, at most 15 runs
                    runs = max(args.repeat, min(15, math.ceil(3.0 / max(pillow_e2e, 1e-3))))
                index += 1
            runs_used[label] = runs
            pillow_resize = best_of(args.repeat, lambda: loaded_image.resize(size, FILTERS[name]))
            resizer_resize = best_of(args.repeat, lambda: method.resize(loaded_picture, request, options))
            array_resize = best_of(args.repeat, lambda: method.resize(array_picture, request, options).pixels)
            overhead = resizer_e2e / pillow_e2e - 1
            over |= overhead > BUDGET
            rows.append((label, pillow_e2e, resizer_e2e, overhead, pillow_resize, resizer_resize, array_resize))
            with Image.open(out_pillow) as a, Image.open(out_resizer) as b:
                if np.asarray(a).tobytes() != np.asarray(b).tobytes():
                    print(f"{label}: outputs differ", file=sys.stderr)
                    over = True

    header = ("case", "pillow e2e", "resizer e2e", "overhead", "pillow resize", "resizer resize", "overhead",
              "array in+out")
    print("\n{:<18} {:>11} {:>12} {:>9} {:>14} {:>15} {:>9} {:>13}".format(*header))
    for label, p_e2e, r_e2e, overhead, p_rs, r_rs, a_rs in rows:
        print(f"{label:<18} {p_e2e:>10.3f}s {r_e2e:>11.3f}s {overhead:>+8.1%} {p_rs:>13.3f}s {r_rs:>14.3f}s "
              f"{r_rs / p_rs - 1:>+8.1%} {a_rs:>12.3f}s")
    print("\nend-to-end runs per side (best kept): " + ", ".join(f"{k} {v}" for k, v in runs_used.items()))
    print(f"budget: end-to-end overhead <= {BUDGET:.0%}: {'FAIL' if over else 'ok'}")
    print("(array in+out: resizing a plain numpy picture and reading the result back as numpy)")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
