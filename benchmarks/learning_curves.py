"""Learning curves of the shipped models: PSNR against CPU hours, read from the history of the manifest.

Issue 16 is done when every row of its target table is met, or when the curves say what the
remaining gap would cost. Every shipped file is in the git history of ``weights/manifest.json``
with its recipe (steps, wall time, hardware, the chained commands) and its scores, so the
curves need no new measurement:

- a *version* of an entry is one weights file (one sha256); its scores are those of the last
  commit that still lists that file (a re-scoring, such as issue 16's protocol fix, updates them);
- scores at non-integer scales of a file replaced before issue 16's protocol fix (``PROTOCOL_FIX``)
  are left out: they were measured misaligned, and only the files still shipped were re-scored;
- its CPU hours add up along the chain of ``resizer train`` commands: a version whose command
  continues an earlier one's (``EARLIER && MORE``, compared option by option, since recorded
  commands were sometimes edited in place) adds its extra wall time times the torch
  threads of its last hardware segment; a version that starts afresh starts at its own wall time;
- the *current lineage* is the versions whose command the current one continues (or repeats):
  a retrain from scratch with another recipe is not a point on the same curve, so it is listed
  but not fitted;
- per row, PSNR = a + b ln(CPU hours) is fitted by least squares over the lineage's points
  (at least two distinct hour counts); the hours to reach the target are exp((target - a) / b),
  or "no trend" when b is not positive.

``python benchmarks/learning_curves.py [--repo DIR] [--json] [--target ENTRY:SCALE:PSNR ...]``
prints the versions of every entry and the target table as markdown (``--json``: one object).
Only git and the standard library are used; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

MANIFEST = "weights/manifest.json"
SETS = ("set5", "set14")
# Issue 16's target table (luma PSNR on Set5; Set14 must rise too): row, entry, scale, target.
# Pairs are scored on their round trip, recorded on both halves; the "-up" half stands for them. DSN x2
# is the view pair `down --method dsn` uses (the encode-only dsn-x2 pair trades its thumbnails for the codec).
ISSUE_TARGETS: list[tuple[str, str, str, float]] = [
    ("asdn", "asdn", "x2", 37.9), ("asdn", "asdn", "x4", 31.6), ("asdn", "asdn", "x2.7", 34.8),
    ("car round trip", "car-x2-up", "x2", 37.6), ("car round trip", "car-x4-up", "x4", 31.9),
    ("dsn round trip", "dsn-x2-thumb-up", "x2", 38.0), ("dsn round trip", "dsn-x3-up", "x3", 34.3),
    ("dsn round trip", "dsn-x4-up", "x4", 31.9),
    ("dair", "dair-x2", "x2", 37.6), ("dair", "dair-x3", "x3", 33.6), ("dair", "dair-x4", "x4", 31.3),
    ("srcnn", "srcnn-x3", "x3", 32.6),
    ("vdsr", "vdsr", "x2", 36.8), ("vdsr", "vdsr", "x3", 33.0), ("vdsr", "vdsr", "x4", 30.7),
]
# Issue 16's protocol fix: before it, scores at non-integer scales were misaligned by up to half a
# pixel. Files still shipped then were re-scored; a file replaced earlier keeps an old score there,
# which is left out (its integer scales are unchanged by the fix).
PROTOCOL_FIX = "f9e15e7"
_THREADS = re.compile(r"(\d+)\s+torch\s+threads?")
_NOT_RECIPE = {"--loss", "--stop-at", "--resume", "--export", "--init", "--val", "--manifest", "--out"}


@dataclass
class Version:
    """One shipped weights file of an entry, as the manifest's history records it."""

    name: str
    sha256: str
    commit: str  # the commit that shipped it
    date: str
    steps: int
    wall_time_s: float
    threads: int  # torch threads of the last hardware segment
    command: str
    scores: dict[str, dict[str, dict[str, float]]]
    cpu_hours: float = 0.0
    on_lineage: bool = False  # the current version's command continues (or is) this one's

    def psnr(self, dataset: str, scale: str) -> float | None:
        value = self.scores.get(dataset, {}).get(scale, {}).get("psnr")
        return float(value) if isinstance(value, (int, float)) else None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def manifest_history(repo: Path, path: str = MANIFEST) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """``(commit, date, entries)`` for every commit that changed ``path``, oldest first (unreadable ones skipped)."""
    history = []
    for line in _git(repo, "log", "--reverse", "--format=%H%x09%cs", "--", path).splitlines():
        commit, date = line.split("\t")
        try:
            data = json.loads(_git(repo, "show", f"{commit}:{path}"))
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            continue  # deleted or broken at that commit
        if isinstance(data, list):
            history.append((commit, date, [e for e in data if isinstance(e, dict) and "name" in e]))
    return history


def _threads(hardware: str) -> int:
    match = _THREADS.search(hardware.split("; then ")[-1])
    return int(match.group(1)) if match else 1


def versions_by_entry(history: Sequence[tuple[str, str, list[dict[str, Any]]]],
                      protocol_fix: str | None = PROTOCOL_FIX) -> dict[str, list[Version]]:
    """Every entry's versions in shipping order, with cumulative CPU hours and the current lineage marked.

    A version last listed before the commit ``protocol_fix`` (if the history has it) loses its
    scores at non-integer scales: they were measured with the misaligned protocol.
    """
    found: dict[str, dict[str, Version]] = {}
    fixed_at = next((i for i, (c, _, _) in enumerate(history) if protocol_fix and c.startswith(protocol_fix)), None)
    last_seen: dict[tuple[str, str], int] = {}
    for index, (commit, date, entries) in enumerate(history):
        for entry in entries:
            recipe = entry.get("recipe") or {}
            sha = str(entry.get("sha256", ""))
            known = found.setdefault(entry["name"], {})
            if sha not in known:
                known[sha] = Version(entry["name"], sha, commit[:7], date, int(recipe.get("steps", 0)),
                                     float(recipe.get("wall_time_s", 0.0)), _threads(str(recipe.get("hardware", ""))),
                                     str(recipe.get("command", "")), {})
            known[sha].scores = entry.get("scores") or {}  # the last commit listing the file has its latest scores
            last_seen[(entry["name"], sha)] = index
    for (name, sha), index in last_seen.items():
        if fixed_at is not None and index < fixed_at:
            version = found[name][sha]
            version.scores = {ds: {k: m for k, m in by.items() if float(k[1:]).is_integer()}
                              for ds, by in version.scores.items()}
    result = {}
    for name, by_sha in found.items():
        ordered = list(by_sha.values())
        _add_hours(ordered)
        _mark_lineage(ordered)
        result[name] = ordered
    return result


def _segment_key(segment: str) -> tuple[str, ...]:
    """One ``resizer train`` command as its family and sorted options, without those that name no recipe.

    Recorded commands were sometimes edited in place when an option was dropped or renamed
    (``--loss`` of pairs, ``--resume``'s ``--stop-at``), and ``--export``/``--init``/``--val``
    say where files go, not how they were trained.
    """
    words = segment.split()
    pairs, i = [], 3
    while i < len(words):
        value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else ""
        if words[i] not in _NOT_RECIPE:
            pairs.append(f"{words[i]} {value}".strip())
        i += 2 if value else 1
    return (words[2] if len(words) > 2 else "", *sorted(pairs))


def _chain(command: str) -> list[tuple[str, ...]]:
    return [_segment_key(segment) for segment in command.split(" && ")] if command else []


def _continues(later: str, earlier: str) -> bool:
    """True if command ``later`` is command ``earlier`` followed by more training."""
    before, after = _chain(earlier), _chain(later)
    return bool(before) and len(after) > len(before) and after[: len(before)] == before


def _same_chain(a: str, b: str) -> bool:
    return bool(a) and _chain(a) == _chain(b)


def _add_hours(ordered: list[Version]) -> None:
    """Cumulative CPU hours: a continued chain adds the extra wall time times the new segment's threads."""
    for i, version in enumerate(ordered):
        previous = next((p for p in reversed(ordered[:i]) if _continues(version.command, p.command)), None)
        if previous is None:
            version.cpu_hours = version.wall_time_s * version.threads / 3600.0
        else:
            extra = max(version.wall_time_s - previous.wall_time_s, 0.0)
            version.cpu_hours = previous.cpu_hours + extra * version.threads / 3600.0


def _mark_lineage(ordered: list[Version]) -> None:
    current = ordered[-1]
    for version in ordered:
        version.on_lineage = _same_chain(version.command, current.command) or _continues(current.command,
                                                                                         version.command)


def fit_log_hours(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """``(a, b)`` of PSNR = a + b ln(hours), least squares; ``None`` with fewer than two distinct hours."""
    usable = [(math.log(h), p) for h, p in points if h > 0]
    if len({round(x, 9) for x, _ in usable}) < 2:
        return None
    n = len(usable)
    mean_x = sum(x for x, _ in usable) / n
    mean_y = sum(y for _, y in usable) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in usable)
    b = sum((x - mean_x) * (y - mean_y) for x, y in usable) / sxx
    return mean_y - b * mean_x, b


@dataclass
class TargetRow:
    """One row of the target table with its curve."""

    row: str
    entry: str
    scale: str
    target: float
    set5: float | None
    set14: float | None
    cpu_hours: float | None
    points: int  # lineage versions scored at this scale
    db_per_doubling: float | None = None
    hours_to_target: float | None = None
    status: str = ""  # "reached", "trend", "no trend", "one point", "not shipped"
    curve: list[tuple[float, float]] = field(default_factory=list)  # (CPU hours, Set5 PSNR) of the lineage

    @property
    def more_hours(self) -> float | None:
        if self.hours_to_target is None or self.cpu_hours is None:
            return None
        return max(self.hours_to_target - self.cpu_hours, 0.0)


def target_rows(versions: dict[str, list[Version]], targets: Sequence[tuple[str, str, str, float]]) -> list[TargetRow]:
    """Each target with its current Set5/Set14 scores and the hours the fitted curve needs to reach it."""
    rows = []
    for label, name, scale, target in targets:
        shipped = versions.get(name)
        if not shipped:
            rows.append(TargetRow(label, name, scale, target, None, None, None, 0, status="not shipped"))
            continue
        current = shipped[-1]
        curve = [(v.cpu_hours, v.psnr("set5", scale)) for v in shipped if v.on_lineage]
        curve = [(h, p) for h, p in curve if p is not None]
        row = TargetRow(label, name, scale, target, current.psnr("set5", scale), current.psnr("set14", scale),
                        current.cpu_hours, len(curve), curve=curve)
        fitted = fit_log_hours(curve)
        if row.set5 is not None and row.set5 >= target:
            row.status = "reached"
        elif fitted is None:
            row.status = "one point" if len(curve) <= 1 else "no trend"
        elif fitted[1] <= 1e-6:
            row.status, row.db_per_doubling = "no trend", fitted[1] * math.log(2)
        else:
            a, b = fitted
            row.status, row.db_per_doubling = "trend", b * math.log(2)
            row.hours_to_target = math.exp(min((target - a) / b, 700.0))
        rows.append(row)
    return rows


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 1e5 else f"{value:.2e}"


def versions_markdown(versions: dict[str, list[Version]]) -> str:
    """Every entry's versions (a pair's "-down" half, which repeats its "-up" half, left out)."""
    lines = ["| entry | shipped | commit | steps | CPU h | lineage | Set5 | Set14 |", "|---|---|---|---|---|---|---|---|"]
    for name in sorted(versions):
        if name.endswith("-down") and name[: -len("-down")] + "-up" in versions:
            continue
        for v in versions[name]:
            scales = sorted({k for ds in SETS for k in v.scores.get(ds, {}) if v.psnr(ds, k) is not None})
            cells = [" / ".join(f"{k} {_num(v.psnr(ds, k))}" for k in scales) or "-" for ds in SETS]
            lines.append(f"| {name} | {v.date} | {v.commit} | {v.steps} | {_hours(v.cpu_hours)} | "
                         f"{'yes' if v.on_lineage else 'no'} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def targets_markdown(rows: Sequence[TargetRow]) -> str:
    lines = ["| model | scale | Set5 now | target | Set14 now | points | CPU h now | dB per doubling | "
             "CPU h to target | more CPU h |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reach = {"reached": "reached", "trend": _hours(r.hours_to_target)}.get(r.status, r.status)
        lines.append(f"| {r.row} ({r.entry}) | {r.scale} | {_num(r.set5)} | {r.target:.2f} | {_num(r.set14)} | "
                     f"{r.points} | {_hours(r.cpu_hours)} | {_num(r.db_per_doubling, 3)} | {reach} | "
                     f"{_hours(r.more_hours) if r.status == 'trend' else '-'} |")
    return "\n".join(lines)


def parse_target(text: str) -> tuple[str, str, str, float]:
    """``ENTRY:SCALE:PSNR`` (``vdsr:x2:36.8``) as a target row."""
    try:
        name, scale, value = text.split(":")
        return name, name, scale if scale.startswith("x") else f"x{scale}", float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--target takes ENTRY:SCALE:PSNR such as vdsr:x2:36.8, not {text!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="the git checkout")
    parser.add_argument("--manifest", default=MANIFEST, help="the manifest's path inside the repository")
    parser.add_argument("--target", action="append", type=parse_target, metavar="ENTRY:SCALE:PSNR",
                        help="a target row (repeatable); default: issue 16's table")
    parser.add_argument("--protocol-fix", default=PROTOCOL_FIX, metavar="REV",
                        help="non-integer-scale scores of files replaced before this commit are left out ('' keeps them)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of markdown")
    args = parser.parse_args(argv)
    try:
        history = manifest_history(args.repo, args.manifest)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"learning_curves: {args.repo}: cannot read the git history ({exc})", file=sys.stderr)
        return 1
    versions = versions_by_entry(history, args.protocol_fix or None)
    rows = target_rows(versions, args.target or ISSUE_TARGETS)
    if args.json:
        print(json.dumps({"versions": {n: [asdict(v) for v in vs] for n, vs in versions.items()},
                          "targets": [{**asdict(r), "more_hours": r.more_hours} for r in rows]}))
    else:
        print(f"## Shipped versions ({len(history)} manifest commits)\n\n{versions_markdown(versions)}\n")
        print(f"## Targets: Set5 PSNR against log CPU hours\n\n{targets_markdown(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
