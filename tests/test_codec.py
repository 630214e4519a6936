"""``resizer encode`` / ``decode`` and the rate-distortion evaluation, with a tiny trained DSN pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.codec import CODECS, RatePoint, bjontegaard, gain_at_equal_rate, rate_distortion, summarize
from resizer.errors import UsageError
from resizer.image_io import Metadata, Picture, load_picture, save_picture
from resizer.pairing import read_pairing
from resizer.training import TrainConfig, train

from .conftest import activate_manifest, synthetic_photo, train_on_one_thread

TINY = {"down": {"feats": 8}, "up": {"feats": 8, "growth": 4, "layers": 2, "blocks": 1}}


@pytest.fixture(scope="module")
def dsn_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dsn")
    data = root / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(64, 80, seed=i)).save(data / f"{i}.png")
    manifest = root / "weights" / "manifest.json"
    train_on_one_thread(TrainConfig(arch="dsn", scales=(2,), data=(str(data),), steps=2, batch=2, patch=32,
                                    model_config=TINY, out=str(root / "run"), export="dsn-x2", manifest=str(manifest),
                                    bench=(str(data),), device="cpu"))
    return manifest


@pytest.fixture()
def use_dsn(dsn_manifest: Path, monkeypatch: pytest.MonkeyPatch, single_torch_thread) -> Path:
    return activate_manifest(monkeypatch, dsn_manifest)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("codec", list(CODECS))
def test_encode_decode_round_trip_restores_the_exact_size(use_dsn: Path, tmp_path: Path, codec: str) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(61, 75)).save(src)
    encoded = run("encode", str(src), "--codec", codec, "--quality", "60", "--json")
    assert encoded.exit_code == 0, encoded.output
    record = json.loads(encoded.output)
    out = Path(record["output"])
    assert out.name == f"photo_enc2.{CODECS[codec]}" and out.is_file()
    thumb = load_picture(out)
    assert (thumb.width, thumb.height) == (38, 31)
    pairing = read_pairing(thumb.metadata.text)
    assert (pairing.method, pairing.scale, pairing.original_size) == ("dsn", 2.0, (75, 61))
    decoded = run("decode", str(out), "--json")
    assert decoded.exit_code == 0, decoded.output
    restored = Path(json.loads(decoded.output)["output"])
    assert restored.name == "photo_enc2_dec.png"
    with Image.open(restored) as im:
        assert im.size == (75, 61)
        error = np.abs(np.asarray(im.convert("RGB")).astype(int) - synthetic_photo(61, 75).astype(int)).mean()
    assert error < 40  # a real image came back, not noise


def test_decode_refuses_files_without_pairing_metadata(use_dsn: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.jpg"
    Image.fromarray(synthetic_photo(30, 40)).save(plain)
    result = run("decode", str(plain), "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1
    assert "plain.jpg" in result.output and "no resizer pairing metadata" in result.output
    assert "resizer up --scale" in result.output
    assert not (tmp_path / "out.png").exists()


def test_encode_needs_an_integer_scale_and_a_known_codec(use_dsn: Path, tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(30, 40)).save(src)
    assert run("encode", str(src), "--scale", "2.5").exit_code == 2
    bad = run("encode", str(src), "--codec", "gif")
    assert bad.exit_code == 2 and "known: jpeg, webp, avif, jpeg2000" in bad.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_jpeg2000_keeps_resizer_metadata(tmp_path: Path) -> None:
    picture = Picture(synthetic_photo(32, 32), Metadata(text={"resizer:method": "dsn", "resizer:scale": "2"}))
    save_picture(picture, tmp_path / "a.jp2", quality=50)
    assert load_picture(tmp_path / "a.jp2").metadata.text == {"resizer:method": "dsn", "resizer:scale": "2"}
    save_picture(picture, tmp_path / "b.jp2", quality=100)  # lossless
    assert np.array_equal(load_picture(tmp_path / "b.jp2").pixels, picture.pixels)


def test_gain_is_interpolated_on_the_plain_curve() -> None:
    plain = [RatePoint("d", "plain", "jpeg", q, 2, bpp, p, 0.9, 1) for q, bpp, p in ((20, 0.4, 28.0), (60, 0.8, 32.0))]
    assert gain_at_equal_rate(plain, RatePoint("d", "dsn", "jpeg", 20, 2, 0.5, 31.0, 0.9, 1)) == pytest.approx(2.0)
    assert gain_at_equal_rate(plain, RatePoint("d", "dsn", "jpeg", 20, 2, 0.3, 31.0, 0.9, 1)) is None


def test_bjontegaard_deltas_of_known_shifts() -> None:
    """A curve 1 dB higher is +1 dB at equal rate; one at 80 % of the bits is -20 % at equal PSNR."""
    reference = [(0.25, 27.0), (0.4, 30.1), (0.6, 32.9), (0.9, 35.2), (1.2, 37.0)]
    assert bjontegaard(reference, reference) == pytest.approx((0.0, 0.0), abs=1e-9)
    higher = bjontegaard(reference, [(b, p + 1.0) for b, p in reference])
    assert higher[0] == pytest.approx(1.0, abs=1e-9) and higher[1] < 0
    cheaper = bjontegaard(reference, [(0.8 * b, p) for b, p in reference])
    assert cheaper[1] == pytest.approx(-20.0, abs=1e-6) and cheaper[0] > 0
    assert bjontegaard(reference, [(2.0, 40.0), (3.0, 42.0)]) == (None, None)  # no common range
    assert bjontegaard(reference, [(0.5, 31.0)]) == (None, None)
    lower = bjontegaard(reference, [(0.3, 24.0), (0.5, 26.0), (0.7, 26.9)])  # common rates, no common PSNRs
    assert lower[0] < -4 and lower[1] is None


def test_summary_keeps_the_points_at_or_below_max_bpp() -> None:
    plain = [RatePoint("d", "plain", "jpeg", q, 2, b, p, 0.9, 1) for q, b, p in
             ((10, 0.3, 27.0), (20, 0.45, 30.0), (40, 0.6, 32.0), (80, 1.2, 37.0))]
    learned = [RatePoint("d", "dsn", "jpeg", q, 2, b, p, 0.9, 1, gain=g) for q, b, p, g in
               ((10, 0.35, 29.5, 1.5), (20, 0.5, 31.5, 1.2), (80, 0.9, 33.0, -2.0))]
    bicubic = [RatePoint("d", "bicubic", "jpeg", q, 2, b, p - 0.5, 0.9, 1) for q, b, p, _ in
               ((10, 0.35, 29.5, 0), (20, 0.5, 31.5, 0), (80, 0.9, 33.0, 0))]
    (full, _) = summarize([*plain, *learned])
    (low, _) = summarize([*plain, *learned], max_bpp=0.6)
    assert (full.points, full.min_gain, full.reference) == (3, -2.0, "plain")
    assert (low.points, low.min_gain, low.max_bpp) == (2, 1.2, 0.6)
    assert low.bd_psnr > full.bd_psnr
    assert low.to_json()["summary"] is True and low.to_json()["pipeline"] == "dsn"
    against = {(s.pipeline, s.reference): s for s in summarize([*plain, *bicubic, *learned])}
    assert set(against) == {("bicubic", "plain"), ("dsn", "plain"), ("dsn", "bicubic")}
    assert against[("dsn", "bicubic")].bd_psnr == pytest.approx(0.5, abs=1e-9)
    assert against[("dsn", "bicubic")].min_gain is None


def test_rate_distortion_points(use_dsn: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(48, 52, seed=5 + i)).save(bench / f"{i}.png")
    points = rate_distortion([bench], 2, "jpeg", (30, 90), "dsn")
    by = {(p.pipeline, p.quality): p for p in points}
    assert set(by) == {(n, q) for n in ("plain", "bicubic", "dsn") for q in (30, 90)}
    for name in ("plain", "bicubic", "dsn"):
        assert by[(name, 90)].bpp > by[(name, 30)].bpp  # higher quality costs more bits
    assert by[("plain", 30)].bpp > by[("bicubic", 30)].bpp  # a quarter of the pixels costs fewer
    assert by[("plain", 90)].psnr > by[("plain", 30)].psnr
    assert all(p.gain is None for p in points if p.pipeline == "plain")
    with pytest.raises(UsageError):
        rate_distortion([bench], 2.5, "jpeg", (30,), "dsn")
    # 16-bit files with alpha are scored as their 8-bit colour: alpha dropped, x / 257 rounded
    deep = tmp_path / "deep"
    deep.mkdir()
    for i in range(2):
        colour = synthetic_photo(48, 52, seed=5 + i).astype(np.uint16) * 257
        alpha = np.full((48, 52, 1), 1234, np.uint16)
        save_picture(Picture(np.concatenate([colour, alpha], axis=2)), deep / f"{i}.png")
    deep_points = rate_distortion([deep], 2, "jpeg", (30, 90), "dsn")
    assert [(p.pipeline, p.quality, p.bpp, p.psnr, p.ssim) for p in deep_points] == \
        [(p.pipeline, p.quality, p.bpp, p.psnr, p.ssim) for p in points]
    table = run("eval", str(bench), "--scale", "2", "--codec", "webp", "--quality", "50")
    assert table.exit_code == 0, table.output
    assert "codec only" in table.output and "dsn x2 + codec" in table.output
    assert "BD-PSNR" in table.output and "BD-rate" in table.output
    lines = run("eval", str(bench), "--scale", "2", "--codec", "jpeg", "--quality", "20,50,80", "--max-bpp", "2",
                "--json").output.splitlines()
    summaries = [json.loads(line) for line in lines if json.loads(line).get("summary")]
    assert {(s["pipeline"], s["reference"]) for s in summaries} == {("bicubic", "plain"), ("dsn", "plain"),
                                                                    ("dsn", "bicubic"), ("rate", "plain"),
                                                                    ("rate", "bicubic")}
    assert all(s["max_bpp"] == 2 for s in summaries)
    assert run("eval", str(bench), "--scale", "2", "--max-bpp", "1").exit_code == 2


def test_codec_training_tunes_the_upscaler_only(dsn_manifest: Path, tmp_path: Path, single_torch_thread) -> None:
    """Fine-tuning from the exported pair: codec batches update the upscaler and leave the downscaler alone."""
    from safetensors.torch import load_file

    data = dsn_manifest.parents[1] / "data"
    prefix = dsn_manifest.parent / "dsn-x2"
    result = train(TrainConfig(arch="dsn", scales=(2,), data=(str(data),), steps=2, batch=2, patch=32,
                               model_config=TINY, out=str(tmp_path / "tune"), init=str(prefix), codec="jpeg",
                               codec_quality=(20, 40), codec_share=1.0, device="cpu"))
    assert result.step == 2
    tuned = load_file(str(tmp_path / "tune" / "checkpoints" / "step-00000002" / "model.safetensors"))
    down = load_file(str(prefix) + "-down.safetensors")
    up = load_file(str(prefix) + "-up.safetensors")
    assert all(torch.equal(tuned[f"down.{k}"], v) for k, v in down.items())
    assert any(not torch.equal(tuned[f"up.{k}"], v) for k, v in up.items())
    with pytest.raises(UsageError, match="codec-quality"):
        train(TrainConfig(arch="dsn", scales=(2,), data=(str(data),), steps=1, codec="jpeg", codec_quality=(50, 20),
                          out=str(tmp_path / "bad")))
    with pytest.raises(UsageError, match="pair"):
        train(TrainConfig(arch="srcnn", scales=(3,), data=(str(data),), steps=1, codec="jpeg",
                          out=str(tmp_path / "bad2")))


def test_joint_codec_training_reaches_the_downscaler(dsn_manifest: Path, tmp_path: Path, single_torch_thread) -> None:
    """``codec_joint``: the downscaler learns through the differentiable JPEG; the recipe says so."""
    from safetensors.torch import load_file

    data = dsn_manifest.parents[1] / "data"
    prefix = dsn_manifest.parent / "dsn-x2"
    config = TrainConfig(arch="dsn", scales=(2,), data=(str(data),), steps=2, batch=2, patch=32, model_config=TINY,
                         out=str(tmp_path / "joint"), init=str(prefix), codec="jpeg", codec_quality=(10, 60),
                         codec_share=1.0, codec_joint=True, codec_rate=0.05, device="cpu")
    assert train(config).step == 2
    tuned = load_file(str(tmp_path / "joint" / "checkpoints" / "step-00000002" / "model.safetensors"))
    down = load_file(str(prefix) + "-down.safetensors")
    assert any(not torch.equal(tuned[f"down.{k}"], v) for k, v in down.items())
    assert "--codec jpeg --codec-quality 10-60 --codec-share 1 --codec-joint --codec-rate 0.05" in config.to_command()
    for bad, message in (({"codec": "webp", "codec_joint": True}, "needs --codec jpeg"),
                         ({"codec": "jpeg", "codec_rate": 0.1}, "add --codec-joint"),
                         ({"codec": "jpeg", "codec_joint": True, "codec_rate": -1.0}, ">= 0")):
        with pytest.raises(UsageError, match=message):
            train(TrainConfig(arch="dsn", scales=(2,), data=(str(data),), steps=1, out=str(tmp_path / "bad"), **bad))


def test_rate_term_lowers_the_thumbnails_bits(tmp_path: Path, single_torch_thread) -> None:
    """The rate term's gradient makes the downscaler's thumbnails cheaper to code (fixed batch, a few steps)."""
    from resizer.models.base import ResamplingPair
    from resizer.models.registry import create_model
    from resizer.ops import jpeg_approximation

    torch.manual_seed(0)
    pair = ResamplingPair(create_model("dsn-down", {"scale": 2, **TINY["down"]}),
                          create_model("dsn-up", {"scale": 2, **TINY["up"]}))
    hr = torch.from_numpy(synthetic_photo(48, 48)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        bits_before = float(jpeg_approximation(pair.down(hr, 2), [50])[1])
    optimizer = torch.optim.Adam(pair.down.parameters(), lr=1e-3)
    for _ in range(5):
        loss, terms = pair.codec_loss(hr, 2, "jpeg", [50], joint=True, rate=1.0)
        assert set(terms) == {"rate", "l1"}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert float(jpeg_approximation(pair.down(hr, 2), [50])[1]) < bits_before
    _, terms = pair.codec_loss(hr, 2, "webp", [50])  # the upscaler-only fine-tune works with every codec
    assert set(terms) == {"l1"}
    with pytest.raises(ValueError, match="jpeg only"):
        pair.codec_loss(hr, 2, "webp", [50], joint=True)
