"""Issue 20's restoration measurements, in one script.

1. ``restore``: JPEG at each quality, restored at scale 1 (``resizer.evaluation.evaluate_restoration``):
   luma PSNR of the restoration against the decoded file's.
2. ``up``: ``up --scale 2`` of JPEG LR images (MATLAB-bicubic LR of the modcropped HR, then JPEG at
   ``--lr-quality``), with and without restoring first, scored by the benchmark protocol
   (luma, 2 pixels shaved), with the default upscaler (ASDN) or ``--up``.

    python benchmarks/measure_restoration.py restore $RESIZER_DATASETS/bench/set5 $RESIZER_DATASETS/bench/set14
    python benchmarks/measure_restoration.py up $RESIZER_DATASETS/bench/set14 --lr-quality 40
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def measure_up(folders: list[Path], scale: float, lr_quality: int, up: str, weights: str | None) -> list[dict]:
    from resizer.color import luma
    from resizer.evaluation import _protocol_crop, _read, list_dataset
    from resizer.image_io import Picture
    from resizer.methods import ResizeRequest, RunOptions, get_method
    from resizer.metrics import psnr, shave
    from resizer.restoration import jpeg_round_trip, restore_picture

    options = RunOptions(device="cpu")
    restorer = RunOptions(device="cpu", weights=weights)
    rows = []
    for folder in folders:
        for path in list_dataset(folder):
            hr, (hr_w, hr_h), (lr_w, lr_h), border = _protocol_crop(path.name, _read(path), scale)
            lr = get_method("matlab-bicubic").resize(hr, ResizeRequest("down", (lr_w, lr_h), scale), options)
            decoded = Picture(jpeg_round_trip(np.ascontiguousarray(lr.pixels), lr_quality))
            restored = restore_picture(decoded, "dejpeg", restorer)
            request = ResizeRequest("up", (hr_w, hr_h), scale)
            reference = shave(luma(hr.pixels), border)
            scores = {}
            for label, picture in (("plain", decoded), ("restored", restored)):
                sr = get_method(up).resize(picture, request, options)
                scores[label] = psnr(reference, shave(luma(sr.pixels), border))
            rows.append({"dataset": folder.name, "image": path.name, **scores})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["restore", "up"])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--quality", default="10,20,30,40,50,60,70,80,90,95")
    parser.add_argument("--lr-quality", type=int, default=40)
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--up", default="asdn")
    parser.add_argument("--weights", default=None, help="restoration weights (file or checkpoint folder)")
    args = parser.parse_args()
    if args.what == "restore":
        from resizer.evaluation import evaluate_restoration
        from resizer.methods import RunOptions

        options = RunOptions(device="cpu", weights=args.weights)
        qualities = [int(q) for q in args.quality.split(",")]
        for r in evaluate_restoration(args.folders, qualities, "dejpeg", options):
            print(json.dumps(r.to_json()), flush=True)
        return
    rows = measure_up(args.folders, args.scale, args.lr_quality, args.up, args.weights)
    for dataset in sorted({r["dataset"] for r in rows}):
        mine = [r for r in rows if r["dataset"] == dataset]
        plain, restored = (float(np.mean([r[k] for r in mine])) for k in ("plain", "restored"))
        print(json.dumps({"dataset": dataset, "up": args.up, "scale": args.scale, "lr_quality": args.lr_quality,
                          "plain_psnr": round(plain, 4), "restored_psnr": round(restored, 4),
                          "gain": round(restored - plain, 4), "images": len(mine)}), flush=True)
    assert all(math.isfinite(r["plain"]) for r in rows)


if __name__ == "__main__":
    main()
