"""The model contract: output shapes, the declared halo, and registration."""

from __future__ import annotations

import math

import pytest
import torch

from resizer.models import ResamplingModel, create_model, get_architecture, list_architectures
from resizer.geometry import upscaled_size
from resizer.models.reference import REFERENCE_MODELS, EDSRBaseline, RRDBNet, build_reference


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _run(model: torch.nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    with torch.inference_mode():
        return model(x, scale)


@pytest.mark.parametrize("arch", ["srcnn", "vdsr"])
@pytest.mark.parametrize("scale", [2, 3, 4, 2.5])
def test_output_shape_on_odd_sizes(arch: str, scale: float) -> None:
    torch.manual_seed(0)
    model = create_model(arch).eval()
    x = torch.rand(2, 1, 7, 9)
    out = _run(model, x, scale)
    expected = (math.floor(7 * scale + 0.5), math.floor(9 * scale + 0.5))
    assert tuple(out.shape) == (2, 1, *expected)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_upscaled_size_rounds_halves_up_like_the_pipeline() -> None:
    assert upscaled_size(5, 3, 2.5) == (13, 8)  # 12.5 -> 13 (Python's round would give 12)
    assert upscaled_size(1, 1, 2.5) == (3, 3)


def _reach(model: ResamplingModel, scale: float, size: int = 32, at: int = 16) -> tuple[int, int]:
    """How far (in input pixels, per axis) a change of one input pixel reaches in the output.

    An output pixel belongs to the input span [floor(J/s), ceil((J+1)/s)); its distance to
    the perturbed pixel is how much context a tile needs to include that pixel.
    """
    torch.manual_seed(1)
    x = torch.rand(1, model_channels(model), size, size)
    y = x.clone()
    y[..., at, at] += 0.5
    changed = (_run(model, x, scale) - _run(model, y, scale)).abs().amax(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)

    def distance(index: torch.Tensor) -> int:
        first = torch.floor(index / scale).long()
        last = torch.ceil((index + 1) / scale).long() - 1
        return int(torch.clamp(torch.maximum(first - at, at - last), min=0).max())

    return distance(rows), distance(cols)


def model_channels(model: ResamplingModel) -> int:
    return 1 if model.color == "y" else 3


# Published depths and kernels; VDSR with 8 channels instead of 64: the receptive field is
# the same and the test is 60 times cheaper.
@pytest.mark.parametrize("arch,config", [("srcnn", None), ("vdsr", {"channels": 8})])
@pytest.mark.parametrize("scale", [2, 3, 4, 2.5, 1.5])
def test_halo_covers_the_receptive_field_and_is_tight(arch: str, config: dict | None, scale: float) -> None:
    torch.manual_seed(0)
    model = create_model(arch, config).eval()
    reach = max(_reach(model, scale))
    context = model.context(scale)
    assert reach <= context, f"a pixel {reach} input pixels away changes the output; context is {context}"
    assert reach >= context - 1, f"context {context} is wider than the receptive field ({reach})"
    assert model.halo >= context  # the class-level halo is the worst case


@pytest.mark.parametrize("arch", ["srcnn", "vdsr"])
def test_halo_is_the_worst_case_over_supported_scales(arch: str) -> None:
    model = create_model(arch)
    scales = [1.0, 1.01, 1.5, 2, 3, 4, 8]
    assert all(model.supports_scale(s) for s in scales)
    assert model.halo == max(model.context(s) for s in scales)


def test_reference_models_shapes_and_halo() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 11, 9)
    for scale in (2, 3, 4):
        small = EDSRBaseline(scale, blocks=1, feats=4).eval()
        assert tuple(_run(small, x, scale).shape) == (1, 3, 11 * scale, 9 * scale)
        assert max(_reach(small, scale, size=20, at=10)) <= small.halo
    rrdb = RRDBNet(blocks=1, feats=4, growth=4).eval()
    assert tuple(_run(rrdb, x, 4).shape) == (1, 3, 44, 36)
    assert max(_reach(rrdb, 4, size=32, at=16)) <= rrdb.halo
    assert not rrdb.supports_scale(2)
    with pytest.raises(ValueError):
        build_reference("rrdbnet", 2)
    assert build_reference("edsr-baseline", 3).supports_scale(3)


def test_registration() -> None:
    for name in ("srcnn", "vdsr"):
        arch = get_architecture(name)
        assert arch.family == name and arch.task == "up"
        model = create_model(name)
        assert isinstance(model, ResamplingModel) and model.color == "y"
    # published sizes: SRCNN 9-5-5 with 64/32 filters; VDSR 20 layers of 64 channels
    assert sum(p.numel() for p in create_model("srcnn").parameters()) == 9 * 9 * 64 + 64 + 5 * 5 * 64 * 32 + 32 + 5 * 5 * 32 + 1
    vdsr = create_model("vdsr")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vdsr.modules()) == 20
    # configs from the registry reach the builder (tiny models for tests and training smoke runs)
    tiny = create_model("vdsr", {"depth": 3, "channels": 8})
    assert tiny.halo < vdsr.halo
    # reference networks are benchmark yardsticks, never methods
    families = {a.family for a in list_architectures()}
    assert not set(REFERENCE_MODELS) & families
