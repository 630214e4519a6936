"""Inference precisions: the auto choice from measurements, refusals, and what low precision costs."""

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
from resizer.learned import downscale_picture, upscale_picture
from resizer.weights import bundled_dir, get_entry, load, read_manifest

from .conftest import activate_manifest, synthetic_photo

CPU = torch.device("cpu")
LOW = [p for p in ("bf16", "fp16") if p in prec.supported_precisions(CPU)]
QUALIFIED = {"loss_db": {"set5": 0.004, "set14": 0.01}, "speedup": 2.5}


def _simulate_cpu(monkeypatch: pytest.MonkeyPatch, bf16: bool, native: bool = True) -> None:
    """Pretend the CPU has (or lacks) bf16: what oneDNN reports and the cpuinfo flags."""
    monkeypatch.setattr(prec, "cpu_supports", lambda p: p == "fp32" or (bf16 and p == "bf16"))
    monkeypatch.setattr(prec, "cpu_bf16_native", lambda: bf16 and native)


def test_auto_picks_fp32_where_the_cpu_lacks_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    measured = {"cpu-bf16": {"bf16": QUALIFIED}, "cpu": {"bf16": QUALIFIED}}
    _simulate_cpu(monkeypatch, bf16=False)
    assert prec.supported_precisions(CPU) == ("fp32",)
    assert prec.choose_precision("auto", CPU, measured) == "fp32"
    _simulate_cpu(monkeypatch, bf16=True)
    assert prec.device_kind(CPU) == "cpu-bf16"
    assert prec.choose_precision("auto", CPU, measured) == "bf16"
    assert prec.choose_precision("fp32", CPU, measured) == "fp32"  # explicit wins


def test_auto_needs_measurements_within_budget_on_both_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    _simulate_cpu(monkeypatch, bf16=True)
    choose = lambda row: prec.choose_precision("auto", CPU, {"cpu-bf16": {"bf16": row}})  # noqa: E731
    assert choose(QUALIFIED) == "bf16"
    assert choose({**QUALIFIED, "loss_db": {"set5": 0.004, "set14": 0.021}}) == "fp32"  # over 0.02 dB on one set
    assert choose({**QUALIFIED, "loss_db": {"set5": 0.004}}) == "fp32"  # Set14 never measured
    assert choose({**QUALIFIED, "speedup": 0.4}) == "fp32"  # emulated bf16: slower than fp32
    assert prec.choose_precision("auto", CPU, None) == "fp32"
    # Measured on a CPU with native bf16 says nothing about one that emulates it.
    _simulate_cpu(monkeypatch, bf16=True, native=False)
    assert prec.choose_precision("auto", CPU, {"cpu-bf16": {"bf16": QUALIFIED}}) == "fp32"


def test_unsupported_or_unknown_precision_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _simulate_cpu(monkeypatch, bf16=False)
    for name in ("bf16", "fp16"):
        with pytest.raises(UsageError, match=f"--precision {name} is not supported"):
            prec.check_precision(name, CPU)
    for name in ("int8", "int4"):  # int8: runnable here only where the CPU has VNNI (tests/test_int8.py)
        with pytest.raises(UsageError, match=f"--precision {name} is not supported|unknown precision '{name}'"):
            prec.check_precision(name, CPU)
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        prec.check_precision("int4", CPU)


def _measured_manifest(tmp_path: Path, row: dict) -> Path:
    """A manifest holding the bundled VDSR entry with ``row`` as its bf16 measurement on every CPU kind."""
    folder = tmp_path / "weights"
    folder.mkdir()
    entry = get_entry("vdsr").to_dict()
    entry["precision"] = {"cpu": {"bf16": row}, "cpu-bf16": {"bf16": row}}
    shutil.copy(bundled_dir() / entry["file"], folder / entry["file"])
    (folder / "manifest.json").write_text(json.dumps([entry]))
    return folder / "manifest.json"


def _up_json(tmp_path: Path, *extra: str) -> tuple[int, str]:
    source = tmp_path / "in.png"
    Image.fromarray(synthetic_photo(20, 24, seed=1)).save(source)
    result = CliRunner().invoke(app, ["up", str(source), "--scale", "2", "--method", "vdsr", "--device", "cpu",
                                      "--json", "--overwrite", "-o", str(tmp_path / "out.png"), *extra])
    return result.exit_code, result.output


def test_json_rows_say_the_precision_auto_chose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    activate_manifest(monkeypatch, _measured_manifest(tmp_path, QUALIFIED))
    _simulate_cpu(monkeypatch, bf16=False)
    code, output = _up_json(tmp_path)
    assert code == 0, output
    row = json.loads(output.strip().splitlines()[-1])
    assert (row["device"], row["precision"]) == ("cpu", "fp32")
    code, output = _up_json(tmp_path, "--precision", "bf16")
    assert code == 2 and "--precision bf16 is not supported" in output
    if not prec.cpu_supports("bf16"):
        return
    monkeypatch.undo()  # the real CPU, which can run bf16; the same measured manifest
    activate_manifest(monkeypatch, tmp_path / "weights" / "manifest.json")
    code, output = _up_json(tmp_path)
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["precision"] == "bf16"


def test_classical_rows_say_cpu_and_no_precision(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(synthetic_photo(20, 24, seed=1)).save(source)
    result = CliRunner().invoke(app, ["down", str(source), "--scale", "2", "--json", "-o", str(tmp_path / "o.png")])
    row = json.loads(result.output.strip().splitlines()[-1])
    assert (row["device"], row["precision"]) == ("cpu", None)


def test_measurements_round_trip_through_the_manifest() -> None:
    entries = {e.name: e for e in read_manifest()}
    for entry in entries.values():
        data = entry.to_dict()
        assert ("precision" in data) == bool(entry.precision)  # unmeasured entries keep their old shape
    measured = [e for e in entries.values() if e.precision]
    for entry in measured:
        for kind, rows in entry.precision.items():
            assert kind in ("cpu", "cpu-bf16", "cuda", "mps")
            for name, row in rows.items():
                assert name in ("bf16", "fp16", "int8")
                assert set(row["loss_db"]) == {"set5", "set14"} and row["speedup"] > 0
                assert ("ranges" in row) == (name == "int8")  # int8 rows carry their calibration


# Every bundled network: (family, scale, task). Output pixels of each low precision must stay
# within MAX_LEVELS of fp32 (naive autocast of the whole network moved them by up to 4).
NETWORKS = [("asdn", 2.0, "up"), ("asdn", 2.7, "up"), ("dair", 2, "up"), ("dair", 4, "up"), ("vdsr", 3, "up"),
            ("srcnn", 3, "up"), ("car", 4, "up"), ("car", 2, "down"), ("dsn", 2, "up"), ("dsn", 3, "down")]
MAX_LEVELS, MEAN_LEVELS = 3, 0.3


@pytest.mark.skipif(not LOW, reason="this CPU runs no low precision")
@pytest.mark.parametrize("precision", LOW)
@pytest.mark.parametrize(("family", "scale", "task"), NETWORKS)
def test_low_precision_stays_near_fp32(family: str, scale: float, task: str, precision: str) -> None:
    model = load(family, scale, task=task).model
    picture = Picture(synthetic_photo(40, 44, seed=7))
    if task == "up":
        size = model.output_size(40, 44, scale)
        run = lambda p: upscale_picture(model, picture, size, scale, device="cpu", precision=p)  # noqa: E731
    else:
        run = lambda p: downscale_picture(model, picture, int(scale), device="cpu", precision=p)  # noqa: E731
    reference, low = run("fp32").pixels.astype(int), run(precision).pixels.astype(int)
    diff = np.abs(reference - low)
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (diff.max(), diff.mean())
    assert diff.max() > 0 or precision == "fp32"  # the precision really ran


@pytest.mark.parametrize("precision", ["fp32", *LOW])
@pytest.mark.parametrize(("family", "scale", "task"), [("asdn", 2.5, "up"), ("dair", 2, "up"), ("car", 4, "down")])
def test_tiled_equals_whole_in_every_precision(family: str, scale: float, task: str, precision: str) -> None:
    model = load(family, scale, task=task).model
    channels = 1 if model.color == "y" else 3
    x = torch.from_numpy(synthetic_photo(72, 80, seed=2)[..., :channels].transpose(2, 0, 1).copy()).float()[None] / 255
    if task == "up":
        whole = upscale_tensor(model, x, scale, tile=0, device="cpu", precision=precision)
        tiled = upscale_tensor(model, x, scale, tile=24, device="cpu", precision=precision)
    else:
        whole = downscale_tensor(model, x, int(scale), tile=0, device="cpu", precision=precision)
        tiled = downscale_tensor(model, x, int(scale), tile=8, device="cpu", precision=precision)
    # fp32: float rounding only. Low precision: a convolution over another shape may round one
    # bf16 product differently, far below an output level (1/255).
    tolerance = 1e-5 if precision == "fp32" else 0.5 / 255
    assert (whole - tiled).abs().max().item() <= tolerance


def test_channels_last_runs_a_copy_and_leaves_the_shared_network_alone() -> None:
    from resizer.learned import inference_model

    shared = load("asdn", 2.0).model
    fast = inference_model(shared, CPU)
    assert fast is not shared and inference_model(shared, CPU) is fast  # one copy per network
    assert fast.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert shared.head.weight.is_contiguous()  # the loader's network is unchanged
    assert inference_model(load("dair", 2).model, CPU) is load("dair", 2).model  # DAIR measured slower in it
    x = torch.rand(1, 1, 30, 34)
    with torch.inference_mode():
        assert (fast(x, 2.0) - shared(x, 2.0)).abs().max().item() < 1e-5
