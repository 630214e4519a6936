"""Measure bf16/fp16/int8 against fp32 for bundled weights and record it in weights/manifest.json.

    python benchmarks/measure_precision.py asdn dair-x2          # named entries
    python benchmarks/measure_precision.py --all                 # every entry
    python benchmarks/measure_precision.py car-x4-up --dry-run   # print, write nothing
    python benchmarks/measure_precision.py vdsr --precision int8 # one precision; the others' numbers stay

Set5 and Set14 come from $RESIZER_DATASETS/bench (or --datasets DIR), int8's calibration
photos from its train folder. Each entry gets a
``precision`` field keyed by device kind (cpu, cpu-bf16, cuda, mps) that
``--precision auto`` reads: see resizer/precision_survey.py. Re-run it for weights
that were retrained: exporting new weights drops the old file's measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", help="manifest entry names (a pair's half brings its partner)")
    parser.add_argument("--all", action="store_true", help="every entry of the manifest")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--datasets", type=Path, default=None, help="folder holding bench/set5 and bench/set14")
    parser.add_argument("--megapixels", type=float, default=0.25, help="size of the timed synthetic image")
    parser.add_argument("--precision", action="append", dest="precisions", default=None,
                        help="measure only this low precision (repeatable; default: every one the device runs)")
    parser.add_argument("--dry-run", action="store_true", help="print the measurements, do not write the manifest")
    args = parser.parse_args(argv)

    from resizer.precision_survey import measure_entry, record_measurement
    from resizer.weights import read_manifest

    root = args.datasets or Path(os.environ.get("RESIZER_DATASETS", "../shared/datasets"))
    datasets = {name: root / "bench" / name for name in ("set5", "set14")}
    names = [e.name for e in read_manifest()] if args.all else args.names
    if not names:
        parser.error("name at least one entry, or --all")
    done: set[str] = set()
    for name in names:
        if name in done:
            continue
        results = measure_entry(name, datasets, device=args.device, megapixels=args.megapixels,
                                log=lambda text: print(f"measure_precision: {text}", file=sys.stderr, flush=True),
                                precisions=args.precisions, train=root / "train", dry_run=args.dry_run)
        for entry_name, measured in results.items():
            print(json.dumps({"entry": entry_name, **measured}), flush=True)
            if not args.dry_run:
                record_measurement(entry_name, measured, device=args.device)
            done.add(entry_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
