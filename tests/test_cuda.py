"""The CUDA path: every bundled network on the GPU in every precision, tiling, out-of-memory recovery.

Skipped without a CUDA GPU; ``benchmarks/gpu_check.sh`` runs them (``pytest -m cuda``).
"""

from __future__ import annotations

import pytest
import torch

from resizer import precision as prec
from resizer.engine import downscale_tensor, upscale_tensor
from resizer.image_io import Picture
from resizer.learned import downscale_picture, upscale_picture
from resizer.weights import clear_model_cache, load

from .conftest import synthetic_photo

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]

NETWORKS = [("asdn", 2.0, "up"), ("asdn", 2.7, "up"), ("asdn", 4.0, "up"), ("dair", 2, "up"), ("dair", 3, "up"),
            ("dair", 4, "up"), ("vdsr", 2, "up"), ("vdsr", 4, "up"), ("srcnn", 3, "up"), ("car", 2, "up"),
            ("car", 4, "up"), ("car", 2, "down"), ("car", 4, "down"), ("dsn", 2, "up"), ("dsn", 3, "up"),
            ("dsn", 4, "up"), ("dsn", 2, "down"), ("dsn", 3, "down"), ("dsn", 4, "down")]


def _precisions() -> list[str]:
    return list(prec.supported_precisions(torch.device("cuda"))) if torch.cuda.is_available() else ["fp32"]


def _model(family: str, scale: float, task: str):
    clear_model_cache()
    return load(family, scale, task=task, device="cuda").model


@pytest.mark.parametrize(("family", "scale", "task"), NETWORKS)
def test_gpu_matches_cpu_and_low_precision_stays_near_fp32(family: str, scale: float, task: str) -> None:
    picture = Picture(synthetic_photo(96, 120, seed=3))
    cpu_model = load(family, scale, task=task, device="cpu").model
    gpu_model = _model(family, scale, task)

    def run(model, device: str, precision: str):
        if task == "up":
            size = model.output_size(96, 120, scale)
            return upscale_picture(model, picture, size, scale, device=device, precision=precision).pixels.astype(int)
        return downscale_picture(model, picture, int(scale), device=device, precision=precision).pixels.astype(int)

    reference = run(cpu_model, "cpu", "fp32")
    gpu32 = run(gpu_model, "cuda", "fp32")
    assert abs(gpu32 - reference).max() <= 1  # cuDNN rounds differently from oneDNN, by at most a level
    for precision in _precisions()[1:]:
        diff = abs(run(gpu_model, "cuda", precision) - gpu32)
        assert diff.max() <= 3 and diff.mean() <= 0.3, (precision, diff.max(), diff.mean())


@pytest.mark.parametrize("precision", _precisions())
@pytest.mark.parametrize(("family", "scale", "task"), [("asdn", 2.5, "up"), ("dair", 4, "up"), ("vdsr", 3, "up"),
                                                       ("car", 4, "down"), ("dsn", 2, "up")])
def test_tiled_equals_whole_on_the_gpu(family: str, scale: float, task: str, precision: str) -> None:
    model = _model(family, scale, task)
    channels = 1 if model.color == "y" else 3
    x = torch.from_numpy(synthetic_photo(150, 170, seed=4)[..., :channels].transpose(2, 0, 1).copy()).float()[None] / 255
    run = upscale_tensor if task == "up" else downscale_tensor
    s = scale if task == "up" else int(scale)
    whole = run(model, x, s, tile=0, device="cuda", precision=precision)
    tiled = run(model, x, s, tile=48 if task == "up" else 16, device="cuda", precision=precision)
    tolerance = 1e-4 if precision == "fp32" else 0.5 / 255
    assert (whole - tiled).abs().max().item() <= tolerance


def test_real_out_of_memory_halves_the_tile_and_succeeds() -> None:
    """A whole-image VDSR run that cannot fit in a capped GPU memory retries with smaller tiles."""
    model = _model("vdsr", 2, "up")
    x = torch.rand(1, 1, 1500, 1500)  # x2: 3000 x 3000 x 64 channels x 4 bytes = 2.3 GB per activation
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5e9 / total))
    try:
        out = upscale_tensor(model, x, 2, tile=0, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert out.shape[-2:] == (3000, 3000) and torch.isfinite(out).all()
