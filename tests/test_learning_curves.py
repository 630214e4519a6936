"""``benchmarks/learning_curves.py`` on a tiny git repository holding three versions of a manifest."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import benchmark_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curves.py"
FIRST = "resizer train toy --scale 2 --steps 1000 --seed 0 --loss l1 --export toy"
MORE = "resizer train toy --scale 2 --steps 1000 --seed 1 --init weights/toy --export toy"


def _module():
    return benchmark_script("learning_curves")


def _entry(name: str, sha: str, steps: int, wall_s: float, command: str, psnr: dict[str, float],
           hardware: str = "Test CPU, 2 cores, 1 torch thread") -> dict:
    scores = {"set5": {f"x{s}": {"psnr": p, "ssim": 0.9} for s, p in psnr.items()},
              "set14": {f"x{s}": {"psnr": p - 4, "ssim": 0.8} for s, p in psnr.items()}}
    return {"name": name, "sha256": sha * 64, "recipe": {"steps": steps, "wall_time_s": wall_s, "command": command,
                                                         "hardware": hardware}, "scores": scores}


def _commit(repo: Path, entries: list[dict], message: str) -> None:
    (repo / "weights").mkdir(exist_ok=True)
    (repo / "weights" / "manifest.json").write_text(json.dumps(entries, indent=2))
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q",
                    "-m", message], check=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """toy: 1, 2, then 4 CPU hours along one chain (30, 31, 32 dB: 1 dB per doubling); the last
    segment ran on two threads. flat: a second version that gained nothing. fresh: retrained
    from scratch with another recipe (not on the curve)."""
    root = tmp_path_factory.mktemp("history")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    flat = _entry("flat", "c", 1000, 3600, FIRST.replace("toy", "flat"), {"2": 30.0})
    fresh = _entry("fresh", "e", 1000, 3600, FIRST.replace("toy", "fresh"), {"3": 28.0, "2.5": 28.5})
    _commit(root, [_entry("toy", "a", 1000, 3600, FIRST, {"2": 30.0}), flat, fresh], "first")
    # the recorded command is edited in place (--loss dropped): still the same first segment
    toy2 = _entry("toy", "b", 2000, 7200, f"{FIRST.replace(' --loss l1', '')} && {MORE}", {"2": 31.0})
    flat2 = _entry("flat", "d", 2000, 7200, f"{flat['recipe']['command']} && {MORE}", {"2": 29.9})
    fresh2 = _entry("fresh", "f", 500, 1800, "resizer train fresh --scale 3 --steps 500 --seed 9", {"3": 27.5})
    _commit(root, [toy2, flat2, fresh2], "second")
    toy3 = _entry("toy", "9", 2500, 10800, f"{toy2['recipe']['command']} && {MORE.replace('1000', '500')}",
                  {"2": 32.0}, hardware="Test CPU, 2 cores, 1 torch thread; then Test CPU, 2 cores, 2 torch threads")
    _commit(root, [toy3, flat2, fresh2], "third")
    _commit(root, [{**toy3, "scores": {"set5": {"x2": {"psnr": 32.0}}, "set14": {"x2": {"psnr": 28.5}}}}, flat2,
                   fresh2], "rescored: same file, new Set14 score")
    return root


def test_versions_add_cpu_hours_along_the_chain(repo: Path) -> None:
    lc = _module()
    versions = lc.versions_by_entry(lc.manifest_history(repo))
    toy = versions["toy"]
    assert [v.steps for v in toy] == [1000, 2000, 2500]
    assert [round(v.cpu_hours, 6) for v in toy] == [1.0, 2.0, 4.0]  # the last hour ran on two threads
    assert all(v.on_lineage for v in toy)
    assert toy[-1].psnr("set14", "x2") == 28.5  # a file's scores are those of the last commit listing it
    assert [v.on_lineage for v in versions["fresh"]] == [False, True]


def test_non_integer_scores_of_files_replaced_before_the_protocol_fix_are_left_out(repo: Path) -> None:
    lc = _module()
    history = lc.manifest_history(repo)
    third = history[2][0]  # taken as the protocol fix: 'fresh' first version was replaced before it
    kept = lc.versions_by_entry(history, protocol_fix=None)["fresh"]
    fixed = lc.versions_by_entry(history, protocol_fix=third[:7])["fresh"]
    assert kept[0].psnr("set5", "x2.5") == 28.5 and fixed[0].psnr("set5", "x2.5") is None
    assert fixed[0].psnr("set5", "x3") == 28.0  # integer scales are unchanged by the fix
    assert fixed[1].psnr("set5", "x3") == 27.5


def test_hours_to_target_from_the_fitted_curve(repo: Path) -> None:
    lc = _module()
    versions = lc.versions_by_entry(lc.manifest_history(repo))
    targets = [("toy", "toy", "x2", 33.0), ("toy", "toy", "x2", 31.5), ("flat", "flat", "x2", 31.0),
               ("fresh", "fresh", "x3", 28.0), ("gone", "gone", "x2", 30.0)]
    toy, reached, flat, fresh, gone = lc.target_rows(versions, targets)
    assert toy.status == "trend" and toy.points == 3
    assert toy.db_per_doubling == pytest.approx(1.0) and toy.hours_to_target == pytest.approx(8.0)
    assert toy.more_hours == pytest.approx(4.0)
    assert (toy.set5, toy.set14) == (32.0, 28.5)
    assert reached.status == "reached"
    assert flat.status == "no trend" and flat.hours_to_target is None and flat.db_per_doubling < 0
    assert fresh.status == "one point" and fresh.points == 1  # the retrain from scratch starts a new curve
    assert gone.status == "not shipped"
    assert lc.fit_log_hours([(2.0, 30.0), (2.0, 31.0)]) is None
    assert lc.fit_log_hours([(1.0, 30.0), (math.e, 32.0)]) == pytest.approx((30.0, 2.0))


def test_the_script_prints_markdown_and_json(repo: Path) -> None:
    run = [sys.executable, str(SCRIPT), "--repo", str(repo), "--target", "toy:x2:33", "--target", "flat:2:31"]
    markdown = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "| toy (toy) | x2 | 32.00 | 33.00 | 28.50 | 3 | 4 | 1.000 | 8 | 4 |" in markdown
    assert "| flat (flat) | x2 | 29.90 | 31.00 |" in markdown and "no trend" in markdown
    assert "| toy | " in markdown and "| fresh | " in markdown  # the versions table
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout)
    assert [round(v["cpu_hours"], 3) for v in data["versions"]["toy"]] == [1.0, 2.0, 4.0]
    assert data["targets"][0]["hours_to_target"] == pytest.approx(8.0)
    bad = subprocess.run([sys.executable, str(SCRIPT), "--repo", str(repo), "--target", "toy"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "ENTRY:SCALE:PSNR" in bad.stderr
