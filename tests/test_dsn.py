"""DSN: Q-BReLU, shapes for every scale and odd sizes, tiling, joint training and the paired CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.engine import downscale_tensor, upscale_tensor
from resizer.image_io import load_picture
from resizer.models import create_model
from resizer.models.dsn import dsn_joint_loss, qbrelu
from resizer.pairing import read_pairing
from resizer.training import TrainConfig, train
from resizer.weights import read_manifest

from .conftest import activate_manifest, synthetic_photo

TINY = {"down": {"feats": 8}, "up": {"feats": 8, "growth": 4, "layers": 2, "blocks": 1}}


def test_qbrelu_rounds_forward_and_passes_gradients_only_inside_the_range() -> None:
    x = torch.tensor([-0.2, 0.0, 0.3012, 0.5, 0.99999, 1.0, 1.4], requires_grad=True)
    y = qbrelu(x)
    assert torch.allclose(y, torch.round(x.detach().clamp(0, 1) * 255) / 255)
    assert torch.equal(y * 255, torch.round(y * 255))
    y.backward(torch.arange(1.0, 8.0))
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(24, 36), (25, 37), (31, 22)])
def test_shapes_for_every_scale_and_odd_sizes(scale: int, size: tuple[int, int], single_torch_thread) -> None:
    down = create_model("dsn-down", {"scale": scale, "feats": 8})
    up = create_model("dsn-up", {"scale": scale, "feats": 8, "growth": 4, "layers": 2, "blocks": 1})
    with torch.no_grad():
        lr = down(torch.rand(1, 3, *size), scale)
        sr = up(lr, scale)
    assert tuple(lr.shape[-2:]) == tuple(int(side / scale + 0.5) for side in size)
    assert tuple(sr.shape[-2:]) == (lr.shape[-2] * scale, lr.shape[-1] * scale)
    assert torch.equal(lr * 255, torch.round(lr * 255)) and lr.min() >= 0 and lr.max() <= 1


@pytest.mark.parametrize("scale", [2, 3])
def test_tiled_equals_whole(scale: int, single_torch_thread) -> None:
    torch.manual_seed(0)
    down = create_model("dsn-down", {"scale": scale, "feats": 8})
    up = create_model("dsn-up", {"scale": scale, "feats": 8, "growth": 4, "layers": 2, "blocks": 1})
    with torch.no_grad():
        down.sample.weight.normal_(0, 0.2)
        up.tail.weight.normal_(0, 0.2)
    x = torch.rand(1, 3, 77, 58)
    assert torch.equal(downscale_tensor(down, x, scale, tile=0, device="cpu"),
                       downscale_tensor(down, x, scale, tile=8, device="cpu"))
    lr = torch.rand(1, 3, 41, 29)
    whole = upscale_tensor(up, lr, scale, tile=0, device="cpu")
    tiled = upscale_tensor(up, lr, scale, tile=12, device="cpu")
    assert (whole - tiled).abs().max().item() < 1e-5


def test_joint_loss_reaches_both_networks() -> None:
    down = create_model("dsn-down", {"scale": 2, "feats": 8})
    up = create_model("dsn-up", {"scale": 2, "feats": 8, "growth": 4, "layers": 2, "blocks": 1})
    loss, terms = dsn_joint_loss(down, up, torch.rand(2, 3, 16, 16))
    loss.backward()
    assert set(terms) == {"l1"}
    assert down.body[0].weight.grad.abs().sum() > 0 and up.head.weight.grad.abs().sum() > 0


def test_trained_pair_round_trips_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  single_torch_thread) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(64, 72, seed=i)).save(data / f"{i}.png")
    manifest = tmp_path / "weights" / "manifest.json"
    result = train(TrainConfig(arch="dsn", scales=(3,), data=(str(data),), steps=4, batch=2, patch=30,
                               model_config=TINY, out=str(tmp_path / "run"), export="dsn-x3",
                               manifest=str(manifest), bench=(str(data),), device="cpu"))
    entries = {e.name: e for e in read_manifest(manifest)}
    assert set(entries) == {"dsn-x3-down", "dsn-x3-up"}
    assert "thumbnail_psnr" in entries["dsn-x3-up"].scores["data"]["x3"]
    activate_manifest(monkeypatch, manifest)
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(50, 61)).save(src)
    runner = CliRunner()
    thumb = tmp_path / "thumb.webp"
    assert runner.invoke(app, ["down", str(src), "--scale", "3", "--method", "dsn", "-o", str(thumb)]).exit_code == 0
    assert read_pairing(load_picture(thumb).metadata.text).method == "dsn"
    out = tmp_path / "back.png"
    up = runner.invoke(app, ["up", str(thumb), "-o", str(out), "--json"])
    assert up.exit_code == 0, up.output
    assert json.loads(up.output)["method"] == "dsn"
    with Image.open(out) as im:
        assert im.size == (61, 50)
