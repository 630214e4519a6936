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

The search codes JPEG with progressive scans where that is smaller (the same pixels), so the gain
is also given against a plain curve that does the same (``scans``: the smaller of baseline and
progressive at each quality), and against Pillow's defaults (``pillow``: no Huffman optimisation,
which resizer's plain JPEG has). Every candidate's own result is kept in the rows, and the
table's last lines say what the search would reach without each kind of candidate (``without``).

    python benchmarks/rate_target.py [--rates 0.2,0.3,0.4,0.5,0.6] [--codec jpeg] [--json FILE]
        [--no-smaller-scans] [--decode-passes N] [--all-pairing-keys] [DATASET ...]

``--no-smaller-scans`` and ``--all-pairing-keys`` turn off, one at a time, the progressive-when-smaller
coding and the trimmed pairing key (``resizer:version``); ``--decode-passes 8`` measures ``decode
--ensemble 8`` (the default decode restores in one pass), to see what each adds.

Datasets default to ``$RESIZER_DATASETS/bench/set5`` and ``.../set14``. Exits 1 when the target
is missed (a gain below 0 at some point, or a mean gain below ``TARGET_MEAN_GAIN``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from resizer import rate_encode, restoration
from resizer.codec import codec_format
from resizer.color import luma
from resizer.evaluation import list_dataset
from resizer.image_io import EncodeOptions, Picture, encode_picture, load_picture, to_8bit
from resizer.methods import RunOptions
from resizer.metrics import psnr, shave
from resizer.rate_encode import Prepared, RateTarget, candidates, choose, decoded_result, prepare

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


def _pillow_default(original: Picture, quality: int) -> bytes:
    """Pillow's own JPEG at ``quality`` (no ``optimize``, which resizer's writer sets)."""
    pixels = original.pixels[:, :, 0] if original.pixels.shape[2] == 1 else original.pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _plain_curves(original: Picture, fmt: str, reference: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(bpp, PSNR) of the plain codec at ``PLAIN_QUALITIES``, sorted by bpp: ``plain`` (resizer's writer), and for
    JPEG ``scans`` (the smaller of baseline and progressive) and ``pillow`` (Pillow's defaults)."""
    pixels = 8.0 / (original.width * original.height)
    points: dict[str, list[tuple[float, float]]] = {"plain": []}
    if fmt == "jpg":
        points.update(scans=[], pillow=[])
    for quality in PLAIN_QUALITIES:
        data = encode_picture(original, fmt, quality=quality)
        score = _score(reference, load_picture(data))
        points["plain"].append((pixels * len(data), score))
        if fmt == "jpg":
            progressive = encode_picture(original, fmt, quality=quality, options=EncodeOptions(progressive=True))
            points["scans"].append((pixels * min(len(data), len(progressive)), score))
            points["pillow"].append((pixels * len(_pillow_default(original, quality)), score))
    curves = {}
    for name, found in points.items():
        found.sort()
        curves[name] = (np.array([p[0] for p in found]), np.array([p[1] for p in found]))
    return curves


def _at(curve: tuple[np.ndarray, np.ndarray], bpp: float) -> float | None:
    bpps, psnrs = curve
    return float(np.interp(bpp, bpps, psnrs)) if bpps[0] <= bpp <= bpps[-1] else None


def _candidates_scored(prepared: list[Prepared], choice, reference: np.ndarray, pixels: int,
                       curves: dict) -> dict[str, dict]:
    """Every candidate's best fit at this rate: its bpp, shaved PSNR, encoder PSNR and the plain PSNR at its bpp."""
    found = {}
    for entry in prepared:
        tried = choice.tried.get(entry.candidate.name)
        if tried is None:
            continue
        bpp = 8.0 * tried["bytes"] / pixels
        found[entry.candidate.name] = {"bpp": bpp, "psnr": psnr(reference, shave(entry.lumas[tried["quality"]], SHAVE)),
                                       "encoder_psnr": tried["psnr"], "plain": _at(curves["plain"], bpp)}
    return found


def measure(paths: list[Path], rates: list[float], codec: str, run: RunOptions, smaller_scans: bool = True) -> list[dict]:
    """One row per image and rate: the choice, its bpp and PSNR, the plain codec's PSNR at that bpp, every candidate."""
    fmt = codec_format(codec)
    rows = []
    pipelines = candidates(RateTarget(bpp=1.0, codec=codec, format=fmt), run)
    for path in paths:
        original = _original(path)
        reference = shave(luma(original.pixels), SHAVE)
        curves = _plain_curves(original, fmt, reference)
        started = time.perf_counter()
        prepared = prepare(original, pipelines, run)
        for entry in prepared:
            entry.lumas = {}
        for rate in rates:
            target = RateTarget(bpp=rate, codec=codec, format=fmt)
            try:
                choice = choose(original, prepared, target, run=run, name=path.name, smaller_scans=smaller_scans)
            except Exception as exc:  # an impossible budget: the row says so
                rows.append({"dataset": path.parent.name, "image": path.name, "rate": rate, "error": str(exc)})
                continue
            mine = _score(reference, decoded_result(choice.data, run))
            row = {"dataset": path.parent.name, "image": path.name, "rate": rate, "bpp": choice.bpp,
                   "pipeline": choice.pipeline, "quality": choice.quality, "psnr": mine, "encoder_psnr": choice.psnr,
                   "candidates": _candidates_scored(prepared, choice, reference, original.width * original.height,
                                                    curves)}
            for name, curve in curves.items():
                plain = _at(curve, choice.bpp)
                row[name] = plain
                row["gain" if name == "plain" else f"gain_{name}"] = None if plain is None else mine - plain
            rows.append(row)
        seconds = time.perf_counter() - started
        print(f"{path.parent.name}/{path.name}: {seconds:.1f} s", file=sys.stderr, flush=True)
        rows.append({"dataset": path.parent.name, "image": path.name, "seconds": seconds})
    return rows


def without(rows: list[dict], dropped: Callable[[str], bool]) -> tuple[float, float, int]:
    """Mean and smallest gain (and the points) had the search not had the candidates ``dropped`` names."""
    gains = []
    for row in rows:
        kept = {n: c for n, c in row.get("candidates", {}).items() if not dropped(n)}
        if not kept:
            continue
        best = max(kept.values(), key=lambda c: (c["encoder_psnr"], -c["bpp"]))
        if best["plain"] is not None:
            gains.append(best["psnr"] - best["plain"])
    return (float(np.mean(gains)), float(min(gains)), len(gains)) if gains else (float("nan"), float("nan"), 0)


def table(rows: list[dict]) -> tuple[str, float, float]:
    """The text table per dataset and rate, with the mean and the smallest gain over every measured point."""
    timings = [r for r in rows if "seconds" in r]
    rows = [r for r in rows if "seconds" not in r]
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
    for other in ("scans", "pillow"):
        extra = [r[f"gain_{other}"] for r in rows if r.get(f"gain_{other}") is not None]
        if extra:
            lines.append(f"  against the {other} curve: mean {np.mean(extra):+.3f} dB, smallest {min(extra):+.3f} "
                         f"({len(extra)} points)")
    kinds = {"nothing (ranking scores: one restoration pass)": lambda n: False, "restored pairs": lambda n: n.startswith("dejpeg-") and "asdn" not in n,
             "bicubic + dejpeg + asdn": lambda n: "asdn" in n, "every restoration candidate": lambda n: n.startswith("dejpeg-")}
    for label, dropped in kinds.items():
        m, lo, count = without(rows, dropped)
        lines.append(f"  without {label}: mean {m:+.3f} dB, smallest {lo:+.3f} ({count} points)")
    if timings:
        lines.append(f"search time per image: mean {np.mean([t['seconds'] for t in timings]):.1f} s "
                     f"(min {min(t['seconds'] for t in timings):.1f}, max {max(t['seconds'] for t in timings):.1f}) "
                     f"for {len({r['rate'] for r in rows})} rates")
    return "\n".join(lines), mean, low


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path)
    parser.add_argument("--rates", default="0.2,0.3,0.4,0.5,0.6")
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--json", type=Path, help="also write every row as JSON lines")
    parser.add_argument("--no-smaller-scans", action="store_true", help="code JPEG baseline only (the search before)")
    parser.add_argument("--decode-passes", type=int, default=None, help="decode's restoration ensemble (decode --ensemble N; default 1)")
    parser.add_argument("--all-pairing-keys", action="store_true", help="thumbnails keep resizer:version too")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("RESIZER_DATASETS", "../shared/datasets"))
    folders = args.datasets or [root / "bench" / "set5", root / "bench" / "set14"]
    paths = [p for folder in folders for p in list_dataset(folder)]
    rates = [float(r) for r in args.rates.split(",")]
    if args.decode_passes is not None:
        restoration.DECODE_ENSEMBLE = args.decode_passes
    if args.all_pairing_keys:
        rate_encode.UNREAD_PAIRING_KEYS = ()
    print(f"decode passes {restoration.DECODE_ENSEMBLE}, pairing keys left out {rate_encode.UNREAD_PAIRING_KEYS}, "
          f"smaller scans {not args.no_smaller_scans}", file=sys.stderr)
    rows = measure(paths, rates, args.codec, RunOptions(), smaller_scans=not args.no_smaller_scans)
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text, mean, low = table(rows)
    print(f"rate-targeted encode + decode vs plain {args.codec}, luma PSNR at equal bpp (shave {SHAVE})")
    print(text)
    return 0 if low >= 0 and mean >= TARGET_MEAN_GAIN else 1


if __name__ == "__main__":
    sys.exit(main())
