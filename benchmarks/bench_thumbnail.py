"""Web thumbnails: a 24 MP JPEG to ``--fit 320x320``, resizer beside vipsthumbnail and Pillow, in one run.

Two parts:

1. Quality of shrink-on-load (``resizer.shrink_on_load``): every Set5 and Set14 image (centre
   crops for F = 8, 16), enlarged F times (Lanczos) to photo size and saved as a JPEG (quality
   92), is thumbnailed by F = 4, 8 and 16 both ways: shrink-on-load (DCT-domain decode, then Lanczos) and the exact path
   (every pixel decoded, then Lanczos). Reported: luma (BT.601) PSNR of each against the
   original: shrink-on-load must lose at most 0.5 dB there.
   Then step reduction (Pillow's ``reducing_gap``, what the pipeline applies to formats without
   a DCT draft): the same enlarged images kept in memory, reduced xF by Lanczos exactly and
   with ``reducing_gap`` = ``STEP_GAP``; PSNR against the original and the resize's own CPU time.
2. Speed and memory, whole process each (a fresh subprocess: start-up, imports, decode, resize,
   encode): ``resizer down --fit 320x320``, the same with ``--no-shrink-on-load``,
   ``vipsthumbnail --size 320x320``, Pillow's ``Image.thumbnail`` (which drafts JPEGs too) and bare
   Pillow (``open``/``resize(LANCZOS)``/``save``, no draft: the bar for "resizer adds at most
   10%" where no shrink-on-load applies). Time: the best of ``--repeat`` runs, wall clock and CPU
   (user + system: steadier on a busy machine); memory: the child's peak resident set
   (``ru_maxrss`` from ``wait4``, measured from a small launcher process).

    python benchmarks/bench_thumbnail.py [--datasets DIR] [--repeat 3] [--skip-quality]

``vipsthumbnail`` comes from ``apt-get install -y libvips-tools`` (the benchmark's setup only:
resizer never depends on libvips); without it its row says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

PILLOW_THUMBNAIL = """
import sys
from PIL import Image
with Image.open(sys.argv[1]) as im:
    im.thumbnail((320, 320), Image.Resampling.LANCZOS)
    im.save(sys.argv[2], quality=92)
"""
BARE_PILLOW = """
import sys
from PIL import Image
with Image.open(sys.argv[1]) as im:
    w, h = im.size
    r = min(320 / w, 320 / h)
    im.resize((round(w * r), round(h * r)), Image.Resampling.LANCZOS).save(sys.argv[2], quality=92)
"""


# The same work inside one process, after the imports: what the library adds, without start-up costs.
IN_PROCESS = """
import json, sys, time
from PIL import Image
from resizer.geometry import SizeSpec
from resizer.pipeline import BatchSettings, run_batch
source, out, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
def thumbnail():
    with Image.open(source) as im:
        im.thumbnail((320, 320), Image.Resampling.LANCZOS)
        im.save(out + "/t.jpg", quality=92)
def bare():
    with Image.open(source) as im:
        w, h = im.size
        r = min(320 / w, 320 / h)
        im.resize((round(w * r), round(h * r)), Image.Resampling.LANCZOS).save(out + "/b.jpg", quality=92)
def ours(shrink):
    settings = BatchSettings("down", SizeSpec(fit=(320, 320)), output=out + "/r.jpg", overwrite=True,
                             shrink_on_load=shrink)
    assert run_batch([source], settings)[0].status == "ok"
cases = {"resizer API, shrink-on-load": lambda: ours(True), "resizer API, exact": lambda: ours(False),
         "Pillow Image.thumbnail": thumbnail, "bare Pillow (no draft)": bare}
best = {}
for name, case in cases.items():
    times = []
    for _ in range(repeat):
        started = time.process_time()
        case()
        times.append(time.process_time() - started)
    best[name] = min(times)
print(json.dumps(best))
"""


def luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((luma(a) - luma(b)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


CROP_FOR_FACTOR = {4: None, 8: 384, 16: 192}  # centre crops keep the enlarged photos near 10 MP


def _original(path: Path, crop: int | None) -> Image.Image:
    """A benchmark image in RGB, centre-cropped to at most ``crop`` x ``crop`` when given."""
    with Image.open(path) as im:
        original = im.convert("RGB")
    if crop is None:
        return original
    left, top = max(0, (original.width - crop) // 2), max(0, (original.height - crop) // 2)
    return original.crop((left, top, left + min(crop, original.width), top + min(crop, original.height)))


def quality(datasets: Path, work: Path) -> None:
    """Shrink-on-load against the exact path, with the original as the truth.

    For ``down xF`` each image (a centre crop for the larger F) is enlarged F times (Lanczos)
    and saved as a JPEG (quality 92): a photo whose true thumbnail is the original. Both paths
    reduce it by F; shrink-on-load must lose at most 0.5 dB of luma PSNR against the original.
    """
    from resizer.geometry import SizeSpec
    from resizer.image_io import load_picture
    from resizer.resizing import resize_picture
    from resizer.shrink_on_load import MARGIN, shrink_hint

    images = sorted((datasets / "bench" / "set5").glob("*.png")) + sorted((datasets / "bench" / "set14").glob("*.png"))
    print(f"shrink-on-load (margin {MARGIN:g}), luma PSNR (dB) against the original, {len(images)} Set5+Set14 images "
          "enlarged xF to JPEG q92 then reduced xF:")
    for factor, crop in CROP_FOR_FACTOR.items():
        exact_scores, drops, between, drafted = [], [], [], 0
        for path in images:
            original = _original(path, crop)
            big = work / f"{path.stem}_x{factor}.jpg"
            original.resize((original.width * factor, original.height * factor), Image.Resampling.LANCZOS).save(big, quality=92)
            spec = SizeSpec(scale=float(factor))
            a, _ = resize_picture(load_picture(big), "down", spec)
            fast = load_picture(big, shrink=shrink_hint("down", spec, "lanczos"))
            drafted += fast.metadata.full_size is not None
            b, _ = resize_picture(fast, "down", spec)
            truth = np.asarray(original)
            exact_scores.append(psnr(a.pixels, truth))
            drops.append(exact_scores[-1] - psnr(b.pixels, truth))
            between.append(psnr(a.pixels, b.pixels))
            big.unlink()
        print(f"  down x{factor:<3} drafted {drafted}/{len(images)}: exact {np.mean(exact_scores):.2f} mean; "
              f"shrink-on-load loses {np.mean(drops):+.3f} mean, {max(drops):+.3f} at most; "
              f"the two paths differ by {min(between):.1f} dB PSNR at most")


def step_quality(datasets: Path) -> None:
    """Step reduction (``RunOptions.reducing_gap``) against the exact filter, on enlarged Set5+Set14 images."""
    from resizer.classical import resize_picture
    from resizer.image_io import picture_from_pil
    from resizer.shrink_on_load import STEP_GAP

    images = sorted((datasets / "bench" / "set5").glob("*.png")) + sorted((datasets / "bench" / "set14").glob("*.png"))
    print(f"step reduction (reducing_gap {STEP_GAP:g}), luma PSNR (dB) against the original, {len(images)} images "
          "enlarged xF (Lanczos) then reduced xF:")
    for factor, crop in CROP_FOR_FACTOR.items():
        drops, speedups = [], []
        for path in images:
            original = _original(path, crop)
            big = picture_from_pil(original.resize((original.width * factor, original.height * factor),
                                                   Image.Resampling.LANCZOS))
            seconds, outputs = [], []
            for gap in (None, STEP_GAP):
                started = time.process_time()
                outputs.append(resize_picture(big, original.size, "lanczos", gap).pixels)
                seconds.append(time.process_time() - started)
            truth = np.asarray(original)
            drops.append(psnr(outputs[0], truth) - psnr(outputs[1], truth))
            speedups.append(seconds[0] / max(seconds[1], 1e-6))
        print(f"  down x{factor:<3} step reduction loses {np.mean(drops):+.3f} mean, {max(drops):+.3f} at most; "
              f"resize {np.median(speedups):.2f}x faster (median)")


def make_24mp(datasets: Path, path: Path) -> None:
    """A 6000x4000 JPEG from a Set14 photo, enlarged (Lanczos) with mild noise so it does not compress to nothing."""
    with Image.open(datasets / "bench" / "set14" / "img_013.png") as im:
        big = im.convert("RGB").resize((6000, 4000), Image.Resampling.LANCZOS)
    noise = np.random.default_rng(0).normal(0, 3, (4000, 6000, 3))
    Image.fromarray(np.clip(np.asarray(big) + noise, 0, 255).astype(np.uint8)).save(path, quality=92)


# Runs one command and prints its wall time, CPU time and peak RSS. A small process of its own: a child's
# ru_maxrss starts from the memory of the process it was forked (or vforked) from, so measuring from
# this benchmark's process, which holds a 24 MP image, would report that image for every command.
LAUNCHER = """
import json, os, subprocess, sys, time
command = json.loads(sys.argv[1])
started = time.perf_counter()
proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - started
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(proc.stderr.read().decode())
print(json.dumps([wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024]))
"""


def measure(command: list[str], repeat: int) -> tuple[float, float, float]:
    """Best wall time (s), best CPU time (s) and largest peak RSS (MB) of ``command`` over ``repeat`` runs."""
    walls, cpus, peaks = [], [], []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(command)], capture_output=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{command[0]} failed: {proc.stderr.decode()}")
        wall, cpu, peak = json.loads(proc.stdout)
        walls.append(wall), cpus.append(cpu), peaks.append(peak)
    return min(walls), min(cpus), max(peaks)


def speed(datasets: Path, work: Path, repeat: int) -> None:
    source = work / "photo_24mp.jpg"
    make_24mp(datasets, source)
    out = work / "out"
    out.mkdir(exist_ok=True)
    resizer = [sys.executable, "-m", "resizer", "down", str(source), "--fit", "320x320", "--overwrite", "-q"]
    rows = [
        ("resizer down --fit 320x320", resizer + ["-o", str(out / "r.jpg")]),
        ("resizer --no-shrink-on-load", resizer + ["--no-shrink-on-load", "-o", str(out / "e.jpg")]),
        ("vipsthumbnail --size 320x320", ["vipsthumbnail", str(source), "--size", "320x320", "-o", str(out / "v.jpg")]),
        ("Pillow Image.thumbnail", [sys.executable, "-c", PILLOW_THUMBNAIL, str(source), str(out / "t.jpg")]),
        ("bare Pillow (no draft)", [sys.executable, "-c", BARE_PILLOW, str(source), str(out / "b.jpg")]),
    ]
    print(f"\n24 MP JPEG ({source.stat().st_size / 1e6:.1f} MB) to 320x320, whole process, best of {repeat}:")
    results = {}
    for label, command in rows:
        if shutil.which(command[0]) is None and not Path(command[0]).exists():
            print(f"  {label:30} not installed (apt-get install -y libvips-tools)")
            continue
        results[label] = measure(command, repeat)
        wall, cpu, megabytes = results[label]
        print(f"  {label:30} wall {wall:6.3f} s  cpu {cpu:6.3f} s  peak {megabytes:7.1f} MB")
    vips = results.get("vipsthumbnail --size 320x320")
    ours = results["resizer down --fit 320x320"]
    if vips:
        print(f"  resizer / vipsthumbnail: {ours[0] / vips[0]:.2f}x wall, {ours[1] / vips[1]:.2f}x cpu, "
              f"{ours[2] / vips[2]:.2f}x memory")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    inside = json.loads(subprocess.run([sys.executable, "-c", IN_PROCESS, str(source), str(out), str(repeat)],
                                       capture_output=True, check=True, env=env).stdout)
    print(f"\nthe same inside one process, after the imports (CPU s, best of {repeat}):")
    for label, seconds in inside.items():
        print(f"  {label:30} cpu {seconds:6.3f} s")
    print(f"  resizer exact / bare Pillow: {inside['resizer API, exact'] / inside['bare Pillow (no draft)']:.2f}x; "
          f"resizer shrink-on-load / Pillow thumbnail: "
          f"{inside['resizer API, shrink-on-load'] / inside['Pillow Image.thumbnail']:.2f}x")
    exact, bare = results["resizer --no-shrink-on-load"], results["bare Pillow (no draft)"]
    print(f"  resizer without shrink-on-load / bare Pillow: {exact[0] / bare[0]:.2f}x wall, {exact[1] / bare[1]:.2f}x cpu, "
          f"{exact[2] / bare[2]:.2f}x memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("RESIZER_DATASETS", REPO.parent / "shared" / "datasets")))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if not args.skip_quality:
            quality(args.datasets, work)
            step_quality(args.datasets)
        speed(args.datasets, work, args.repeat)


if __name__ == "__main__":
    main()
