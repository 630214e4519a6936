"""Paired down/up methods (CAR): joint training and export, pairing metadata, exact original sizes.

A tiny CAR pair is trained for a few steps and exported into a temporary manifest; the
CLI then runs on it through ``$RESIZER_MANIFEST``, as a user's own trained pair would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.engine import downscale_tensor
from resizer.errors import ResizerError
from resizer.image_io import load_picture
from resizer.models import ResamplingPair, create_model
from resizer.pairing import Pairing, read_pairing
from resizer.geometry import SizeSpec
from resizer.resizing import DEFAULT_METHOD, plan_resize
from resizer.training import TrainConfig, train
from resizer.weights import read_manifest

from .conftest import activate_manifest, synthetic_photo, train_on_one_thread

TINY = {"down": {"feats": 8, "blocks": 1}, "up": {"feats": 8, "blocks": 1}}


@pytest.fixture(scope="module")
def car_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest with tiny CAR pairs for x2 and x4, trained 3 steps each and scored on 2 images."""
    root = tmp_path_factory.mktemp("car")
    data, bench = root / "data", root / "bench"
    data.mkdir()
    bench.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_photo(96, 112, seed=i)).save(data / f"im{i}.png")
    for i in range(2):
        Image.fromarray(synthetic_photo(60, 68, seed=10 + i)).save(bench / f"b{i}.png")
    manifest = root / "weights" / "manifest.json"
    for scale in (2, 4):
        result = train_on_one_thread(TrainConfig(
            arch="car", scales=(scale,), data=(str(data),), steps=3, batch=2, patch=32, model_config=TINY,
            loss_weights={"offset": 0.002}, out=str(root / f"run{scale}"), export=f"car-x{scale}",
            manifest=str(manifest), bench=(str(bench),), device="cpu"))
        assert result.export["entries"] == [f"car-x{scale}-down", f"car-x{scale}-up"]
    return manifest


@pytest.fixture()
def use_car(car_manifest: Path, monkeypatch: pytest.MonkeyPatch, single_torch_thread) -> Path:
    return activate_manifest(monkeypatch, car_manifest)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


# ----------------------------------------------------------------- metadata


def test_pairing_text_round_trip_and_malformed_values() -> None:
    pairing = Pairing("car", "car-x4-down", "0.1.0", 4.0, (333, 211))
    text = pairing.to_text()
    assert text["resizer:scale"] == "4" and text["resizer:original_size"] == "333x211"
    assert read_pairing(text) == pairing
    assert read_pairing({}) is None
    assert pairing.fits((83, 53)) and not pairing.fits((84, 53))
    assert Pairing("car", "", "", 2.0, (5, 7)).fits((3, 4))  # halves round up: 2.5 -> 3, 3.5 -> 4
    assert Pairing("car", "", "", 4.0, (1, 2)).fits((1, 1))  # never below one pixel
    with pytest.raises(ResizerError, match="thumb.png: .*pairing metadata"):
        read_pairing({**text, "resizer:original_size": "big"}, name="thumb.png")


def test_export_writes_both_halves_with_round_trip_scores(car_manifest: Path) -> None:
    entries = {e.name: e for e in read_manifest(car_manifest)}
    assert set(entries) == {"car-x2-down", "car-x2-up", "car-x4-down", "car-x4-up"}
    down, up = entries["car-x4-down"], entries["car-x4-up"]
    assert (down.task, up.task, down.family, up.family) == ("down", "up", "car", "car")
    assert down.config["scale"] == 4 and down.config["feats"] == 8 and up.scales == [4.0]
    score = up.scores["bench"]["x4"]
    assert score == down.scores["bench"]["x4"]
    assert 15 < score["psnr"] < 60 and 15 < score["thumbnail_psnr"] < 60
    assert "offset 0.002" in up.recipe["schedule"] and "--loss-weight offset=0.002" in up.recipe["command"]
    assert "--loss " not in up.recipe["command"]  # a pair's objective is its joint loss, not --loss
    assert (car_manifest.parent / down.file).is_file() and (car_manifest.parent / up.file).is_file()


def test_training_a_pair_needs_one_integer_scale(tmp_path: Path) -> None:
    from resizer.errors import UsageError

    data = tmp_path / "d"
    data.mkdir()
    Image.fromarray(synthetic_photo(64, 64)).save(data / "a.png")
    with pytest.raises(UsageError, match="one --scale"):
        train(TrainConfig(arch="car", scales=(2, 4), data=(str(data),), steps=1, out=str(tmp_path / "r")))
    with pytest.raises(UsageError, match="loss-weight"):
        train(TrainConfig(arch="car", scales=(2,), data=(str(data),), steps=1, loss_weights={"nope": 1.0},
                          model_config=TINY, out=str(tmp_path / "r2")))


# ----------------------------------------------------------------- engine


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_downscale_equals_whole(scale: int, single_torch_thread) -> None:
    torch.manual_seed(0)
    model = create_model("car-down", {"scale": scale, "feats": 8, "blocks": 2})
    with torch.no_grad():  # make the offsets and kernels vary, as a trained model's do
        model.head.weight.normal_(0, 0.5)
    x = torch.rand(1, 3, 101, 87)
    whole = downscale_tensor(model, x, scale, tile=0, device="cpu")
    tiled = downscale_tensor(model, x, scale, tile=9, device="cpu")
    assert tuple(whole.shape[-2:]) == (int(101 / scale + 0.5), int(87 / scale + 0.5))
    assert (whole - tiled).abs().max().item() < 1e-5


# ----------------------------------------------------------------- CLI


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
@pytest.mark.parametrize("size", [(333, 211), (64, 48)])
def test_thumbnail_records_pairing_and_up_restores_the_exact_size(use_car: Path, tmp_path: Path, fmt: str,
                                                                    size: tuple[int, int]) -> None:
    width, height = size
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(height, width)).save(src)
    thumb = tmp_path / f"thumb.{fmt}"
    down = run("down", str(src), "--scale", "4", "--method", "car", "-o", str(thumb), "--json")
    assert down.exit_code == 0, down.output
    picture = load_picture(thumb)
    assert (picture.width, picture.height) == (int(width / 4 + 0.5), int(height / 4 + 0.5))
    pairing = read_pairing(picture.metadata.text)
    assert pairing == Pairing("car", "car-x4-down", pairing.version, 4.0, (width, height))
    restored = tmp_path / "restored.png"
    up = run("up", str(thumb), "-o", str(restored), "--json")  # no --scale, no --method
    assert up.exit_code == 0, up.output
    assert json.loads(up.output)["method"] == "car"
    with Image.open(restored) as im:
        assert im.size == (width, height)
    assert read_pairing(load_picture(restored).metadata.text) is None  # the restored image is no thumbnail


def test_up_uses_the_pairing_only_where_it_applies(use_car: Path, tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(80, 100)).save(src)
    thumb = tmp_path / "thumb.png"
    assert run("down", str(src), "--scale", "2", "--method", "car", "-o", str(thumb)).exit_code == 0
    picture = load_picture(thumb)
    method, request = plan_resize(picture, "up", SizeSpec())
    assert (method.name, request.size, request.scale) == ("car", (100, 80), 2.0)
    method, request = plan_resize(picture, "up", SizeSpec(scale=2))
    assert method.name == "car"
    method, request = plan_resize(picture, "up", SizeSpec(scale=3))  # another scale: the default upscaler
    assert method.name == DEFAULT_METHOD["up"] == "asdn" and request.size == (150, 120)
    method, _ = plan_resize(picture, "up", SizeSpec(scale=2), "lanczos")
    assert method.name == "lanczos"


def test_stripped_thumbnail_upscales_with_method_car(use_car: Path, tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(80, 100)).save(src)
    thumb = tmp_path / "thumb.png"
    assert run("down", str(src), "--scale", "4", "--method", "car", "-o", str(thumb), "--strip").exit_code == 0
    assert read_pairing(load_picture(thumb).metadata.text) is not None  # --strip keeps resizer's own keys
    bare = tmp_path / "bare.png"
    with Image.open(thumb) as im:
        im.save(bare)  # Pillow drops the text chunk: the metadata is gone
    assert read_pairing(load_picture(bare).metadata.text) is None
    no_size = run("up", str(bare), "-o", str(tmp_path / "x.png"))
    assert no_size.exit_code == 2 and "bare.png" in no_size.output and "--scale" in no_size.output
    out = tmp_path / "out.png"
    result = run("up", str(bare), "--method", "car", "--scale", "4", "-o", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.size == (100, 80)


def test_thumbnails_of_a_folder(use_car: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(synthetic_photo(40, 50, seed=1)).save(folder / "a.png")
    Image.fromarray(synthetic_photo(42, 58, seed=2)).save(folder / "sub" / "b.jpg")
    result = run("down", str(folder), "--scale", "2", "--method", "car", "--json")
    assert result.exit_code == 0, result.output
    outputs = [json.loads(line)["output"] for line in result.stdout.splitlines()]
    assert len(outputs) == 2
    for out in outputs:
        assert read_pairing(load_picture(out).metadata.text).method == "car"


def test_scales_without_a_car_model_are_refused(use_car: Path, tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(40, 50)).save(src)
    result = run("down", str(src), "--scale", "3", "--method", "car")
    assert result.exit_code == 2
    assert "x2, x4" in result.output
    result = run("down", str(src), "--scale", "2.5", "--method", "car")
    assert result.exit_code == 2 and "integer" in result.output


def test_eval_round_trip_reports_thumbnail_fidelity(use_car: Path, car_manifest: Path) -> None:
    bench = car_manifest.parents[1] / "bench"
    result = run("eval", str(bench), "--scale", "2", "--down", "car", "--up", "car", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    recorded = read_manifest(car_manifest)[0].scores["bench"]["x2"]
    assert row["psnr"] == pytest.approx(recorded["psnr"], abs=1e-3)
    assert row["lr_psnr"] == pytest.approx(recorded["thumbnail_psnr"], abs=1e-3)
    assert "bicubic_psnr" in row
    plain = run("eval", str(bench), "--scale", "2", "--down", "car", "--up", "bicubic")
    assert plain.exit_code == 0, plain.output
    assert "LR PSNR" in plain.output and "gain" in plain.output


def test_pair_module_round_trip_is_8_bit() -> None:
    pair = ResamplingPair(create_model("car-down", {"scale": 2, "feats": 8, "blocks": 1}),
                          create_model("car-up", {"scale": 2, "feats": 8, "blocks": 1}))
    lr, sr = pair.round_trip(torch.rand(1, 3, 32, 32), 2)
    assert lr.shape[-2:] == (16, 16) and sr.shape[-2:] == (32, 32)
    assert torch.equal(lr, torch.round(lr * 255) / 255)
    assert np.isfinite(sr.numpy()).all()


def test_a_failed_export_leaves_the_manifest_as_it_was(car_manifest: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "weights" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_bytes(car_manifest.read_bytes())
    (tmp_path / "weights" / "car-x2-up.safetensors").write_bytes((car_manifest.parent / "car-x2-up.safetensors").read_bytes())
    before = manifest.read_bytes()
    data = car_manifest.parents[1] / "data"
    empty = tmp_path / "empty"
    empty.mkdir()  # a bench folder without images: scoring fails after the files are written
    from resizer.errors import UsageError

    with pytest.raises(UsageError, match="no images"):
        train_on_one_thread(TrainConfig(arch="car", scales=(2,), data=(str(data),), steps=1, batch=2, patch=32,
                                        model_config=TINY, out=str(tmp_path / "run"), export="car-x2",
                                        manifest=str(manifest), bench=(str(empty),), device="cpu"))
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["car-x2-up.safetensors", "manifest.json"]
    assert (manifest.parent / "car-x2-up.safetensors").read_bytes() == \
        (car_manifest.parent / "car-x2-up.safetensors").read_bytes()


def test_a_pair_exported_beside_another_of_its_scale_is_scored_as_itself(car_manifest: Path, tmp_path: Path) -> None:
    """Export picks no half by name order: ``car-x2-z`` sorts after ``car-x2``, yet its own scores are recorded."""
    import shutil

    from resizer.evaluation import evaluate
    from resizer.weights import clear_model_cache, manifest_override

    shutil.copytree(car_manifest.parent, tmp_path / "weights")
    manifest = tmp_path / "weights" / "manifest.json"
    data, bench = car_manifest.parents[1] / "data", car_manifest.parents[1] / "bench"
    train_on_one_thread(TrainConfig(arch="car", scales=(2,), data=(str(data),), steps=3, batch=2, patch=32, seed=7,
                                    model_config=TINY, loss_weights={"offset": 0.002}, out=str(tmp_path / "run"),
                                    export="car-x2-z", manifest=str(manifest), bench=(str(bench),), device="cpu"))
    entries = json.loads(manifest.read_text())
    recorded = next(e for e in entries if e["name"] == "car-x2-z-up")["scores"]["bench"]["x2"]
    assert sorted(p.name for p in manifest.parent.iterdir() if p.name.startswith(".")) == []  # no scoring copy left
    alone = tmp_path / "weights" / "alone.json"
    alone.write_text(json.dumps([e for e in entries if e["name"] not in ("car-x2-down", "car-x2-up")]))
    clear_model_cache()
    with manifest_override(alone):
        (own,) = list(evaluate([bench], [2], down="car", up="car"))
    with manifest_override(manifest):
        (shipped,) = list(evaluate([bench], [2], down="car", up="car"))
    clear_model_cache()
    assert recorded["psnr"] == round(own.psnr, 4) and recorded["thumbnail_psnr"] == round(float(own.lr_psnr), 4)
    assert round(shipped.psnr, 4) != recorded["psnr"]  # the older pair scores otherwise: the check can fail
