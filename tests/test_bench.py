"""``resizer bench``: every precision asked for, and ratios to EDSR-baseline and RRDBNet from the same run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from resizer import bench
from resizer import precision as prec
from resizer.cli import app


def _records(args: list[str]) -> list[dict]:
    result = CliRunner().invoke(app, ["bench", *args, "--megapixels", "0.002", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_bench_measures_each_precision_with_fp32_yardsticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "_MIN_SECONDS", 0.0)  # one run per measurement
    low = [p for p in ("bf16",) if p in prec.supported_precisions(prec.torch.device("cpu"))]
    args = ["--method", "vdsr", "--method", "rrdbnet", "--scale", "2", "--scale", "4", "--precision", "fp32",
            "--precision", "auto", *[a for p in low for a in ("--precision", p)]]
    speed = [r for r in _records(args) if r["record"] == "speed"]
    vdsr = {(r["scale"], r["precision"]): r for r in speed if r["method"] == "vdsr"}
    assert set(vdsr) == {(s, p) for s in (2.0, 4.0) for p in ["fp32", *low]}  # auto resolved, not run twice
    assert any("= auto" in r["note"] for r in vdsr.values())
    edsr = [r for r in speed if r["method"] == "edsr-baseline"]
    assert {r["precision"] for r in edsr} == {"fp32"} and len(edsr) == 2
    rrdb = next(r for r in speed if r["method"] == "rrdbnet" and r["precision"] == "fp32")
    for row in vdsr.values():
        assert row["vs_rrdbnet"] == pytest.approx(row["out_mp_per_s"] / rrdb["out_mp_per_s"])


def test_bench_refuses_a_precision_the_device_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prec, "cpu_supports", lambda p: p == "fp32")
    result = CliRunner().invoke(app, ["bench", "--method", "srcnn", "--precision", "bf16", "--device", "cpu"])
    assert result.exit_code == 2 and "--precision bf16 is not supported" in result.output


def test_bench_times_each_learned_network_at_the_size_its_shipped_weights_have() -> None:
    """DSN's shipped Up-SNet is larger than the family default: the bench must time the shipped size."""
    from resizer.weights import find_entry, read_manifest

    for entry in read_manifest():
        if entry.use != "view" or not entry.scales:
            continue
        scale = entry.scales[0]
        if find_entry(entry.family, scale, task=entry.task).name != entry.name:
            continue  # another entry serves this scale for the family
        shipped = bench.learned_families()[entry.family].architecture(entry.task).build(entry.config)
        timed = bench._build(entry.family, scale, entry.task)
        assert sum(p.numel() for p in timed.parameters()) == sum(p.numel() for p in shipped.parameters()), entry.name


def test_bench_at_a_scale_one_family_cannot_build_leaves_that_family_out() -> None:
    """CAR is built for x2 and x4 only: ``bench --scale 3`` measures the others instead of failing."""
    report = bench.run_bench(["car", "srcnn"], [3.0], megapixels=0.005)
    learned = {(r.method, r.direction) for r in report.rows if r.kind == "learned"}
    assert ("srcnn", "up") in learned and not any(method == "car" for method, _ in learned)
