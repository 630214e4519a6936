"""The benchmark protocol (``resizer.evaluation``) and ``resizer eval``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer import methods
from resizer.cli import app
from resizer.errors import ImageReadError, ResizerError, UsageError
from resizer.evaluation import EvalResult, evaluate, protocol_sizes
from resizer.image_io import Picture
from resizer.methods import Method
from resizer.color import luma
from resizer.metrics import modcrop, psnr, shave, ssim
from resizer.ops import imresize

from .conftest import synthetic_photo


@pytest.fixture()
def tiny_set(tmp_path: Path) -> Path:
    """Three small images: RGB 40x36, grey 33x29 (mode L), RGBA 30x30; plus a text file."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    Image.fromarray(synthetic_photo(36, 40, seed=1)).save(folder / "a.png")
    Image.fromarray(synthetic_photo(29, 33, seed=2)[:, :, 1]).save(folder / "b.png")
    rgba = np.dstack([synthetic_photo(30, 30, seed=3), np.full((30, 30), 200, np.uint8)])
    Image.fromarray(rgba).save(folder / "c.png")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def _matlab_resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 -> MATLAB imresize to (H, W), rounded half up to uint8."""
    t = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    out = imresize(t, size=size)[0].permute(1, 2, 0).numpy()
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def test_result_structure_and_rows(tiny_set: Path):
    seen = []
    results = list(evaluate([tiny_set], [2, 2.5], progress=lambda d, t, label: seen.append((d, t, label))))
    assert [(r.dataset, r.scale, r.down, r.up) for r in results] == [
        ("tiny", 2.0, "matlab-bicubic", "matlab-bicubic"), ("tiny", 2.5, "matlab-bicubic", "matlab-bicubic")]
    x2, x25 = results
    assert [row.name for row in x2.images] == ["a.png", "b.png", "c.png"]
    assert [(row.hr_size, row.lr_size) for row in x2.images] == [((40, 36), (20, 18)), ((32, 28), (16, 14)),
                                                                 ((30, 30), (15, 15))]
    # x2.5 = 5/2: HR sides cropped to a multiple of 5, LR exactly 2/5 of them.
    assert [(row.hr_size, row.lr_size) for row in x25.images] == [((40, 35), (16, 14)), ((30, 25), (12, 10)),
                                                                  ((30, 30), (12, 12))]
    for result in results:
        assert result.psnr == pytest.approx(np.mean([row.psnr for row in result.images]))
        assert result.ssim == pytest.approx(np.mean([row.ssim for row in result.images]))
        assert all(15 < row.psnr < 60 and 0 < row.ssim < 1 for row in result.images)
        assert result.seconds >= 0
    assert x25.psnr < x2.psnr  # a larger factor loses more
    assert [d for d, _, _ in seen] == list(range(1, 7)) and {t for _, t, _ in seen} == {6}
    assert seen[0][2] == "tiny x2 a.png"


def test_rows_follow_the_protocol_step_by_step(tiny_set: Path):
    (result,) = evaluate([tiny_set], [2])
    hr = modcrop(np.asarray(Image.open(tiny_set / "a.png")), 2)
    lr = _matlab_resize(hr, (18, 20))
    sr = _matlab_resize(lr, (36, 40))
    reference, restored = shave(luma(hr), 2), shave(luma(sr), 2)
    assert result.images[0].psnr == pytest.approx(psnr(reference, restored), abs=1e-9)
    assert result.images[0].ssim == pytest.approx(ssim(reference, restored), abs=1e-12)
    grey = modcrop(np.asarray(Image.open(tiny_set / "b.png"))[:, :, None], 2)  # raw values, no luma matrix
    sr_grey = _matlab_resize(_matlab_resize(grey, (14, 16)), (28, 32))
    expected = psnr(shave(grey[:, :, 0].astype(float), 2), shave(sr_grey[:, :, 0].astype(float), 2))
    assert result.images[1].psnr == pytest.approx(expected, abs=1e-9)


def test_to_json_and_infinite_psnr(tmp_path: Path):
    folder = tmp_path / "flat"
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 77, np.uint8)).save(folder / "flat.png")
    (result,) = evaluate([folder], [2])
    assert math.isinf(result.psnr) and result.ssim == pytest.approx(1.0)
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert set(data) == {"dataset", "scale", "down", "up", "psnr", "ssim", "images", "seconds"}
    assert data["psnr"] is None and data["images"][0]["psnr"] is None
    assert data["images"][0] == {"name": "flat.png", "psnr": None, "ssim": pytest.approx(1.0),
                                 "hr_size": [32, 32], "lr_size": [16, 16]}


def test_save_dir_writes_lr_and_sr(tiny_set: Path, tmp_path: Path):
    out = tmp_path / "saved"
    list(evaluate([tiny_set], [3], save_dir=out))
    folder = out / "tiny" / "x3"
    assert sorted(p.name for p in folder.iterdir()) == ["a_lr.png", "a_sr.png", "b_lr.png", "b_sr.png",
                                                        "c_lr.png", "c_sr.png"]
    with Image.open(folder / "a_lr.png") as lr, Image.open(folder / "a_sr.png") as sr:
        assert lr.size == (13, 12) and sr.size == (39, 36)
    with Image.open(folder / "b_sr.png") as grey:
        assert grey.mode == "L"


def test_protocol_sizes():
    assert protocol_sizes(256, 255, 2) == ((256, 254), (128, 127))
    assert protocol_sizes(280, 280, 2.8) == ((280, 280), (100, 100))
    # 1.5 = 3/2: HR sides a multiple of 3, LR exactly two thirds of them.
    assert protocol_sizes(101, 50, 1.5) == ((99, 48), (66, 32))
    assert protocol_sizes(480, 320, 1.5) == ((480, 318), (320, 212))
    assert protocol_sizes(512, 384, 2.7) == ((486, 378), (180, 140))  # 2.7 = 27/10
    hr, lr = protocol_sizes(500, 480, 3)
    assert hr == (498, 480) and lr == (166, 160)


@pytest.mark.parametrize("scale", [1.1, 1.5, 2.7, 3.3, 4])
@pytest.mark.parametrize("size", [(480, 320), (101, 50), (256, 255)])
def test_protocol_ratio_is_exactly_the_scale(size, scale):
    (hr_w, hr_h), (lr_w, lr_h) = protocol_sizes(*size, scale)
    assert hr_w <= size[0] and hr_h <= size[1]
    assert abs(hr_w / lr_w - scale) < 1e-12 and abs(hr_h / lr_h - scale) < 1e-12


def test_scale_mapped_upscaler_scores_the_same_as_size_mapped(tmp_path: Path):
    """The old crop (LR = floor(side / s), HR = round(LR * s)) left a ratio of 1.5023 at x1.5 on 480x320.

    Then an upscaler that maps pixels by the scale (MATLAB's imresize given a scale, ASDN)
    and one that maps them by the sizes disagree by up to half a pixel at the far edge. With
    the exact ratio they see the same phase and give the same image.
    """
    import torch

    from resizer.ops import imresize

    rng = np.random.default_rng(0)
    hr = torch.from_numpy(rng.random((1, 1, 320, 480)))
    for scale in (1.5, 2.7):
        (hr_w, hr_h), (lr_w, lr_h) = protocol_sizes(480, 320, scale)
        lr = imresize(hr[..., :hr_h, :hr_w], size=(lr_h, lr_w))
        by_scale = imresize(lr, scale=scale, size=(hr_h, hr_w))
        by_size = imresize(lr, size=(hr_h, hr_w))
        assert torch.allclose(by_scale, by_size, atol=1e-9)
    # the old crop at x1.5: 213 LR columns for 320 HR ones, the two mappings disagree
    lr = imresize(hr[..., :320, :480], size=(213, 320))
    assert not torch.allclose(imresize(lr, scale=1.5, size=(320, 480)), imresize(lr, size=(320, 480)), atol=1e-3)


@pytest.mark.parametrize("case", ["missing", "empty", "only-text", "file"])
def test_bad_dataset_folders(tmp_path: Path, case: str):
    target = tmp_path / case
    if case == "empty":
        target.mkdir()
    elif case == "only-text":
        target.mkdir()
        (target / "README.txt").write_text("hello")
    elif case == "file":
        target = tmp_path / "x.png"
        target.write_bytes(b"")
    with pytest.raises(UsageError) as info:
        list(evaluate([target], [2]))
    assert str(target) in str(info.value)


def test_unreadable_image_is_named(tiny_set: Path):
    (tiny_set / "broken.png").write_bytes(b"this is not a PNG file")
    with pytest.raises(ImageReadError, match="broken.png"):
        list(evaluate([tiny_set], [2]))


@pytest.mark.parametrize("scales", [[1], [0.5], [2, 1], [], [float("nan")]])
def test_bad_scales(tiny_set: Path, scales):
    with pytest.raises(UsageError):
        list(evaluate([tiny_set], scales))


def test_unknown_and_unsuitable_methods(tiny_set: Path, monkeypatch):
    with pytest.raises(UsageError, match="unknown method"):
        list(evaluate([tiny_set], [2], up="no-such-method"))

    class UpOnly(Method):
        name = "test-up-only"
        directions = frozenset({"up"})

        def resize(self, picture, request, options):  # pragma: no cover - never reached
            raise AssertionError

    monkeypatch.setitem(methods._REGISTRY, "test-up-only", UpOnly())
    with pytest.raises(UsageError, match="cannot scale down"):
        list(evaluate([tiny_set], [2], down="test-up-only"))


def test_method_returning_the_wrong_size_is_an_error(tiny_set: Path, monkeypatch):
    class Sloppy(Method):
        name = "test-sloppy"

        def resize(self, picture, request, options):
            return Picture(picture.pixels[:3, :3], picture.metadata)

    monkeypatch.setitem(methods._REGISTRY, "test-sloppy", Sloppy())
    with pytest.raises(ResizerError, match="test-sloppy"):
        list(evaluate([tiny_set], [2], down="test-sloppy"))


def test_image_too_small_for_the_scale(tmp_path: Path):
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "s.png")
    with pytest.raises(ResizerError, match="s.png"):
        list(evaluate([folder], [4]))


# --- the command line ------------------------------------------------------------------

def test_cli_json_lines(tiny_set: Path):
    result = CliRunner().invoke(app, ["eval", str(tiny_set), "--scale", "2,3", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["dataset"], d["scale"]) for d in lines] == [("tiny", 2.0), ("tiny", 3.0)]
    assert len(lines[0]["images"]) == 3 and lines[0]["down"] == "matlab-bicubic"


def test_cli_table(tiny_set: Path):
    result = CliRunner().invoke(app, ["eval", str(tiny_set), "-s", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    (expected,) = evaluate([tiny_set], [2])
    lines = result.stdout.splitlines()
    assert all(word in lines[0] for word in ("dataset", "scale", "down", "up", "PSNR", "SSIM", "images", "seconds"))
    row = next(line for line in lines if line.startswith("tiny"))
    assert "x2" in row and "matlab-bicubic" in row and f"{expected.psnr:.2f}" in row and f"{expected.ssim:.4f}" in row


def test_cli_passes_run_options_to_the_methods(tiny_set: Path, monkeypatch):
    seen = []
    bicubic = methods.get_method("matlab-bicubic")

    class Recorder(Method):
        name = "test-recorder"

        def resize(self, picture, request, options):
            seen.append(options)
            return bicubic.resize(picture, request, options)

    monkeypatch.setitem(methods._REGISTRY, "test-recorder", Recorder())
    result = CliRunner().invoke(app, ["eval", str(tiny_set), "--scale", "2", "--up", "test-recorder", "--json",
                                      "--device", "cpu", "--tile", "64", "--precision", "fp32",
                                      "--weights", "w.safetensors"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["up"] == "test-recorder"
    assert len(seen) == 3
    assert {(o.device, o.tile, o.precision, o.weights) for o in seen} == {("cpu", 64, "fp32", "w.safetensors")}


@pytest.mark.parametrize("args", [["--scale", "2,abc"], ["--scale", "1"], ["--scale", "2", "--down", "nope"], []])
def test_cli_usage_errors_exit_2(tiny_set: Path, args):
    result = CliRunner().invoke(app, ["eval", str(tiny_set), *args])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_cli_missing_folder_exit_2(tmp_path: Path):
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "absent"), "--scale", "2"])
    assert result.exit_code == 2
    assert "absent" in result.stderr


def test_cli_unreadable_image_exit_1(tiny_set: Path):
    (tiny_set / "broken.png").write_bytes(b"garbage")
    result = CliRunner().invoke(app, ["eval", str(tiny_set), "--scale", "2"])
    assert result.exit_code == 1
    assert "broken.png" in result.stderr


# --- the papers' bicubic rows ----------------------------------------------------------

PUBLISHED = {  # README of the datasets: bicubic down + bicubic up, PSNR / SSIM on luma
    ("set5", 2.0): (33.66, 0.9299), ("set5", 3.0): (30.39, 0.8682), ("set5", 4.0): (28.42, 0.8104),
    ("set14", 2.0): (30.24, 0.8688), ("set14", 3.0): (27.55, 0.7742), ("set14", 4.0): (26.00, 0.7027),
}


@pytest.mark.datasets
@pytest.mark.slow
def test_reproduces_the_papers_bicubic_rows(datasets: Path):
    bench = datasets / "bench"
    results: list[EvalResult] = list(evaluate([bench / "set5", bench / "set14"], [2, 3, 4]))
    assert len(results) == 6
    for r in results:
        psnr_ref, ssim_ref = PUBLISHED[(r.dataset, r.scale)]
        assert abs(r.psnr - psnr_ref) < 0.05, (r.dataset, r.scale, r.psnr)
        assert abs(r.ssim - ssim_ref) < 0.004, (r.dataset, r.scale, r.ssim)
        assert len(r.images) == (5 if r.dataset == "set5" else 14)


@pytest.mark.datasets
def test_operators_reproduce_srcnn_set5_to_the_last_digit(datasets: Path):
    """The Set5 rows come from SRCNN's code: Y channel (rgb2ycbcr on uint8, so rounded), LR kept
    in floating point, SR rounded. Replaying it checks imresize, PSNR and SSIM to 0.005 dB."""
    for scale in (2, 3, 4):
        scores = []
        for path in sorted((datasets / "bench" / "set5").glob("*.png")):
            y = np.floor(luma(modcrop(np.asarray(Image.open(path).convert("RGB")), scale)) + 0.5)
            h, w = y.shape
            t = torch.from_numpy(y)[None, None]
            sr = imresize(imresize(t, size=(h // scale, w // scale)), size=(h, w))[0, 0].numpy()
            sr = np.clip(np.floor(sr + 0.5), 0, 255)
            scores.append((psnr(shave(y, scale), shave(sr, scale)), ssim(shave(y, scale), shave(sr, scale))))
        mean_psnr, mean_ssim = np.mean(scores, axis=0)
        psnr_ref, ssim_ref = PUBLISHED[("set5", float(scale))]
        assert abs(mean_psnr - psnr_ref) < 0.005, (scale, mean_psnr)
        assert abs(mean_ssim - ssim_ref) < 0.00005, (scale, mean_ssim)


def test_evaluate_network_is_the_protocol_on_a_network_in_memory(tiny_set: Path):
    """Training's validation: the same crop, LR, rounding and luma scores as ``evaluate``, without a method."""
    from resizer.evaluation import evaluate_network
    from resizer.models import ModelFamily

    class Bicubic(torch.nn.Module):  # MATLAB bicubic as an RGB "network"
        def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
            return imresize(x.double(), scale=scale)

    network = Bicubic().train()
    family = ModelFamily("toy-bicubic", "single", ("toy-bicubic",), "rgb")
    (in_memory,) = evaluate_network(network, family, [tiny_set], [2])
    (reference,) = evaluate([tiny_set], [2])
    assert network.training  # put back as it was
    assert (in_memory.dataset, in_memory.scale, in_memory.up) == (reference.dataset, 2.0, "toy-bicubic")
    assert [i.name for i in in_memory.images] == [i.name for i in reference.images]
    for mine, theirs in zip(in_memory.images, reference.images):
        assert (mine.hr_size, mine.lr_size) == (theirs.hr_size, theirs.lr_size)
        assert mine.psnr == pytest.approx(theirs.psnr, abs=0.02) and mine.ssim == pytest.approx(theirs.ssim, abs=1e-3)
