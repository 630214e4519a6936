"""JPEG quality estimation and the learned restoration of JPEG artefacts (issue 20).

A tiny ``dejpeg`` is trained for two steps and exported into a temporary manifest (so the
training recipe, the export's scores and every command run without the shipped weights);
the shipped weights' quality on Set5 is checked when the datasets are present.
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
from resizer.engine import upscale_tensor
from resizer.jpeg_quality import estimate_quality, quality_from_tables, scaled_tables
from resizer.models import create_model, get_family
from resizer.restoration import MAX_RESTORED_QUALITY, jpeg_round_trip, plan_restoration
from resizer.training import TrainConfig
from resizer.weights import read_manifest

from .conftest import activate_manifest, synthetic_photo, train_on_one_thread

TINY = {"depth": 3, "channels": 8}


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def save_jpeg(path: Path, pixels: np.ndarray, quality: int) -> Path:
    Image.fromarray(pixels).save(path, "JPEG", quality=quality)
    return path


@pytest.fixture(scope="module")
def dejpeg_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dejpeg")
    data = root / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(48, 56, seed=i)).save(data / f"{i}.png")
    manifest = root / "weights" / "manifest.json"
    train_on_one_thread(TrainConfig(arch="dejpeg", scales=(1,), data=(str(data),), steps=2, batch=2, patch=32,
                                    codec_quality=(10, 90), model_config=TINY, out=str(root / "run"),
                                    export="dejpeg", manifest=str(manifest), bench=(str(data),), device="cpu"))
    return manifest


@pytest.fixture()
def use_dejpeg(dejpeg_manifest: Path, monkeypatch: pytest.MonkeyPatch, single_torch_thread) -> Path:
    return activate_manifest(monkeypatch, dejpeg_manifest)


# --------------------------------------------------------------------------- quality estimation


@pytest.mark.parametrize("quality", [10, 20, 30, 50, 75, 90, 95])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_quality_is_estimated_exactly_from_the_tables(tmp_path: Path, quality: int, mode: str) -> None:
    image = Image.fromarray(synthetic_photo(40, 48)).convert(mode)
    path = tmp_path / "q.jpg"
    image.save(path, "JPEG", quality=quality)
    assert estimate_quality(path) == quality
    with Image.open(path) as opened:
        assert estimate_quality(opened) == quality


def test_lossless_and_unreadable_files_have_no_quality(tmp_path: Path) -> None:
    Image.fromarray(synthetic_photo(20, 24)).save(tmp_path / "a.png")
    Image.fromarray(synthetic_photo(20, 24)).save(tmp_path / "a.webp", lossless=True)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    assert estimate_quality(tmp_path / "a.png") is None
    assert estimate_quality(tmp_path / "a.webp") is None
    assert estimate_quality(tmp_path / "junk.jpg") is None
    assert quality_from_tables({}) is None


def test_other_encoders_tables_give_the_nearest_quality() -> None:
    luma, chroma = scaled_tables(40)
    nudged = {0: [int(v) + (1 if i % 3 == 0 else 0) for i, v in enumerate(luma)], 1: list(chroma)}
    assert abs(quality_from_tables(nudged) - 40) <= 2


def test_decoded_pictures_carry_their_estimated_quality(tmp_path: Path) -> None:
    from resizer.image_io import load_picture

    assert load_picture(save_jpeg(tmp_path / "a.jpg", synthetic_photo(24, 32), 35)).metadata.jpeg_quality == 35
    Image.fromarray(synthetic_photo(24, 32)).save(tmp_path / "a.png")
    assert load_picture(tmp_path / "a.png").metadata.jpeg_quality is None


def test_restoration_plan_skips_lossless_high_quality_and_disabled() -> None:
    assert plan_restoration("JPEG", 30).method == "dejpeg"
    assert plan_restoration("JPEG", MAX_RESTORED_QUALITY + 1).method is None
    assert plan_restoration("PNG", None).method is None
    assert plan_restoration("JPEG", 30, enabled=False).reason == "disabled"


# --------------------------------------------------------------------------- the family


def test_dejpeg_is_a_scale_1_luma_restoration_family_and_tiles_exactly() -> None:
    family = get_family("dejpeg")
    assert (family.restores, family.color, family.scales, family.objective) == ("jpeg", "y", (1,), "restore")
    torch.manual_seed(0)
    model = create_model("dejpeg", TINY).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    assert not model.supports_scale(2.0)
    x = torch.rand(1, 1, 45, 37)
    whole = upscale_tensor(model, x, 1.0, tile=0, device="cpu")
    tiled = upscale_tensor(model, x, 1.0, tile=16, device="cpu")
    assert whole.shape == x.shape and (whole - tiled).abs().max().item() < 1e-5


def test_training_exports_restoration_scores_per_quality(dejpeg_manifest: Path) -> None:
    entry = next(e for e in read_manifest(dejpeg_manifest) if e.family == "dejpeg")
    assert (entry.task, entry.scales, entry.config["depth"]) == ("up", [1.0], 3)
    assert "--codec jpeg" in entry.recipe["command"] and "--codec-quality 10-90" in entry.recipe["command"]
    assert "every patch through jpeg at quality 10-90" in entry.recipe["schedule"]
    scores = entry.scores["data"]["x1"]
    assert {"psnr_q10", "jpeg_psnr_q10", "gain_q10", "psnr_q95"} <= set(scores)
    assert scores["gain_q10"] == pytest.approx(scores["psnr_q10"] - scores["jpeg_psnr_q10"], abs=2e-4)


def test_restoration_training_refuses_other_scales(tmp_path: Path) -> None:
    Image.fromarray(synthetic_photo(40, 40)).save(tmp_path / "a.png")
    result = run("train", "dejpeg", "--scale", "2", "--data", str(tmp_path), "--steps", "1")
    assert result.exit_code == 2 and "scale 1" in result.output


# --------------------------------------------------------------------------- up, decode, eval


def test_up_of_a_png_is_never_restored(use_dejpeg: Path, tmp_path: Path) -> None:
    Image.fromarray(synthetic_photo(30, 36)).save(tmp_path / "in.png")
    first = run("up", str(tmp_path / "in.png"), "--scale", "2", "--method", "lanczos", "-o", str(tmp_path / "a.png"),
                "--json")
    second = run("up", str(tmp_path / "in.png"), "--scale", "2", "--method", "lanczos", "-o", str(tmp_path / "b.png"),
                 "--no-restore")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert json.loads(first.output)["restore"] == {"method": None, "quality": None, "reason": "not a lossy JPEG"}
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_up_of_a_jpeg_restores_it_first_and_says_so(tmp_path: Path, single_torch_thread) -> None:
    """By default before a learned upscaler (asdn); a classical filter only with --restore (bundled weights)."""
    source = save_jpeg(tmp_path / "in.jpg", synthetic_photo(30, 36), 25)
    restored = run("up", str(source), "--scale", "2", "-o", str(tmp_path / "a.png"), "--json")
    plain = run("up", str(source), "--scale", "2", "-o", str(tmp_path / "b.png"), "--json", "--no-restore")
    assert restored.exit_code == 0 and plain.exit_code == 0, restored.output + plain.output
    assert json.loads(restored.output)["method"] == "asdn"
    assert json.loads(restored.output)["restore"] == {"method": "dejpeg", "quality": 25, "reason": "jpeg artefacts"}
    assert json.loads(plain.output)["restore"]["reason"] == "disabled"
    a, b = (np.asarray(Image.open(tmp_path / name)) for name in ("a.png", "b.png"))
    assert a.shape == b.shape == (60, 72, 3) and not np.array_equal(a, b)

    classical = run("up", str(source), "--scale", "2", "-m", "lanczos", "-o", str(tmp_path / "c.png"), "--json")
    asked = run("up", str(source), "--scale", "2", "-m", "lanczos", "--restore", "-o", str(tmp_path / "d.png"), "--json")
    assert json.loads(classical.output)["restore"] == {"method": None, "quality": 25,
                                                       "reason": "classical method (--restore restores first)"}
    assert json.loads(asked.output)["restore"]["method"] == "dejpeg"
    c, d = (np.asarray(Image.open(tmp_path / name)) for name in ("c.png", "d.png"))
    assert np.array_equal(c, np.asarray(Image.open(source).resize((72, 60), Image.Resampling.LANCZOS)))
    assert not np.array_equal(c, d)


def test_the_api_restores_a_jpeg_by_default_like_up_and_restore_false_turns_it_off(tmp_path: Path,
                                                                                    single_torch_thread) -> None:
    from resizer import Resizer, resize

    source = save_jpeg(tmp_path / "in.jpg", synthetic_photo(30, 36), 25)
    assert run("up", str(source), "--scale", "2", "-o", str(tmp_path / "cli.png")).exit_code == 0
    assert run("up", str(source), "--scale", "2", "-o", str(tmp_path / "raw.png"), "--no-restore").exit_code == 0
    cli, raw = (np.asarray(Image.open(tmp_path / name)) for name in ("cli.png", "raw.png"))
    assert np.array_equal(resize(str(source), scale=2).pixels, cli)  # a path
    with Image.open(source) as image:  # a Pillow image read from the JPEG knows its quality too
        assert np.array_equal(np.asarray(resize(image, scale=2)), cli)
        assert np.array_equal(np.asarray(Resizer(restore=False)(image, scale=2)), raw)
    assert np.array_equal(resize(str(source), scale=2, restore=False).pixels, raw)
    classical = resize(str(source), scale=2, method="lanczos").pixels  # as the CLI: classical filters stay Pillow's
    assert np.array_equal(classical, np.asarray(Image.open(source).resize((72, 60), Image.Resampling.LANCZOS)))
    assert not np.array_equal(resize(str(source), scale=2, method="lanczos", restore=True).pixels, classical)


def test_up_skips_high_quality_jpegs(use_dejpeg: Path, tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in.jpg", synthetic_photo(30, 36), MAX_RESTORED_QUALITY + 5)
    result = run("up", str(source), "--scale", "2", "--method", "lanczos", "-o", str(tmp_path / "a.png"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["restore"]["method"] is None


def test_decode_restores_a_plain_jpeg_at_its_size(use_dejpeg: Path, tmp_path: Path) -> None:
    pixels = synthetic_photo(33, 41)
    source = save_jpeg(tmp_path / "plain.jpg", pixels, 20)
    result = run("decode", str(source), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["method"] == "dejpeg" and record["restore"]["quality"] == 20
    out = np.asarray(Image.open(record["output"]))
    assert out.shape == pixels.shape and Path(record["output"]).suffix == ".png"
    assert not np.array_equal(out, np.asarray(Image.open(source)))


def test_decode_writes_a_high_quality_plain_jpeg_as_decoded(use_dejpeg: Path, tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "fine.jpg", synthetic_photo(33, 41), MAX_RESTORED_QUALITY + 15)
    result = run("decode", str(source), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["restore"]["method"] is None and record["resized"] is False
    assert np.array_equal(np.asarray(Image.open(record["output"])), np.asarray(Image.open(source)))


def test_eval_restore_reports_the_gain_over_the_decoded_file(use_dejpeg: Path, tmp_path: Path) -> None:
    for i in range(2):
        Image.fromarray(synthetic_photo(40, 48, seed=i)).save(tmp_path / f"{i}.png")
    result = run("eval", str(tmp_path), "--restore", "dejpeg", "--quality", "10,30", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["quality"] for r in rows] == [10, 30] and all(r["images"] == 2 for r in rows)
    assert rows[0]["gain"] == pytest.approx(rows[0]["psnr"] - rows[0]["decoded_psnr"], abs=1e-6)
    assert run("eval", str(tmp_path), "--restore", "dejpeg", "--scale", "2").exit_code == 2


def test_jpeg_round_trip_keeps_shape_and_loses_detail() -> None:
    pixels = synthetic_photo(24, 40)
    decoded = jpeg_round_trip(pixels, 10)
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8 and not np.array_equal(decoded, pixels)
    grey = jpeg_round_trip(pixels[:, :, :1], 50)
    assert grey.shape == (24, 40, 1)


# --------------------------------------------------------------------------- the shipped weights


def test_shipped_dejpeg_scores_are_reproduced_and_gain_on_set5(datasets: Path, single_torch_thread) -> None:
    """Found like every dataset test (``$RESIZER_DATASETS`` or ``../shared/datasets``), so CI runs it."""
    from resizer.evaluation import evaluate_restoration

    SET5 = datasets / "bench" / "set5"

    entry = next(e for e in read_manifest() if e.family == "dejpeg" and e.source == "bundled")
    recorded = entry.scores["set5"]["x1"]
    results = {r.quality: r for r in evaluate_restoration([SET5], [10, 30])}
    for quality, r in results.items():
        assert r.psnr == pytest.approx(recorded[f"psnr_q{quality}"], abs=0.01)
        assert r.decoded_psnr == pytest.approx(recorded[f"jpeg_psnr_q{quality}"], abs=0.01)
    assert results[10].gain > 0.75 and results[30].gain > 1.0, {q: r.gain for q, r in results.items()}


def test_models_list_shows_the_restorers_gain_per_quality() -> None:
    from resizer.cli.models_cmd import score_label

    entry = next(e for e in read_manifest() if e.name == "dejpeg")
    gains = entry.scores["set5"]["x1"]
    expected = f"q10 {gains['gain_q10']:+.2f}  q20 {gains['gain_q20']:+.2f}  q30 {gains['gain_q30']:+.2f} dB"
    assert score_label(entry) == expected
    listing = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "400"})
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if line.startswith("dejpeg"))
    assert f"q10 {gains['gain_q10']:+.2f}" in row and row.rstrip().endswith("dB")
    dsn = next(e for e in read_manifest() if e.name == "dsn-x2-up")
    assert score_label(dsn) == f"x2 {dsn.scores['set5']['x2']['psnr']:.2f}"  # upscalers as before
