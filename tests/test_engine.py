"""The tiling engine: tiled equals whole, batching, sizes, devices, precisions, OOM retries."""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
from torch.nn import functional as F

from resizer import engine
from resizer.devices import resolve_device, resolve_precision
from resizer.engine import scale_period, upscale_tensor
from resizer.errors import ResizerError, UsageError
from resizer.geometry import fit_to_size
from resizer.models import ResamplingModel, create_model


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _model(arch: str) -> ResamplingModel:
    torch.manual_seed(0)
    # Published depth (so the published halo), fewer VDSR channels to keep the test fast.
    return create_model(arch, {"channels": 16} if arch == "vdsr" else None)


@pytest.mark.parametrize("arch", ["srcnn", "vdsr"])
@pytest.mark.parametrize("scale", [2, 3, 2.5])
def test_tiled_equals_whole(arch: str, scale: float) -> None:
    model = _model(arch)
    x = torch.rand(1, 1, 37, 29, generator=torch.Generator().manual_seed(3))
    whole = upscale_tensor(model, x, scale, tile=0, device="cpu")
    assert whole.shape[-2:] == (math.floor(37 * scale + 0.5), math.floor(29 * scale + 0.5))
    for tile in (8, 13, 20):
        tiled = upscale_tensor(model, x, scale, tile=tile, device="cpu", batch=3)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max().item() <= 1 / 255, f"seams with tile {tile}"


def test_concurrent_cpu_tiles_equal_the_whole_image() -> None:
    """With several cores, CPU tiles run in threads: same result, thread count restored."""
    model = _model("vdsr")
    x = torch.rand(1, 1, 45, 38, generator=torch.Generator().manual_seed(5))
    whole = upscale_tensor(model, x, 2.5, tile=0, device="cpu")
    torch.set_num_threads(3)
    calls: list[tuple[int, int]] = []
    tiled = upscale_tensor(model, x, 2.5, tile=12, device="cpu", progress=lambda d, t: calls.append((d, t)))
    assert torch.get_num_threads() == 3
    assert (tiled - whole).abs().max().item() <= 1 / 255
    assert len(calls) == calls[-1][1] == 16 and sorted(d for d, _ in calls) == list(range(1, 17))


def test_a_halo_one_pixel_short_shows_seams() -> None:
    """The equality above is not vacuous: with too little context the tiles disagree."""
    model = _model("srcnn")
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(4))
    whole = upscale_tensor(model, x, 3, tile=0, device="cpu")
    model.context = lambda scale: type(model).context(model, scale) - 1
    short = upscale_tensor(model, x, 3, tile=10, device="cpu")
    assert (short - whole).abs().max().item() > 0


class Recorder(ResamplingModel):
    """Nearest-neighbour x2 (halo 0) that records the batch shapes it is given."""

    color = "y"

    def __init__(self, fail_above: int | None = None) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []
        self.fail_above = fail_above

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        if self.fail_above is not None and max(x.shape[-2:]) > self.fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return F.interpolate(x, scale_factor=int(scale), mode="nearest")


def test_tiles_of_equal_shape_are_batched() -> None:
    x = torch.rand(1, 1, 64, 64)
    model = Recorder()
    one = upscale_tensor(model, x, 2, tile=16, device="cpu", batch=1)
    assert len(model.shapes) == 16 and all(s[0] == 1 for s in model.shapes)
    model.shapes.clear()
    four = upscale_tensor(model, x, 2, tile=16, device="cpu", batch=4)
    assert len(model.shapes) == 4 and all(s[0] == 4 for s in model.shapes)
    assert torch.equal(one, four)
    assert torch.equal(four, F.interpolate(x, scale_factor=2, mode="nearest"))


def test_progress_reports_every_tile() -> None:
    calls: list[tuple[int, int]] = []
    upscale_tensor(Recorder(), torch.rand(1, 1, 50, 30), 2, tile=16, device="cpu", batch=2,
                   progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (8, 8) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_out_of_memory_halves_the_tile_until_it_fits() -> None:
    x = torch.rand(1, 1, 100, 90)
    model = Recorder(fail_above=30)
    out = upscale_tensor(model, x, 2, tile=0, device="cpu")
    assert torch.equal(out, F.interpolate(x, scale_factor=2, mode="nearest"))
    tried = [max(s[-2:]) for s in model.shapes]
    assert tried[0] == 100 and max(tried[-4:]) <= 30  # whole image first, then smaller tiles


def test_out_of_memory_gives_up_clearly_below_the_minimum_tile() -> None:
    model = Recorder(fail_above=engine.MIN_TILE // 2)
    with pytest.raises(ResizerError, match="out of memory"):
        upscale_tensor(model, torch.rand(1, 1, 80, 80), 2, tile=64, device="cpu")
    assert min(max(s[-2:]) for s in model.shapes) <= engine.MIN_TILE


def test_other_errors_are_not_retried() -> None:
    class Broken(Recorder):
        def forward(self, x, scale):
            self.shapes.append(tuple(x.shape))
            raise RuntimeError("shape mismatch")

    model = Broken()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        upscale_tensor(model, torch.rand(1, 1, 40, 40), 2, tile=0, device="cpu")
    assert len(model.shapes) == 1


def test_scale_period() -> None:
    assert scale_period(2) == 1 and scale_period(4.0) == 1
    assert scale_period(2.5) == 2 and scale_period(1.75) == 4
    assert scale_period(10 / 3) == 3
    assert scale_period(1.2345) is None


def test_a_scale_without_period_runs_whole_and_warns() -> None:
    model = Recorder()
    model.forward = lambda x, scale: F.interpolate(x, size=(round(x.shape[-2] * scale), round(x.shape[-1] * scale)))
    with pytest.warns(RuntimeWarning, match="whole image"):
        out = upscale_tensor(model, torch.rand(1, 1, 40, 40), 2.0101, tile=16, device="cpu")
    assert out.shape[-2:] == (80, 80)


def test_output_is_exactly_out_size() -> None:
    x = torch.rand(1, 1, 20, 30)
    model = Recorder()
    natural = upscale_tensor(model, x, 2, device="cpu")
    bigger = upscale_tensor(model, x, 2, (41, 61), device="cpu")
    assert bigger.shape[-2:] == (41, 61)
    assert torch.equal(bigger[..., :40, :60], natural) and torch.equal(bigger[..., 40, :60], natural[..., 39, :])
    assert upscale_tensor(model, x, 2, (39, 59), device="cpu").shape[-2:] == (39, 59)
    assert upscale_tensor(model, x, 2, (50, 60), device="cpu").shape[-2:] == (50, 60)  # aspect change: resized
    assert fit_to_size(natural, (40, 60)) is natural


def test_device_errors_are_usage_errors() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(UsageError, match="CUDA"):
                resolve_device(name)
        with pytest.raises(UsageError, match="CUDA"):
            upscale_tensor(Recorder(), torch.rand(1, 1, 8, 8), 2, device="cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match="MPS"):
            resolve_device("mps")
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")


def test_half_precision_is_refused_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    for name in ("fp16", "bf16"):
        with pytest.raises(UsageError, match="GPU"):
            resolve_precision(name, cpu)
    with pytest.raises(UsageError, match="unknown precision"):
        resolve_precision("int8", cpu)


def test_cpu_threads_use_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real use_all_cpu_threads
    torch.set_num_threads(1)
    upscale_tensor(Recorder(), torch.rand(1, 1, 8, 8), 2, device="cpu")
    assert torch.get_num_threads() == len(os.sched_getaffinity(0))


def test_default_tile_is_used_and_bounds_the_tile_size() -> None:
    model = Recorder()
    side = engine.DEFAULT_TILE_CPU
    upscale_tensor(model, torch.rand(1, 1, side + 40, 20), 2, device="cpu")
    assert len(model.shapes) == 2 and max(s[-2] for s in model.shapes) <= side
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upscale_tensor(model, torch.rand(1, 1, 16, 16), 2.0101, device="cpu")  # smaller than a tile: no warning


def test_bench_reports_ratios_measured_in_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from resizer import bench
    from resizer.cli import app

    monkeypatch.setattr(bench, "_MIN_SECONDS", 0.0)  # one run per measurement
    args = ["bench", "--method", "srcnn", "--method", "rrdbnet", "--scale", "2", "--megapixels", "0.002",
            "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    rows = {r["method"]: r for r in records if r["record"] == "speed"}
    assert set(rows) == {"pillow-bicubic", "edsr-baseline", "srcnn"}  # rrdbnet is x4 only
    assert rows["pillow-bicubic"]["vs_pillow"] == 1 and rows["edsr-baseline"]["vs_edsr"] == 1
    srcnn = rows["srcnn"]
    assert srcnn["output_size"] == [2 * srcnn["input_size"][0], 2 * srcnn["input_size"][1]]
    assert srcnn["vs_edsr"] == pytest.approx(srcnn["out_mp_per_s"] / rows["edsr-baseline"]["out_mp_per_s"])
    bad = CliRunner().invoke(app, ["bench", "--method", "nope", "--device", "cpu"])
    assert bad.exit_code == 2 and "unknown method" in bad.output
