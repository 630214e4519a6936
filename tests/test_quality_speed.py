"""``benchmarks/quality_speed.py``: each shipped model's scores beside its measured speed."""

from __future__ import annotations

from pathlib import Path

from resizer.evaluation import evaluate
from resizer.weights import read_manifest

from .conftest import benchmark_script



def _module():
    return benchmark_script("quality_speed")


def test_every_shipped_scale_gets_its_manifest_score_its_gain_over_bicubic_and_a_speed(datasets: Path) -> None:
    module = _module()
    sets = [datasets / "bench" / "set5", datasets / "bench" / "set14"]
    rows = module.measure(sets, megapixels=0.01, precision="fp32", methods=["dair"])
    entries = {e.name: e for e in read_manifest()}
    dair = sorted(name for name, e in entries.items() if e.family == "dair")
    assert sorted(r.entry for r in rows) == dair  # one row per shipped scale, nothing else
    bicubic = {(r.dataset, r.scale): r.psnr for r in evaluate(sets[:1], [2.0])}
    for row in rows:
        key = f"x{row.scale:g}"
        assert row.psnr["set5"] == entries[row.entry].scores["set5"][key]["psnr"]
        assert row.mp_per_s > 0 and row.precision == "fp32" and row.direction == "up"
        if row.scale == 2.0:
            assert abs(row.gain["set5"] - (row.psnr["set5"] - bicubic[("set5", 2.0)])) < 1e-3
        assert row.gain["set5"] > 1.0 and row.gain["set14"] > 0.5  # learned upscalers beat bicubic
    table = module.markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "dair-x3" in table
