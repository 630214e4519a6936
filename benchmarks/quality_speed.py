"""Quality beside inference speed for every shipped upscaler (issue 16: "sizes chosen for quality per
inference second: report both for every shipped model").

For each learned ``--method`` at each scale it has weights for, one ``resizer bench`` run measures
output megapixels per second (best of its runs, at ``--precision``, default ``auto``: what users get),
and the manifest gives the entry that run reads and its Set5/Set14 luma PSNR. MATLAB bicubic is scored
with the same protocol (``resizer eval``) so each row also shows its gain over bicubic. A pair's
score is its round trip; its row times the upscaler, and its downscaler has a row of its own
(input megapixels per second). Speeds are from one run, so their ratios hold, not their absolute values.

``python benchmarks/quality_speed.py [--datasets DIR] [--megapixels 0.1] [--precision auto] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resizer.bench import learned_families, run_bench  # noqa: E402
from resizer.evaluation import evaluate  # noqa: E402
from resizer.weights.manifest import choose_entry, format_scale, read_manifest  # noqa: E402

SETS = ("set5", "set14")


@dataclass
class QualitySpeed:
    """One shipped entry at one scale: what it scores and how fast it runs here."""

    method: str
    entry: str
    direction: str
    scale: float
    precision: str
    mp_per_s: float  # output MP/s for an upscaler, input MP/s for a downscaler
    psnr: dict[str, float | None]  # per set: the entry's manifest score (a pair: its round trip)
    gain: dict[str, float | None]  # per set: psnr minus MATLAB bicubic's


def scored_scales(entry) -> list[float]:
    """The upscaling factors an entry's manifest scores are measured at (an any-scale entry has several)."""
    return sorted({float(key[1:]) for per_set in entry.scores.values() for key in per_set if float(key[1:]) > 1})


def bicubic_scores(datasets: list[Path], scales: list[float]) -> dict[tuple[str, str], float]:
    """MATLAB bicubic's luma PSNR by (set, "xS") under the evaluation protocol."""
    return {(r.dataset, "x" + format_scale(r.scale)): r.psnr for r in evaluate(datasets, scales)}


def measure(datasets: list[Path], megapixels: float = 0.1, precision: str = "auto",
            methods: list[str] | None = None) -> list[QualitySpeed]:
    """Every shipped learned method's rows (or those of ``methods``): bench speed joined with manifest scores."""
    entries = read_manifest()
    families = {name for name in learned_families() if (methods is None or name in methods)
                and any(e.family == name and scored_scales(e) for e in entries)}
    scales = sorted({s for e in entries if e.family in families for s in scored_scales(e)})
    bicubic = bicubic_scores(datasets, scales)
    report = run_bench(list(families), scales, megapixels, device="cpu", precisions=[precision])
    rows: list[QualitySpeed] = []
    for row in report.rows:
        if row.method not in families or (row.direction == "up" and row.kind != "learned"):
            continue
        task = "down" if row.direction == "down" else "up"
        try:
            entry = choose_entry(row.method, row.scale, task=task, use="view", entries=entries)
        except Exception:  # no view entry at this scale (an encode-only pair): nothing users get from --method
            continue
        key = "x" + format_scale(row.scale)
        psnr = {s: (entry.scores.get(s, {}).get(key, {}) or {}).get("psnr") for s in SETS}
        gain = {s: None if psnr[s] is None or (s, key) not in bicubic else round(psnr[s] - bicubic[(s, key)], 3)
                for s in SETS}
        speed = row.in_mp_per_s if task == "down" else row.out_mp_per_s
        rows.append(QualitySpeed(row.method, entry.name, task, row.scale, row.precision, round(speed, 4), psnr, gain))
    return rows


def markdown(rows: list[QualitySpeed]) -> str:
    """The rows as a markdown table, fastest first within each scale."""
    lines = ["| entry | task | scale | precision | MP/s | Set5 dB | Set14 dB | over bicubic Set5 / Set14 |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(value: float | None, text: str) -> str:
        return "-" if value is None else text.format(value)

    for r in sorted(rows, key=lambda r: (r.scale, r.direction, -r.mp_per_s)):
        lines.append(f"| {r.entry} | {r.direction} | x{r.scale:g} | {r.precision} | {r.mp_per_s:.3f} | "
                     f"{cell(r.psnr['set5'], '{:.2f}')} | {cell(r.psnr['set14'], '{:.2f}')} | "
                     f"{cell(r.gain['set5'], '{:+.2f}')} / {cell(r.gain['set14'], '{:+.2f}')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("RESIZER_DATASETS", "../shared/datasets")) / "bench"
    parser.add_argument("--datasets", type=Path, default=default, help="folder holding set5/ and set14/")
    parser.add_argument("--megapixels", type=float, default=0.1, help="bench input size")
    parser.add_argument("--precision", default="auto", help="precision the networks run in")
    parser.add_argument("--method", action="append", help="a learned method to measure (repeatable; default all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    rows = measure([args.datasets / s for s in SETS], args.megapixels, args.precision, args.method)
    print("\n".join(json.dumps(asdict(r)) for r in rows) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
