"""int8 inference (CPUs with VNNI): refusals, the choice from measurements, and what it costs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer import precision as prec
from resizer.cli import app
from resizer.engine import downscale_tensor, upscale_tensor
from resizer.errors import UsageError
from resizer.image_io import Picture
from resizer.learned import downscale_picture, inference_model, upscale_picture
from resizer.models.int8 import Int8Conv2d, calibrate, calibration_scale, quantized_copy
from resizer.precision_survey import calibrate_int8, record_measurement
from resizer.weights import bundled_dir, get_entry, load

from .conftest import activate_manifest, synthetic_photo

CPU = torch.device("cpu")
INT8 = "int8" in prec.supported_precisions(CPU)
needs_int8 = pytest.mark.skipif(not INT8, reason="this CPU has no VNNI (or torch no oneDNN int8)")


def _input(model: torch.nn.Module, height: int = 48, width: int = 56, seed: int = 3) -> torch.Tensor:
    channels = 1 if model.color == "y" else 3
    return torch.from_numpy(synthetic_photo(height, width, seed=seed)[..., :channels].transpose(2, 0, 1).copy()
                            ).float()[None] / 255


def _calibrated(family: str, scale: float, task: str = "up") -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the shared network, its int8 copy calibrated on two synthetic photos)."""
    model = load(family, scale, task=task).model
    ranges = calibrate(model, [_input(model, seed=1), _input(model, 64, 40, seed=2)], calibration_scale(model))
    return model, inference_model(model, CPU, "int8", {k: list(v) for k, v in ranges.items()})


def test_int8_is_a_usage_error_where_the_cpu_cannot_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prec, "cpu_int8_native", lambda: False)  # a CPU without VNNI
    assert "int8" not in prec.supported_precisions(CPU)
    with pytest.raises(UsageError, match="--precision int8 is not supported on this CPU"):
        prec.check_precision("int8", CPU)
    with pytest.raises(UsageError, match="int8 runs on CPUs only"):
        prec.check_precision("int8", torch.device("mps"))


def test_auto_picks_int8_from_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prec, "cpu_supports", lambda p: p in ("fp32", "bf16", "int8"))
    monkeypatch.setattr(prec, "cpu_bf16_native", lambda: False)
    row = {"loss_db": {"set5": 0.008, "set14": 0.005}, "speedup": 1.7, "ranges": {"head": [-0.5, 0.5]}}
    slow_bf16 = {"loss_db": {"set5": 0.001, "set14": 0.001}, "speedup": 0.5}
    choose = lambda rows: prec.choose_precision("auto", CPU, {"cpu": rows})  # noqa: E731
    assert choose({"bf16": slow_bf16, "int8": row}) == "int8"
    assert choose({"int8": {**row, "loss_db": {"set5": 0.021, "set14": 0.005}}}) == "fp32"  # over budget
    assert choose({"int8": {**row, "speedup": 0.9}}) == "fp32"  # slower than fp32
    assert choose({"int8": {"ranges": row["ranges"]}}) == "fp32"  # calibrated, never scored
    monkeypatch.setattr(prec, "cpu_supports", lambda p: p in ("fp32", "bf16"))  # measured elsewhere, no VNNI here
    assert choose({"int8": row}) == "fp32"
    assert prec.int8_ranges({"cpu": {"int8": row}}, CPU) == row["ranges"]
    assert prec.int8_ranges({"cpu": {"bf16": slow_bf16}}, CPU) is None


@needs_int8
def test_calibration_leaves_the_fp32_sections_float() -> None:
    for family, scale, last in [("asdn", 2.0, "tail"), ("dair", 2, "nets.0.tail"), ("vdsr", 2, "body.38")]:
        model, fast = _calibrated(family, scale)
        quantized = {name for name, m in fast.named_modules() if isinstance(m, Int8Conv2d)}
        convs = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
        assert quantized and quantized < convs, family
        assert last in convs and last not in quantized, (family, sorted(convs - quantized))
        assert not any(isinstance(m, Int8Conv2d) for m in model.modules())  # the shared network is untouched


# Every kind of bundled network; int8 output pixels stay within these of fp32 on a small photo.
NETWORKS = [("asdn", 2.0, "up"), ("asdn", 2.7, "up"), ("dair", 2, "up"), ("vdsr", 3, "up"), ("srcnn", 3, "up"),
            ("car", 4, "up"), ("car", 2, "down"), ("dsn", 2, "up"), ("dsn", 3, "down")]
MAX_LEVELS, MEAN_LEVELS = 8, 0.8


@needs_int8
@pytest.mark.parametrize(("family", "scale", "task"), NETWORKS)
def test_int8_stays_near_fp32(family: str, scale: float, task: str) -> None:
    model, fast = _calibrated(family, scale, task)
    picture = Picture(synthetic_photo(40, 44, seed=7))
    if task == "up":
        size = model.output_size(40, 44, scale)
        run = lambda m, p: upscale_picture(m, picture, size, scale, device="cpu", precision=p)  # noqa: E731
    else:
        run = lambda m, p: downscale_picture(m, picture, int(scale), device="cpu", precision=p)  # noqa: E731
    reference = run(model, "fp32").pixels.astype(int)
    # Outside int8 mode the copy is the fp32 network (in channels-last order: a level at most apart).
    assert np.abs(run(fast, "fp32").pixels.astype(int) - reference).max() <= 1
    diff = np.abs(reference - run(fast, "int8").pixels.astype(int))
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (diff.max(), diff.mean())
    assert diff.max() > 0  # int8 really ran


@needs_int8
@pytest.mark.parametrize(("family", "scale", "task"), [("asdn", 2.5, "up"), ("dair", 2, "up"), ("car", 4, "down")])
def test_tiled_equals_whole_in_int8(family: str, scale: float, task: str) -> None:
    _, fast = _calibrated(family, scale, task)
    x = _input(fast, 72, 80, seed=2)
    if task == "up":
        whole = upscale_tensor(fast, x, scale, tile=0, device="cpu", precision="int8")
        tiled = upscale_tensor(fast, x, scale, tile=24, device="cpu", precision="int8")
    else:
        whole = downscale_tensor(fast, x, int(scale), tile=0, device="cpu", precision="int8")
        tiled = downscale_tensor(fast, x, int(scale), tile=8, device="cpu", precision="int8")
    # The ranges are fixed, so a tile is quantized as the whole image is; what differs is float
    # rounding in the fp32 parts, which may move one value across a quantization step.
    assert (whole - tiled).abs().max().item() <= 0.5 / 255


def test_ranges_of_other_weights_are_refused() -> None:
    model = load("dair", 2).model
    with pytest.raises(ValueError, match="does not match"):
        quantized_copy(model, {"no.such.conv": [0.0, 1.0]})
    with pytest.raises(ValueError, match="does not match"):
        quantized_copy(model, {})


def _train_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "photos"
    folder.mkdir(parents=True)
    for seed in range(3):
        Image.fromarray(synthetic_photo(100, 120, seed=seed)).save(folder / f"p{seed}.png")
    Image.fromarray(synthetic_photo(100, 120, seed=9)[..., 0]).save(folder / "grey.png")  # mode L
    return tmp_path / "train"


def _int8_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: dict | None) -> Path:
    """The active manifest: the bundled dair-x2 entry, with an int8 row of ``row`` and a real calibration.

    ``row`` ``None``: the entry has no precision measurements at all.
    """
    folder = tmp_path / "weights"
    folder.mkdir()
    entry = get_entry("dair-x2")
    shutil.copy(bundled_dir() / entry.file, folder / entry.file)
    data = entry.to_dict()
    data.pop("precision", None)
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps([data]))
    activate_manifest(monkeypatch, manifest)
    if row is not None:
        ranges = calibrate_int8(get_entry("dair-x2"), _train_folder(tmp_path), count=4, size=48)
        record_measurement("dair-x2", {"int8": {"ranges": ranges, **row}})
        activate_manifest(monkeypatch, manifest)  # forget the networks loaded to calibrate
    return manifest


def _up(tmp_path: Path, *extra: str) -> tuple[int, str]:
    source = tmp_path / "in.png"
    Image.fromarray(synthetic_photo(30, 36, seed=4)).save(source)
    result = CliRunner().invoke(app, ["up", str(source), "--scale", "2", "--method", "dair", "--device", "cpu",
                                      "--json", "--overwrite", "-o", str(tmp_path / "out.png"), *extra])
    return result.exit_code, result.output


@needs_int8
def test_up_runs_int8_where_measured_and_calibrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _int8_manifest(tmp_path, monkeypatch, {"loss_db": {"set5": 0.002, "set14": 0.002}, "speedup": 1.7})
    code, output = _up(tmp_path)  # auto, from the measurements
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["precision"] == "int8"
    int8_pixels = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    code, output = _up(tmp_path, "--precision", "fp32")
    assert code == 0 and json.loads(output.strip().splitlines()[-1])["precision"] == "fp32"
    diff = np.abs(int8_pixels - np.asarray(Image.open(tmp_path / "out.png")).astype(int))
    assert 0 < diff.max() <= MAX_LEVELS  # int8 ran, near fp32
    entry = json.loads(manifest.read_text())[0]
    entry["precision"]["cpu"]["int8"]["loss_db"]["set14"] = 0.03  # over the budget: auto keeps fp32
    manifest.write_text(json.dumps([entry]))
    activate_manifest(monkeypatch, manifest)
    code, output = _up(tmp_path)
    assert code == 0 and json.loads(output.strip().splitlines()[-1])["precision"] == "fp32"
    code, output = _up(tmp_path, "--precision", "int8")  # explicit: it is calibrated, so it runs
    assert code == 0 and json.loads(output.strip().splitlines()[-1])["precision"] == "int8"


@needs_int8
def test_int8_without_a_calibration_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _int8_manifest(tmp_path, monkeypatch, None)
    code, output = _up(tmp_path, "--precision", "int8")
    assert code == 2 and "needs an int8 calibration of weights 'dair-x2'" in output, output
    assert "Traceback" not in output and output.strip().splitlines()[-1].startswith("resizer: error: ")
    code, output = _up(tmp_path)  # auto: fp32, nothing measured
    assert code == 0 and json.loads(output.strip().splitlines()[-1])["precision"] == "fp32"


def test_recording_one_precision_keeps_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    entry = get_entry("vdsr").to_dict()
    entry["precision"] = {"cpu": {"bf16": {"loss_db": {"set5": 0.0, "set14": 0.0}, "speedup": 0.4}}}
    shutil.copy(bundled_dir() / entry["file"], folder / entry["file"])
    (folder / "manifest.json").write_text(json.dumps([entry]))
    activate_manifest(monkeypatch, folder / "manifest.json")
    record_measurement("vdsr", {"int8": {"ranges": {"body.0": [0.0, 1.0]}}})
    rows = get_entry("vdsr").precision["cpu"]
    assert set(rows) == {"bf16", "int8"} and rows["bf16"]["speedup"] == 0.4


@needs_int8
def test_bench_runs_int8_only_for_calibrated_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resizer import bench

    monkeypatch.setattr(bench, "_MIN_SECONDS", 0.0)  # one run per measurement
    _int8_manifest(tmp_path, monkeypatch, {"loss_db": {"set5": 0.002, "set14": 0.002}, "speedup": 1.7})
    result = CliRunner().invoke(app, ["bench", "--method", "dair", "--method", "rrdbnet", "--scale", "2", "--scale", "4",
                                      "--precision",
                                      "fp32", "--precision", "int8", "--precision", "auto", "--megapixels", "0.002",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    speed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    rows = [(r["method"], r["scale"], r["precision"]) for r in speed if r.get("record") == "speed"]
    assert rows.count(("dair", 2.0, "int8")) == 1 and ("dair", 2.0, "fp32") in rows  # auto is int8: run once
    assert ("rrdbnet", 4.0, "fp32") in rows and ("dair", 4.0, "fp32") in rows
    assert not any(p == "int8" and (m, s) != ("dair", 2.0) for m, s, p in rows)  # uncalibrated: no int8 row
