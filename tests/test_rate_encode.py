"""``resizer encode --max-bytes N`` / ``--bpp B``: the budget, the choice, its metadata and ``decode``'s inverse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.color import luma
from resizer.image_io import EncodeOptions, Metadata, Picture, encode_picture, load_picture, save_picture, WRITE_FORMATS
from resizer.metrics import psnr
from resizer.methods import RunOptions
from resizer.pairing import read_pairing
from resizer.rate_encode import RateTarget, choose, encode_to_budget, highest_fitting_quality, prepare, candidates

from .conftest import synthetic_photo


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def images(folder: Path) -> dict[str, Path]:
    """A photo-like image, pure noise and a flat grey one, 48x64."""
    rng = np.random.default_rng(3)
    pixels = {"photo": synthetic_photo(48, 64, seed=1),
              "noisy": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
              "flat": np.full((48, 64, 3), 120, np.uint8)}
    paths = {}
    for name, array in pixels.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(array).save(paths[name])
    return paths


def encode(src: Path, out: Path, *budget: str):
    result = run("encode", str(src), "-o", str(out), "--json", *budget)
    return result, (json.loads(result.stdout.splitlines()[-1]) if result.stdout.strip() else None)


def luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(luma(a), luma(b))


def test_the_byte_budget_is_never_exceeded(tmp_path: Path, single_torch_thread) -> None:
    written = 0
    for name, src in images(tmp_path).items():
        for budget in (300, 400, 600, 1500, 9000):
            out = tmp_path / f"{name}_{budget}.jpg"
            result, record = encode(src, out, "--max-bytes", str(budget))
            if result.exit_code == 0:
                assert out.stat().st_size <= budget
                assert record["bytes"] == out.stat().st_size and record["budget"] == budget
                assert record["bpp"] == pytest.approx(8 * record["bytes"] / (48 * 64), abs=1e-4)
                written += 1
            else:  # only a budget below the smallest file may fail, and then nothing is written
                assert result.exit_code == 1 and f"{name}.png" in result.output and not out.exists()
                assert budget < 400
    assert 10 <= written < 15  # the 300-byte budget is below every file's header


def test_an_impossible_budget_is_one_error_line_naming_the_file_and_nothing_is_written(tmp_path: Path) -> None:
    src = images(tmp_path)["photo"]
    result, _ = encode(src, tmp_path / "out.jpg", "--max-bytes", "200")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("resizer: error")]
    assert len(lines) == 1 and "photo.png" in lines[0] and "200 bytes" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out.jpg").exists()
    assert not list(tmp_path.glob("*.part"))


def test_the_chosen_pair_is_recorded_and_decode_applies_it(tmp_path: Path, photo_rgb: np.ndarray,
                                                           single_torch_thread) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray(photo_rgb).save(src)
    result, record = encode(src, tmp_path / "small.jpg", "--bpp", "0.35")
    assert result.exit_code == 0, result.output
    assert record["pipeline"].startswith("dsn-x") and record["scale"] in (2, 3, 4)
    coded = load_picture(tmp_path / "small.jpg")
    assert coded.metadata.text["resizer:pipeline"] == record["pipeline"]
    pairing = read_pairing(coded.metadata.text)
    assert (pairing.method, pairing.scale, pairing.original_size) == ("dsn", record["scale"], (128, 96))
    assert record["output_size"] == [coded.width, coded.height]
    decoded = run("decode", str(tmp_path / "small.jpg"), "-o", str(tmp_path / "back.png"), "--json")
    assert decoded.exit_code == 0, decoded.output
    back = load_picture(tmp_path / "back.png")
    assert (back.width, back.height) == (128, 96)
    assert "resizer:pipeline" not in back.metadata.text and "resizer:method" not in back.metadata.text
    assert luma_psnr(photo_rgb, back.pixels) == pytest.approx(record["psnr"], abs=1e-3)  # what the encoder measured


def test_a_generous_budget_is_the_plain_codec_and_decode_keeps_its_pixels(tmp_path: Path, photo_rgb: np.ndarray,
                                                                         single_torch_thread) -> None:
    """WebP at full size is a plain WebP without any metadata (no XMP bytes), and decode keeps its pixels."""
    src = tmp_path / "photo.png"
    Image.fromarray(photo_rgb).save(src)
    result, record = encode(src, tmp_path / "big.webp", "--codec", "webp", "--bpp", "8")
    assert result.exit_code == 0, result.output
    assert (record["pipeline"], record["scale"], record["method"]) == ("plain", 1, None)
    assert record["quality"] >= 90 and record["output_size"] == [128, 96]
    coded = load_picture(tmp_path / "big.webp")
    assert coded.metadata.text == {} and coded.metadata.xmp is None
    assert (tmp_path / "big.webp").read_bytes() == encode_picture(Picture(photo_rgb), "webp", quality=record["quality"])
    decoded = run("decode", str(tmp_path / "big.webp"), "-o", str(tmp_path / "back.png"), "--json")
    assert decoded.exit_code == 0, decoded.output
    assert json.loads(decoded.stdout)["method"] == "none"
    back = load_picture(tmp_path / "back.png")
    assert np.array_equal(back.pixels, coded.pixels) and back.metadata.text == {}
    assert luma_psnr(photo_rgb, back.pixels) == pytest.approx(record["psnr"], abs=1e-3)


def test_jpeg_at_full_size_is_a_plain_jpeg_that_decode_restores(tmp_path: Path, photo_rgb: np.ndarray,
                                                                single_torch_thread) -> None:
    """The 'jpeg-restore' candidate: no resizer key at all; decode restores it (low quality) or keeps it (high)."""
    src = tmp_path / "photo.png"
    Image.fromarray(photo_rgb).save(src)
    for bpp, restored in (("0.6", True), ("6", False)):
        out = tmp_path / f"at{bpp}.jpg"
        target = RateTarget(bpp=float(bpp), scales=())
        choice = encode_to_budget(load_picture(src), target)
        out.write_bytes(choice.data)
        assert choice.pipeline == "jpeg-restore", choice.tried
        coded = load_picture(out)
        assert coded.metadata.text == {} and (coded.metadata.jpeg_quality or 0) == choice.quality
        decoded = run("decode", str(out), "-o", str(tmp_path / f"back{bpp}.png"), "--json")
        assert decoded.exit_code == 0, decoded.output
        back = load_picture(tmp_path / f"back{bpp}.png").pixels
        assert luma_psnr(photo_rgb, back) == pytest.approx(choice.psnr, abs=1e-3)  # the encoder measured decode
        assert np.array_equal(back, coded.pixels) is not restored
        if restored:
            assert choice.psnr > luma_psnr(photo_rgb, coded.pixels)  # restoration is what won
            assert choice.tried["jpeg-restore"]["psnr"] > choice.tried["codec"]["psnr"]


def test_bpp_is_max_bytes_at_the_image_size(tmp_path: Path, single_torch_thread) -> None:
    src = images(tmp_path)["photo"]
    _, by_rate = encode(src, tmp_path / "a.jpg", "--bpp", "1.5")
    _, by_bytes = encode(src, tmp_path / "b.jpg", "--max-bytes", str(math.floor(1.5 * 48 * 64 / 8)))
    assert by_rate["budget"] == by_bytes["budget"] == 576
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    assert {k: by_rate[k] for k in ("pipeline", "quality", "psnr")} == {k: by_bytes[k] for k in ("pipeline", "quality", "psnr")}


def test_budget_options_are_checked_before_any_file(tmp_path: Path) -> None:
    src = images(tmp_path)["photo"]
    for args in (("--max-bytes", "900", "--scale", "2"), ("--bpp", "1", "--quality", "50"),
                 ("--max-bytes", "0"), ("--bpp", "-1"), ("--max-bytes", "900", "--bpp", "1"),
                 ("--max-bytes", "900", "--method", "lanczos")):
        result = run("encode", str(src), "-o", str(tmp_path / "x.jpg"), *args)
        assert result.exit_code == 2, (args, result.output)
        assert not (tmp_path / "x.jpg").exists()


def test_bisection_only_returns_measured_fits_and_looks_past_a_non_monotone_step() -> None:
    sizes = {q: 10 * q for q in range(1, 101)}
    sizes[51] = 9999  # a spike: the bisection's first miss
    calls = []

    def encode(quality: int) -> bytes:
        calls.append(quality)
        return b"x" * sizes[quality]

    quality, data = highest_fitting_quality(encode, 530)
    assert quality == 53 and len(data) == 530  # found beyond the spike at 51
    assert len(set(calls)) < 20
    assert highest_fitting_quality(lambda q: b"x" * (100 + q), 50) is None
    assert highest_fitting_quality(lambda q: b"x" * q, 1000)[0] == 100
    for budget in range(5, 1000, 37):
        fit = highest_fitting_quality(encode, budget)
        assert fit is None or len(fit[1]) <= budget


@pytest.mark.parametrize("codec", ["webp", "avif"])
def test_webp_and_avif_stay_in_budget_and_decode(tmp_path: Path, codec: str, single_torch_thread) -> None:
    if {"webp": "webp", "avif": "avif"}[codec] not in WRITE_FORMATS:
        pytest.skip(f"{codec} not in this Pillow")
    src = images(tmp_path)["photo"]
    out = tmp_path / f"out.{codec}"
    result, record = encode(src, out, "--codec", codec, "--max-bytes", "1500")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size <= 1500 and record["codec"] == codec
    back = run("decode", str(out), "-o", str(tmp_path / "back.png"))
    assert back.exit_code == 0, back.output
    restored = load_picture(tmp_path / "back.png")
    assert (restored.width, restored.height) == (64, 48)
    assert luma_psnr(np.asarray(Image.open(src).convert("RGB")), restored.pixels) == pytest.approx(record["psnr"], abs=1e-3)


def test_jpeg_comment_carries_resizer_keys_in_few_bytes(tmp_path: Path) -> None:
    text = {"resizer:pipeline": "dsn-x2", "resizer:original_size": "64x48"}
    picture = Picture(synthetic_photo(24, 32), Metadata(text=text))
    compact = encode_picture(picture, "jpg", quality=50, options=EncodeOptions(compact_text=True))
    xmp = encode_picture(picture, "jpg", quality=50)
    assert len(xmp) - len(compact) > 150
    assert b"x:xmpmeta" not in compact and load_picture(compact).metadata.text == text
    assert load_picture(xmp).metadata.text == text
    with_foreign = Picture(picture.pixels, Metadata(text=text, xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                                                         b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                                                         b'</rdf:RDF></x:xmpmeta>'))
    kept = encode_picture(with_foreign, "jpg", quality=50, options=EncodeOptions(compact_text=True))
    assert b"x:xmpmeta" in kept and load_picture(kept).metadata.text == text  # one home for both: the XMP
    save_picture(Picture(picture.pixels), tmp_path / "c.jpg")
    plain = Image.open(tmp_path / "c.jpg")
    plain.save(tmp_path / "d.jpg", comment=b"made with love")
    assert load_picture(tmp_path / "d.jpg").metadata.text == {}  # a foreign comment is no resizer key


def test_quality_on_set5_beats_plain_jpeg_at_the_same_budget(datasets: Path, single_torch_thread) -> None:
    """Crops of Set5 at 0.4 bpp: never below the best plain JPEG that fits the same budget, better on average."""
    run_options = RunOptions()
    pipelines = candidates(RateTarget(bpp=0.4), run_options)
    gains = []
    for path in sorted((datasets / "bench" / "set5").glob("*.png"))[:3]:
        original = load_picture(path)
        original = Picture(np.ascontiguousarray(original.pixels[:192, :192]))
        target = RateTarget(bpp=0.4)
        choice = choose(original, prepare(original, pipelines, run_options), target, run=run_options)
        assert len(choice.data) <= target.budget(192, 192)
        plain = highest_fitting_quality(lambda q: encode_picture(original, "jpg", quality=q), target.budget(192, 192))
        plain_psnr = luma_psnr(original.pixels, load_picture(plain[1]).pixels)
        gains.append(choice.psnr - plain_psnr)
    assert min(gains) >= -0.05 and np.mean(gains) > 0.5, gains


def test_encode_to_budget_api(photo_rgb: np.ndarray, single_torch_thread) -> None:
    choice = encode_to_budget(Picture(photo_rgb), RateTarget(max_bytes=2500), name="mine.png")
    assert len(choice.data) <= 2500 and set(choice.tried) >= {"codec", "dsn-x2"}
    assert choice.to_json()["pipeline"] == choice.pipeline
    with pytest.raises(Exception, match="mine.png: no file fits in 100 bytes"):
        encode_to_budget(Picture(photo_rgb), RateTarget(max_bytes=100), name="mine.png")


def test_eval_codec_reports_the_rate_targeted_encode_and_its_bjontegaard_summary(tmp_path: Path,
                                                                                 single_torch_thread) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(48, 52, seed=5 + i)).save(bench / f"{i}.png")
    result = run("eval", str(bench), "--scale", "2", "--codec", "jpeg", "--quality", "20,50,80", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    points = {(r["pipeline"], r["quality"]): r for r in records if not r.get("summary")}
    assert {p for p, _ in points} == {"plain", "bicubic", "dsn", "rate"}
    for quality in (20, 50, 80):
        rate, plain = points[("rate", quality)], points[("plain", quality)]
        for mine, theirs in zip(rate["per_image"], plain["per_image"]):
            assert mine["bpp"] <= theirs["bpp"]  # the plain file's bytes are the budget
        assert rate["psnr"] >= points[("dsn", quality)]["psnr"] - 0.3
    summaries = {(r["pipeline"], r["reference"]) for r in records if r.get("summary")}
    assert {("rate", "plain"), ("dsn", "plain"), ("rate", "bicubic")} <= summaries
    table = run("eval", str(bench), "--scale", "2", "--codec", "jpeg", "--quality", "20,80")
    assert table.exit_code == 0 and "rate-targeted (best of jpeg, dsn x2-x4, bicubic x2; each ± dejpeg)" in table.output


def test_a_paired_thumbnail_coded_at_full_size_decodes_as_coded(tmp_path: Path, photo_rgb: np.ndarray,
                                                                single_torch_thread) -> None:
    """A CAR/DSN thumbnail's pairing keys are not carried into a full-size file (decode would refuse it)."""
    src = tmp_path / "photo.png"
    Image.fromarray(photo_rgb).save(src)
    assert run("down", str(src), "--scale", "2", "-m", "car", "-o", str(tmp_path / "thumb.png")).exit_code == 0
    assert read_pairing(load_picture(tmp_path / "thumb.png").metadata.text) is not None
    result, record = encode(tmp_path / "thumb.png", tmp_path / "big.webp", "--codec", "webp", "--bpp", "8")
    assert result.exit_code == 0, result.output
    assert record["pipeline"] == "plain"
    assert load_picture(tmp_path / "big.webp").metadata.text == {}
    decoded = run("decode", str(tmp_path / "big.webp"), "-o", str(tmp_path / "back.png"), "--json")
    assert decoded.exit_code == 0, decoded.output
    assert json.loads(decoded.stdout)["method"] == "none"
