"""Rate-targeted ``encode`` + ``decode`` against the plain codec at equal file size, per image.

Issue 20's target: on Set5 and Set14, at or below 0.6 bpp, luma PSNR never below plain JPEG
at any rate and a mean gain of at least +1.2 dB, each image measured against its own JPEG
curve. For every image (cropped right/bottom to a multiple of 12, so that x2, x3 and x4 are
all exact) and every target rate, ``encode --bpp RATE``'s search runs (:mod:`resizer.rate_encode`:
the downscales once per image, then the choice per rate) and its file goes through ``decode``'s
code path; the plain codec's curve of the same image (every quality 1..100, no
metadata) is interpolated at the file's actual bits per pixel. Both are scored the same way:
luma (BT.601), ``SHAVE`` pixels shaved from every border, PSNR with peak 255. The bytes are
whole files, resizer's metadata included.

    python benchmarks/rate_target.py [--rates 0.2,0.3,0.4,0.5,0.6] [--codec jpeg] [--json FILE] [DATASET ...]

Datasets default to ``$RESIZER_DATASETS/bench/set5`` and ``.../set14``. Exits 1 when the target
is missed (a gain below 0 at some point, or a mean gain below ``TARGET_MEAN_GAIN``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from resizer.codec import codec_format
from resizer.color import luma
from resizer.evaluation import list_dataset
from resizer.image_io import Picture, encode_picture, load_picture, to_8bit
from resizer.methods import RunOptions
from resizer.metrics import psnr, shave
from resizer.rate_encode import RateTarget, candidates, choose, decoded_result, prepare

CROP = 12  # lcm of the pairs' scales
SHAVE = 4  # ceil of the largest scale, for every pipeline alike
PLAIN_QUALITIES = tuple(range(1, 101))  # every quality: the curve is the codec's own, not a chord between samples
TARGET_MEAN_GAIN = 1.2


def _original(path: Path) -> Picture:
    picture = load_picture(path)
    pixels = picture.pixels[:, :, :-1] if picture.has_alpha else picture.pixels
    pixels = to_8bit(pixels)
    height, width = (pixels.shape[0] // CROP) * CROP, (pixels.shape[1] // CROP) * CROP
    return Picture(np.ascontiguousarray(pixels[:height, :width]))


def _score(reference: np.ndarray, picture: Picture) -> float:
    return psnr(reference, shave(luma(picture.pixels), SHAVE))


def _plain_curve(original: Picture, fmt: str, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bpp, PSNR) of the plain codec at ``PLAIN_QUALITIES``, sorted by bpp."""
    points = []
    for quality in PLAIN_QUALITIES:
        data = encode_picture(original, fmt, quality=quality)
        points.append((8.0 * len(data) / (original.width * original.height), _score(reference, load_picture(data))))
    points.sort()
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def measure(paths: list[Path], rates: list[float], codec: str, run: RunOptions) -> list[dict]:
    """One row per image and rate: the choice, its bpp and PSNR, and the plain codec's PSNR at that bpp."""
    fmt = codec_format(codec)
    rows = []
    pipelines = candidates(RateTarget(bpp=1.0, codec=codec, format=fmt), run)
    for path in paths:
        original = _original(path)
        reference = shave(luma(original.pixels), SHAVE)
        bpps, psnrs = _plain_curve(original, fmt, reference)
        started = time.perf_counter()
        prepared = prepare(original, pipelines, run)
        for rate in rates:
            target = RateTarget(bpp=rate, codec=codec, format=fmt)
            try:
                choice = choose(original, prepared, target, run=run, name=path.name)
            except Exception as exc:  # an impossible budget: the row says so
                rows.append({"dataset": path.parent.name, "image": path.name, "rate": rate, "error": str(exc)})
                continue
            mine = _score(reference, decoded_result(choice.data, run))
            plain = float(np.interp(choice.bpp, bpps, psnrs)) if bpps[0] <= choice.bpp <= bpps[-1] else None
            rows.append({"dataset": path.parent.name, "image": path.name, "rate": rate, "bpp": choice.bpp,
                         "pipeline": choice.pipeline, "quality": choice.quality, "psnr": mine, "plain": plain,
                         "gain": None if plain is None else mine - plain, "encoder_psnr": choice.psnr})
        print(f"{path.parent.name}/{path.name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> tuple[str, float, float]:
    """The text table per dataset and rate, with the mean and the smallest gain over every measured point."""
    lines = [f"{'dataset':8} {'rate':>5} {'bpp':>6} {'PSNR':>6} {'plain':>6} {'gain':>6} {'min':>6}  pipelines"]
    gains = [r["gain"] for r in rows if r.get("gain") is not None]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for rate in dict.fromkeys(r["rate"] for r in rows):
            group = [r for r in rows if r["dataset"] == dataset and r["rate"] == rate and r.get("gain") is not None]
            if not group:
                continue
            chosen = Counter(r["pipeline"] for r in group)
            lines.append(f"{dataset:8} {rate:5.2f} {np.mean([r['bpp'] for r in group]):6.3f} "
                         f"{np.mean([r['psnr'] for r in group]):6.2f} {np.mean([r['plain'] for r in group]):6.2f} "
                         f"{np.mean([r['gain'] for r in group]):+6.2f} {min(r['gain'] for r in group):+6.2f}  "
                         + ", ".join(f"{n} {c}" for n, c in sorted(chosen.items())))
        group = [r["gain"] for r in rows if r["dataset"] == dataset and r.get("gain") is not None]
        lines.append(f"{dataset:8} {'all':>5} {'':6} {'':6} {'':6} {np.mean(group):+6.2f} {min(group):+6.2f}")
    missing = [r for r in rows if r.get("gain") is None]
    if missing:
        lines.append(f"{len(missing)} points outside the plain curve or over budget: "
                     + "; ".join(f"{r['image']}@{r['rate']}" for r in missing))
    mean, low = float(np.mean(gains)), float(min(gains))
    lines.append(f"all {len(gains)} points: mean gain {mean:+.2f} dB, smallest {low:+.2f} dB")
    return "\n".join(lines), mean, low


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path)
    parser.add_argument("--rates", default="0.2,0.3,0.4,0.5,0.6")
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--json", type=Path, help="also write every row as JSON lines")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("RESIZER_DATASETS", "../shared/datasets"))
    folders = args.datasets or [root / "bench" / "set5", root / "bench" / "set14"]
    paths = [p for folder in folders for p in list_dataset(folder)]
    rates = [float(r) for r in args.rates.split(",")]
    rows = measure(paths, rates, args.codec, RunOptions())
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text, mean, low = table(rows)
    print(f"rate-targeted encode + decode vs plain {args.codec}, luma PSNR at equal bpp (shave {SHAVE})")
    print(text)
    return 0 if low >= 0 and mean >= TARGET_MEAN_GAIN else 1


if __name__ == "__main__":
    sys.exit(main())
