"""Every registered model family through the same checks, so a new family is tested without editing a test.

The families come from ``resizer.models.list_families()``; each is built small (its
architectures' width and depth settings shrunk, see :func:`tiny`) so the whole module
runs in seconds on one thread. A toy family defined here (a 2-layer luma refiner) is
registered for this module only and runs through the same checks, and through
``resizer up --method toy --weights FILE`` end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from resizer import methods
from resizer.cli import app
from resizer.engine import downscale_tensor, upscale_tensor
from resizer.geometry import downscaled_size, upscaled_size
from resizer.image_io import Picture
from resizer.learned import LearnedMethod, PairedMethod, downscale_picture, method_for, upscale_picture
from resizer.models import (BicubicRefiner, ModelFamily, get_family, list_families, register_architecture,
                            register_family, unregister_family)
from resizer.models.base import refiner_halo
from resizer.weights import clear_model_cache, load, read_manifest, save_weights

from .conftest import synthetic_photo

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class ToyRefiner(BicubicRefiner):
    """Two 3x3 convolutions refining the MATLAB-bicubic luma: the smallest family worth the name."""

    def __init__(self, feats: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, feats, 3, padding=1)
        self.conv2 = nn.Conv2d(feats, 1, 3, padding=1)
        self.radius = 2
        self.halo = refiner_halo(self.radius)

    def refine(self, upscaled: torch.Tensor) -> torch.Tensor:
        return upscaled + self.conv2(torch.relu(self.conv1(upscaled)))


TOY = ModelFamily("toy", "single", ("toy",), "y", scales=(2.0,), summary="two-layer luma refiner (tests only)")
FAMILIES = sorted({family.name for family in list_families()} | {TOY.name})
ANY_SCALES = (1.5, 2.7)  # any-scale families: one scale inside a pass, one past the x2 recursion
# Width and depth settings cut down to these (whatever an architecture calls them).
SMALL = {"feats": 8, "blocks": 1, "channels": 8, "depth": 3, "growth": 4, "layers": 2}


@pytest.fixture(scope="module", autouse=True)
def toy_family():
    """Register the toy family, its architecture and its method for this module, and remove them after."""
    register_architecture("toy", family="toy", task="up", feats=8)(ToyRefiner)
    register_family(TOY)
    patch = pytest.MonkeyPatch()
    patch.setitem(methods._REGISTRY, TOY.name, method_for(TOY))
    yield TOY
    patch.undo()
    unregister_family(TOY.name)


def scales_of(family: ModelFamily) -> tuple[float, ...]:
    return family.scales or ANY_SCALES


def tiny_config(family: ModelFamily, task: str, scale: float) -> dict:
    """The ``task`` architecture's config with every width/depth setting shrunk; per-scale families get ``scale``."""
    config: dict = {}
    for key, value in family.architecture(task).default_config.items():
        if key not in SMALL or isinstance(value, bool):
            continue
        if isinstance(value, int):
            config[key] = min(value, SMALL[key])
        elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            config[key] = type(value)(min(v, SMALL[key]) for v in value)
    if family.per_scale_config:
        config["scale"] = int(scale)
    return config


def tiny(family: ModelFamily, task: str, scale: float, seed: int = 0) -> nn.Module:
    """A small random network of the family, its output layers perturbed so it is far from its bicubic start."""
    torch.manual_seed(seed)
    model = family.architecture(task).build(tiny_config(family, task, scale)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def channels(family: ModelFamily) -> int:
    return 1 if family.color == "y" else 3


@pytest.mark.parametrize("name", FAMILIES)
def test_family_describes_its_networks_and_method(name: str) -> None:
    family = get_family(name)
    tasks = ("down", "up") if family.is_pair else ("up",)
    for task, arch_name in zip(tasks, family.architectures):
        arch = family.architecture(task)
        assert (arch.name, arch.family, arch.task) == (arch_name, name, task)
        assert tiny(family, task, scales_of(family)[0]).color == family.color
    method = methods.get_method(name)
    assert isinstance(method, LearnedMethod) and method.family is family
    assert isinstance(method, PairedMethod) == family.is_pair
    assert method.directions == family.directions and method.summary == family.summary
    assert method.draws_kernels == family.draws_kernels
    assert bool(family.scales) != family.any_scale  # any-scale families serve every scale with one file


@pytest.mark.parametrize("name", FAMILIES)
def test_output_shapes_at_odd_sizes(name: str) -> None:
    family = get_family(name)
    for scale in scales_of(family):
        up = tiny(family, "up", scale)
        for h, w in ((13, 9), (8, 11)):
            with torch.no_grad():
                out = up(torch.rand(1, channels(family), h, w), scale)
            assert tuple(out.shape) == (1, channels(family), *upscaled_size(h, w, scale)), (scale, h, w)
            assert up.output_size(h, w, scale) == upscaled_size(h, w, scale)
        if family.is_pair:
            down = tiny(family, "down", scale)
            with torch.no_grad():
                lr = down(torch.rand(1, 3, 29, 23), scale)
            assert tuple(lr.shape) == (1, 3, *downscaled_size(29, 23, scale))
            assert down.output_size(29, 23, scale) == downscaled_size(29, 23, scale)


@pytest.mark.parametrize("name", FAMILIES)
def test_tiled_equals_whole(name: str) -> None:
    family = get_family(name)
    for scale in scales_of(family):
        up = tiny(family, "up", scale)
        x = torch.rand(1, channels(family), 45, 38)
        whole = upscale_tensor(up, x, scale, tile=0, device="cpu")
        tiled = upscale_tensor(up, x, scale, tile=16, device="cpu")
        assert (whole - tiled).abs().max().item() < 1 / 255 / 10, scale
        if family.is_pair:
            down = tiny(family, "down", scale)
            hr = torch.rand(1, 3, 70, 61)
            whole = downscale_tensor(down, hr, int(scale), tile=0, device="cpu")
            tiled = downscale_tensor(down, hr, int(scale), tile=32, device="cpu")
            assert (whole - tiled).abs().max().item() < 1 / 255 / 10, scale


@pytest.mark.parametrize("name", FAMILIES)
def test_pairs_restore_the_original_size(name: str) -> None:
    family = get_family(name)
    if not family.is_pair:
        pytest.skip(f"{name} is not a down/up pair")
    original = Picture(synthetic_photo(37, 29, seed=2))
    for scale in scales_of(family):
        down, up = tiny(family, "down", scale), tiny(family, "up", scale)
        thumbnail = downscale_picture(down, original, int(scale), device="cpu")
        assert (thumbnail.height, thumbnail.width) == downscaled_size(37, 29, scale)
        restored = upscale_picture(up, thumbnail, (37, 29), scale, device="cpu", anchored=True)
        assert restored.pixels.shape == original.pixels.shape
        assert np.abs(restored.pixels.astype(int) - original.pixels).mean() < 64  # a picture, not noise


@pytest.mark.parametrize("name", FAMILIES)
def test_saved_weights_load_back_as_the_same_network(name: str, tmp_path: Path) -> None:
    family = get_family(name)
    scale = scales_of(family)[0]
    tasks = ("down", "up") if family.is_pair else ("up",)
    for task in tasks:
        arch = family.architecture(task)
        model, config = tiny(family, task, scale, seed=3), tiny_config(family, task, scale)
        path = tmp_path / f"{arch.name}.safetensors"
        save_weights(model, path, arch=arch.name, config=config, scales=list(family.scales))
        loaded = load(name, scale, weights=str(path), device="cpu", task=task)
        assert (loaded.name, loaded.source, loaded.arch, loaded.family) == (path.name, "file", arch.name, name)
        saved, read = model.state_dict(), loaded.model.state_dict()
        assert saved.keys() == read.keys() and all(torch.equal(saved[k], read[k]) for k in saved)
        x = torch.rand(1, 3 if task == "down" else channels(family), 12, 10)
        with torch.no_grad():
            assert torch.equal(model(x, scale), loaded.model(x, scale))
    clear_model_cache()


@pytest.mark.parametrize("name", FAMILIES)
def test_manifest_serves_every_scale_the_family_is_trained_for(name: str) -> None:
    family = get_family(name)
    entries = [e for e in read_manifest() if e.family == name]
    if not entries:
        pytest.skip(f"no weights of {name} in the manifest")
    tasks = ("down", "up") if family.is_pair else ("up",)
    for task, arch_name in zip(tasks, family.architectures):
        served = [e for e in entries if e.task == task]
        assert served and all(e.arch == arch_name for e in served), task
        if family.any_scale:
            assert all(not e.scales for e in served)
        else:
            assert {s for e in served for s in e.scales} == set(family.scales), task


@pytest.mark.datasets
@pytest.mark.parametrize("name", FAMILIES)
def test_manifest_scores_hold_on_one_set5_image(name: str, datasets: Path, tmp_path: Path) -> None:
    """The shipped weights beat bicubic on Set5's smallest image, near the manifest's Set5 mean.

    The manifest records means over a set (reproduced in full by ``test_shipped_weights``);
    one image cannot repeat a mean, so this asserts the gain and the neighbourhood of it.
    """
    from resizer.evaluation import evaluate

    entry = next((e for e in read_manifest() if e.family == name and e.task == "up" and "set5" in e.scores), None)
    if entry is None:
        pytest.skip(f"no scored weights of {name} in the manifest")
    family = get_family(name)
    key, recorded = next(iter(entry.scores["set5"].items()))
    folder = tmp_path / "set5-one"
    folder.mkdir()
    smallest = min((datasets / "bench" / "set5").glob("*.png"), key=lambda p: p.stat().st_size)
    (folder / smallest.name).symlink_to(smallest)
    if family.restores:  # a restoration family: scored per JPEG quality, against the decoded file
        from resizer.evaluation import evaluate_restoration

        (restored,) = evaluate_restoration([folder], [10], name)
        assert restored.gain > 0 and abs(restored.psnr - recorded["psnr_q10"]) < 5.0, (name, restored)
        return
    down = name if family.is_pair else "matlab-bicubic"
    from resizer.methods import RunOptions

    # an encode-only pair is scored as 'resizer encode' runs it (WeightsEntry.use)
    (result,) = evaluate([folder], [float(key.lstrip("x"))], down=down, up=name, options=RunOptions(use=entry.use))
    assert result.psnr > result.bicubic_psnr, (name, key)
    assert abs(result.psnr - recorded["psnr"]) < 5.0, (name, key, result.psnr, recorded["psnr"])


def test_the_toy_family_runs_from_the_cli_with_a_weights_file(tmp_path: Path) -> None:
    model = tiny(TOY, "up", 2.0, seed=5)
    weights = tmp_path / "toy.safetensors"
    save_weights(model, weights, arch="toy", config=tiny_config(TOY, "up", 2.0), scales=[2.0])
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(synthetic_photo(21, 17, seed=6)).save(src)
    result = CliRunner().invoke(app, ["up", str(src), "--method", "toy", "--weights", str(weights), "--scale", "2",
                                      "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(src) as im:
        expected = upscale_picture(model, Picture(np.asarray(im).copy()), (42, 34), 2.0, device="cpu")
    with Image.open(out) as im:
        assert im.size == (34, 42)
        assert np.array_equal(np.asarray(im), expected.pixels)
    listed = CliRunner().invoke(app, ["methods"])
    assert "toy" in listed.output and TOY.summary in listed.output
    clear_model_cache()


def test_unregistering_a_family_forgets_it_and_its_architectures(toy_family: ModelFamily) -> None:
    """What the toy fixture's teardown relies on, so the toy never leaks into other modules' tests."""
    from resizer.errors import UsageError
    from resizer.models import get_architecture, list_architectures

    probe = ModelFamily("toy-probe", "single", ("toy-probe",), "y")
    register_architecture("toy-probe", family="toy-probe", task="up")(ToyRefiner)
    register_family(probe)
    unregister_family("toy-probe")
    with pytest.raises(UsageError):
        get_family("toy-probe")
    with pytest.raises(UsageError):
        get_architecture("toy-probe")
    assert "toy-probe" not in {a.name for a in list_architectures()}
    assert get_family("toy") is toy_family  # the module's toy is still there until the module ends
