"""Community model files through spandrel, imported models, inferred methods and training checkpoints.

Every network is built here with random weights (tiny ESRGAN/RRDBNet, SwinIR and SPAN),
saved as a ``.pth`` state dict and as ``.safetensors``, and run through the real CLI:
nothing is downloaded. ``RESIZER_HOME`` points each test at its own user manifest.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.weights.community import clear_community_cache, spandrel_module

from .conftest import synthetic_photo

pytestmark = pytest.mark.usefixtures("single_torch_thread")
spandrel_module()  # the extra is in the test extra; its torchvision stand-in comes first

runner = CliRunner()


def tiny_networks() -> dict[str, torch.nn.Module]:
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet
    from spandrel.architectures.SPAN.__arch.span import SPAN
    from spandrel.architectures.SwinIR.__arch.SwinIR import SwinIR

    torch.manual_seed(0)
    span = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)
    with torch.no_grad():  # random SPAN weights at full size saturate (its inputs are scaled to 0-255)
        for parameter in span.parameters():
            parameter.mul_(0.3)
    return {
        "esrgan": RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4),
        "swinir": SwinIR(upscale=2, in_chans=3, img_size=16, window_size=4, img_range=1.0, depths=[2],
                         embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler="pixelshuffledirect"),
        "span": span,
    }


SCALES = {"esrgan": 4, "swinir": 2, "span": 2}
ARCHS = {"esrgan": "ESRGAN", "swinir": "SwinIR", "span": "SPAN"}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"esrgan.pth": path, "esrgan.safetensors": path, ...}``."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("community")
    files = {}
    for name, net in tiny_networks().items():
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        torch.save(state, folder / f"{name}.pth")
        save_file(state, str(folder / f"{name}.safetensors"))
        files[f"{name}.pth"], files[f"{name}.safetensors"] = folder / f"{name}.pth", folder / f"{name}.safetensors"
    return files


@pytest.fixture(autouse=True)
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESIZER_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    clear_community_cache()


def photo(tmp_path: Path, size=(37, 29), mode="RGB") -> Path:
    pixels = synthetic_photo(size[1], size[0])
    path = tmp_path / f"in-{mode}.png"
    image = Image.fromarray(pixels)
    if mode == "RGBA":
        image.putalpha(Image.fromarray(np.linspace(0, 255, size[0] * size[1]).reshape(size[1], size[0]).astype(np.uint8)))
    image.convert(mode).save(path)
    return path


def not_saturated(pixels: np.ndarray) -> bool:
    """The random network gives an image, not all black or white (so equal runs mean something)."""
    inner = (pixels > 0) & (pixels < 255)
    return inner.mean() > 0.2


@pytest.mark.parametrize("name", ["esrgan", "swinir", "span"])
@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
def test_each_architecture_is_detected_and_tiled_equals_whole(name: str, suffix: str, model_files, tmp_path) -> None:
    source = photo(tmp_path, (101, 86))  # several interior tiles even with a 26-pixel halo
    scale = SCALES[name]
    outputs = []
    for tile in ("0", "16"):
        out = tmp_path / f"out-{tile}.png"
        result = runner.invoke(app, ["up", str(source), "--weights", str(model_files[f"{name}.{suffix}"]),
                                     "--scale", str(scale), "--tile", tile, "-o", str(out)])
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(out)).astype(int))
    whole, tiled = outputs
    assert whole.shape == (86 * scale, 101 * scale, 3)
    assert not_saturated(whole)
    assert np.abs(whole - tiled).max() <= 1  # within 1/255


def test_receptive_field_of_each_tiny_network_is_exact_and_window_aligned(model_files) -> None:
    from resizer.models.community import CommunityNet
    from resizer.weights.community import load_descriptor

    nets = {name: CommunityNet(load_descriptor(model_files[f"{name}.pth"])) for name in SCALES}
    assert {name: net.arch for name, net in nets.items()} == ARCHS
    assert nets["esrgan"].exact_tiles and nets["swinir"].exact_tiles
    assert nets["swinir"].tile_multiple == 4  # its window
    assert all(0 < net.halo <= 64 for net in nets.values())


def test_alpha_grey_and_16_bit_go_through_resizers_handling(model_files, tmp_path) -> None:
    weights = str(model_files["span.safetensors"])
    rgba = photo(tmp_path, mode="RGBA")
    out = tmp_path / "rgba.png"
    assert runner.invoke(app, ["up", str(rgba), "--weights", weights, "--scale", "2", "-o", str(out)]).exit_code == 0
    with Image.open(out) as im:
        assert im.mode == "RGBA" and im.size == (74, 58)
    deep = tmp_path / "deep.png"
    Image.fromarray((synthetic_photo(20, 24)[:, :, 0].astype(np.uint16) * 257)).save(deep)
    out16 = tmp_path / "deep_up.png"
    result = runner.invoke(app, ["up", str(deep), "--weights", weights, "--scale", "2", "-o", str(out16)])
    assert result.exit_code == 0, result.output
    with Image.open(out16) as im:
        assert im.mode in ("I;16", "I") and im.size == (48, 40)


def test_smaller_scale_runs_the_network_then_bicubic_and_larger_is_refused(model_files, tmp_path) -> None:
    source = photo(tmp_path)
    weights = str(model_files["esrgan.pth"])
    out = tmp_path / "x3.png"
    assert runner.invoke(app, ["up", str(source), "--weights", weights, "--scale", "3", "-o", str(out)]).exit_code == 0
    assert Image.open(out).size == (111, 87)
    result = runner.invoke(app, ["up", str(source), "--weights", weights, "--scale", "8", "-o", str(tmp_path / "x8.png")])
    assert result.exit_code == 2
    assert "x4 ESRGAN model enlarges up to x4, not x8" in result.output


class Payload:
    """A pickle that creates a file when it is loaded."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(writer: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    state = {"conv.weight": torch.zeros(1), "trap": Payload(marker)}
    if writer == "torch.save":
        torch.save(state, bad)
    else:
        with open(bad, "wb") as handle:
            pickle.dump(state, handle)
    result = runner.invoke(app, ["up", str(photo(tmp_path)), "--weights", str(bad), "--scale", "2",
                                 "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and str(bad) in lines[0] and "forbidden" in lines[0]
    assert not marker.exists()
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))  # an unrestricted unpickler does run it
    assert control.exists()
    imported = runner.invoke(app, ["models", "import", str(bad)])
    assert imported.exit_code == 1 and not marker.exists()


def test_a_file_of_an_unknown_architecture_is_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "odd.pth"
    torch.save({"mystery.weight": torch.zeros(3, 3)}, odd)
    result = runner.invoke(app, ["up", str(photo(tmp_path)), "--weights", str(odd), "--scale", "2",
                                 "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "unknown architecture" in result.output


def test_import_then_use_by_name_list_info_and_remove(model_files, tmp_path, user_home) -> None:
    result = runner.invoke(app, ["models", "import", str(model_files["swinir.safetensors"]), "--name", "my-swin"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((user_home / "models.json").read_text())
    assert recorded[0]["name"] == "my-swin" and recorded[0]["arch"] == "SwinIR" and recorded[0]["scales"] == [2.0]
    assert len(recorded[0]["sha256"]) == 64
    out = tmp_path / "named.png"
    result = runner.invoke(app, ["up", str(photo(tmp_path)), "--method", "my-swin", "--scale", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    direct = tmp_path / "direct.png"
    runner.invoke(app, ["up", str(photo(tmp_path)), "--weights", str(model_files["swinir.safetensors"]),
                        "--scale", "2", "-o", str(direct)])
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(direct)))
    listing = runner.invoke(app, ["models", "list", "--json"])
    rows = [json.loads(line) for line in listing.output.splitlines()]
    assert any(r["name"] == "my-swin" and r["location"] == "imported" for r in rows)
    assert any(r["name"] == "vdsr" and r["scores"] for r in rows)
    assert "my-swin" in runner.invoke(app, ["models", "info", "my-swin"]).output
    assert runner.invoke(app, ["models", "import", str(model_files["span.pth"]), "--name", "my-swin"]).exit_code == 2
    assert runner.invoke(app, ["models", "import", str(model_files["span.pth"]), "--name", "lanczos"]).exit_code == 2
    vdsr = runner.invoke(app, ["models", "import", str(_bundled("vdsr.safetensors")), "--name", "my-vdsr", "--json"])
    assert vdsr.exit_code == 0, vdsr.output
    assert json.loads(vdsr.output)["method"] == "vdsr" and json.loads(vdsr.output)["scales"] == [2.0, 3.0, 4.0]
    mine = tmp_path / "mine.png"
    assert runner.invoke(app, ["up", str(photo(tmp_path)), "--method", "my-vdsr", "--scale", "3",
                               "-o", str(mine)]).exit_code == 0
    bundled = tmp_path / "bundled.png"
    runner.invoke(app, ["up", str(photo(tmp_path)), "--method", "vdsr", "--scale", "3", "-o", str(bundled)])
    assert np.array_equal(np.asarray(Image.open(mine)), np.asarray(Image.open(bundled)))
    assert runner.invoke(app, ["models", "remove", "my-swin"]).exit_code == 0
    gone = runner.invoke(app, ["up", str(photo(tmp_path)), "--method", "my-swin", "--scale", "2",
                               "-o", str(tmp_path / "gone.png")])
    assert gone.exit_code == 2 and "unknown method 'my-swin'" in gone.output


def _bundled(name: str) -> Path:
    from resizer.weights import manifest_path

    return manifest_path().parent / name


def test_an_imported_file_changed_since_is_refused(model_files, tmp_path) -> None:
    copy = tmp_path / "span.pth"
    copy.write_bytes(model_files["span.pth"].read_bytes())
    assert runner.invoke(app, ["models", "import", str(copy)]).exit_code == 0
    torch.save({k: v + 1 for k, v in torch.load(copy, weights_only=True).items()}, copy)
    result = runner.invoke(app, ["up", str(photo(tmp_path)), "--method", "span", "--scale", "2",
                                 "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1 and "changed since it was imported" in result.output


def test_weights_without_method_infers_it_from_resizers_own_file(tmp_path: Path) -> None:
    vdsr = _bundled("vdsr.safetensors")
    out = tmp_path / "v.json"
    result = runner.invoke(app, ["up", str(photo(tmp_path)), "--weights", str(vdsr), "--scale", "2", "--json",
                                 "-o", str(tmp_path / "v.png")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0])["method"] == "vdsr"
    assert not out.exists()


def test_models_info_of_a_family_lists_its_files() -> None:
    result = runner.invoke(app, ["models", "info", "car"])
    assert result.exit_code == 0, result.output
    assert "car-x2-up" in result.output and "car-x4-down" in result.output and "unknown" not in result.output
    listing = runner.invoke(app, ["models", "list"])
    from resizer.weights import get_entry

    asdn_x2 = get_entry("asdn").scores["set5"]["x2"]["psnr"]
    assert "SET5" in listing.output and f"{asdn_x2:.2f}" in listing.output  # asdn's measured x2 score, as listed


def test_missing_spandrel_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from resizer.weights import community

    community.spandrel_module.cache_clear()
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ModuleNotFoundError
    try:
        odd = tmp_path / "x.pth"
        torch.save({"a": torch.zeros(1)}, odd)
        result = runner.invoke(app, ["up", str(photo(tmp_path)), "--weights", str(odd), "--scale", "2",
                                     "-o", str(tmp_path / "o.png")])
        assert result.exit_code == 2
        assert 'pip install "resizer[community]"' in result.output and result.output.strip().count("\n") == 0
    finally:
        community.spandrel_module.cache_clear()


def test_a_training_checkpoint_is_accepted_by_weights(tmp_path: Path) -> None:
    from resizer.training import TrainConfig, train
    from resizer.weights.checkpoint_weights import checkpoint_weights, load_checkpoint_network

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(48, 56, seed=i)).save(data / f"img{i}.png")
    run = tmp_path / "run"
    train(TrainConfig(arch="srcnn", scales=(2,), data=(str(data),), steps=4, batch=2, patch=16, seed=1, out=str(run),
                      model_config={"channels": [8, 4], "kernels": [3, 3, 3]}, checkpoint_every=4, log_every=2))
    ckpt = checkpoint_weights(run)
    assert ckpt is not None and ckpt.family == "srcnn" and ckpt.scales == [2.0]
    from safetensors.torch import load_file

    saved = load_file(str(ckpt.model_file))
    loaded = load_checkpoint_network(ckpt, "cpu")
    assert all(torch.equal(saved[k], v) for k, v in loaded.state_dict().items())
    source = photo(tmp_path)
    outputs = {}
    for label, spec in {"run": run, "folder": ckpt.model_file.parent, "file": ckpt.model_file}.items():
        out = tmp_path / f"{label}.png"
        result = runner.invoke(app, ["up", str(source), "--weights", str(spec), "--scale", "2", "--json", "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.splitlines()[0])["method"] == "srcnn"  # inferred from the run's config
        outputs[label] = np.asarray(Image.open(out))
    assert np.array_equal(outputs["run"], outputs["file"]) and np.array_equal(outputs["run"], outputs["folder"])
    wrong = runner.invoke(app, ["up", str(source), "--weights", str(run), "--scale", "3", "-o", str(tmp_path / "x3.png")])
    assert wrong.exit_code == 2 and "x2" in wrong.output


def test_the_python_api_runs_a_community_file_like_the_cli(model_files, tmp_path: Path) -> None:
    import resizer

    source = photo(tmp_path)
    out = tmp_path / "cli.png"
    result = runner.invoke(app, ["up", str(source), "--scale", "2", "--weights", str(model_files["span.pth"]),
                                 "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Image.open(source) as image:
        enlarged = resizer.resize(image, scale=2, weights=str(model_files["span.pth"]), device="cpu")
    assert enlarged.size == (74, 58)
    with Image.open(out) as written:
        assert np.array_equal(np.asarray(enlarged), np.asarray(written))
