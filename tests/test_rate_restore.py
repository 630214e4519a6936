"""``encode --max-bytes`` candidates that restore before upscaling, smaller JPEG scans, and plain WebP/AVIF files.

Each new pipeline is coded here, written, and decoded through the real CLI: ``decode`` must apply
exactly what the keys say (restoration, then the upscaler), files without the new key must
decode as before, and a full-size WebP/AVIF without any metadata decodes as decoded.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.color import luma
from resizer.image_io import WRITE_FORMATS, EncodeOptions, Picture, encode_picture, load_picture
from resizer.methods import ResizeRequest, RunOptions, get_method
from resizer.metrics import psnr
from resizer.pairing import RESTORE_KEY, read_pairing
from resizer.rate_encode import (BicubicThumbnail, LearnedPair, RateTarget, candidates, choose, decoded_result,
                                 encode_to_budget, prepare)
from resizer.restoration import DECODE_ENSEMBLE, restore_picture

COMPACT = EncodeOptions(compact_text=True)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def decode(path: Path, out: Path, *options: str) -> tuple[np.ndarray, dict]:
    result = run("decode", str(path), "-o", str(out), "--json", *options)
    assert result.exit_code == 0, result.output
    return load_picture(out).pixels, json.loads(result.stdout.splitlines()[-1])


def upscaled(thumbnail: Picture, method: str, size: tuple[int, int]) -> np.ndarray:
    """``method`` enlarging ``thumbnail`` to ``size`` directly (no pairing, no restoration)."""
    bare = dataclasses.replace(thumbnail.metadata, text={}, jpeg_quality=None)
    picture = Picture(thumbnail.pixels, metadata=bare)
    # as 'encode' runs a pair (DSN x2 is encode-only: 'up --method dsn' would refuse it)
    return get_method(method).resize(picture, ResizeRequest("up", size, 2.0), RunOptions(use="encode")).pixels


def test_jpeg_candidates_include_the_restored_pipelines_and_webp_has_a_plain_one(single_torch_thread) -> None:
    jpeg = [c.name for c in candidates(RateTarget(bpp=0.5), RunOptions())]
    assert jpeg[:2] == ["codec", "jpeg-restore"]
    assert {"dsn-x2", "dejpeg-dsn-x2", "dsn-x3", "dejpeg-dsn-x3", "dejpeg-asdn-x2"} <= set(jpeg)
    webp = [c.name for c in candidates(RateTarget(bpp=0.5, codec="webp", format="webp"), RunOptions())]
    assert webp[0] == "plain" and "codec" not in webp and not any("dejpeg" in n for n in webp)


def test_a_restored_pair_decodes_with_restoration_first_and_without_the_key_as_before(
        tmp_path: Path, photo_rgb: np.ndarray, single_torch_thread) -> None:
    original = Picture(photo_rgb)
    restored_pair, plain_pair = prepare(original, [LearnedPair("dsn", 2, "dejpeg"), LearnedPair("dsn", 2)],
                                        RunOptions())
    assert restored_pair.coded.metadata.text[RESTORE_KEY] == "dejpeg"
    assert restored_pair.coded.metadata.text["resizer:pipeline"] == "dejpeg-dsn-x2"
    assert RESTORE_KEY not in plain_pair.coded.metadata.text
    assert np.array_equal(restored_pair.coded.pixels, plain_pair.coded.pixels)  # one downscale, two labels
    for entry, name in ((restored_pair, "restored.jpg"), (plain_pair, "old.jpg")):
        (tmp_path / name).write_bytes(encode_picture(entry.coded, "jpg", quality=25, options=COMPACT))
    thumbnail = load_picture(tmp_path / "restored.jpg")
    back, row = decode(tmp_path / "restored.jpg", tmp_path / "restored.png")
    expected = upscaled(restore_picture(thumbnail, ensemble=DECODE_ENSEMBLE), "dsn", (128, 96))
    assert np.array_equal(back, expected)
    assert row["restore"] == {"method": "dejpeg", "quality": 25, "reason": "recorded by encode",
                              "passes": DECODE_ENSEMBLE}
    assert RESTORE_KEY not in load_picture(tmp_path / "restored.png").metadata.text
    # a file without the key (every file made before it existed): the upscaler on the decoded thumbnail, as before
    old, old_row = decode(tmp_path / "old.jpg", tmp_path / "old.png")
    assert np.array_equal(old, upscaled(load_picture(tmp_path / "old.jpg"), "dsn", (128, 96)))
    assert "restore" not in old_row and not np.array_equal(old, back)


def test_the_bicubic_thumbnail_decodes_as_restoration_then_asdn(tmp_path: Path, photo_rgb: np.ndarray,
                                                                single_torch_thread) -> None:
    original = Picture(photo_rgb)
    coded = BicubicThumbnail(2, "asdn", "dejpeg").coded(original, RunOptions())
    assert (coded.width, coded.height) == (64, 48)
    pairing = read_pairing(coded.metadata.text)
    assert (pairing.method, pairing.scale, pairing.original_size) == ("asdn", 2.0, (128, 96))
    assert "resizer:model" not in coded.metadata.text and "resizer:version" not in coded.metadata.text  # unread: bytes
    (tmp_path / "bic.jpg").write_bytes(encode_picture(coded, "jpg", quality=30, options=COMPACT))
    back, row = decode(tmp_path / "bic.jpg", tmp_path / "bic.png")
    assert row["method"] == "asdn" and row["restore"]["method"] == "dejpeg"
    assert np.array_equal(back, upscaled(restore_picture(load_picture(tmp_path / "bic.jpg"), ensemble=DECODE_ENSEMBLE), "asdn", (128, 96)))
    assert psnr(luma(photo_rgb), luma(back)) > 24  # a real picture came back


def test_a_malformed_restore_key_is_one_error_line_naming_the_file(tmp_path: Path, photo_rgb: np.ndarray,
                                                                   single_torch_thread) -> None:
    coded = LearnedPair("dsn", 2, "dejpeg").coded(Picture(photo_rgb), RunOptions())
    for value in ("lanczos", "../x"):
        coded.metadata = dataclasses.replace(coded.metadata, text={**coded.metadata.text, RESTORE_KEY: value})
        path = tmp_path / f"bad{len(value)}.jpg"
        path.write_bytes(encode_picture(coded, "jpg", quality=40, options=COMPACT))
        result = run("decode", str(path), "-o", str(tmp_path / "out.png"))
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if "error" in line]
        assert len(lines) == 1 and path.name in lines[0] and "restor" in lines[0] and "Traceback" not in result.output
        assert not (tmp_path / "out.png").exists()


def test_the_budget_holds_and_decode_matches_the_encoder_for_every_restored_choice(
        tmp_path: Path, photo_rgb: np.ndarray, single_torch_thread) -> None:
    original = Picture(photo_rgb)
    target = RateTarget(bpp=0.2)
    prepared = prepare(original, candidates(target, RunOptions()), RunOptions())
    seen = set()
    for bpp in (0.35, 0.5, 0.7, 1.0):
        choice = choose(original, prepared, dataclasses.replace(target, bpp=bpp))
        assert len(choice.data) <= choice.budget
        for name, tried in choice.tried.items():
            assert tried["bytes"] <= choice.budget
        path = tmp_path / f"at{bpp}.jpg"
        path.write_bytes(choice.data)
        back, _ = decode(path, tmp_path / f"at{bpp}.png")
        assert psnr(luma(photo_rgb), luma(back)) == pytest.approx(choice.psnr, abs=1e-3)
        assert {"dejpeg-dsn-x2", "dejpeg-asdn-x2"} <= set(choice.tried) or bpp < 0.7
    for entry in prepared:  # every restored candidate's own file, measured by the encoder, decodes to that PSNR
        if entry.candidate.name.startswith("dejpeg-") and entry.candidate.name in choice.tried:
            tried = choice.tried[entry.candidate.name]
            path = tmp_path / f"{entry.candidate.name}.jpg"
            path.write_bytes(entry.encodings[tried["quality"]])
            back, row = decode(path, tmp_path / f"{entry.candidate.name}.png")
            assert row["restore"]["reason"] == "recorded by encode" and row["restore"]["passes"] == DECODE_ENSEMBLE
            assert np.array_equal(back, decoded_result(path.read_bytes(), RunOptions()).pixels)
            one_pass = decoded_result(path.read_bytes(), RunOptions(restore_passes=1)).pixels  # the ranking score
            assert psnr(luma(photo_rgb), luma(one_pass)) == pytest.approx(tried["psnr"], abs=1e-3)
            seen.add(entry.candidate.name)
    assert {"dejpeg-dsn-x2", "dejpeg-asdn-x2"} <= seen


def test_progressive_scans_are_kept_only_when_smaller_and_give_the_same_pixels(photo_rgb: np.ndarray,
                                                                               single_torch_thread) -> None:
    original = Picture(photo_rgb)
    target = RateTarget(bpp=2.0, scales=())
    with_scans = choose(original, prepare(original, candidates(target, RunOptions()), RunOptions()), target)
    baseline_only = choose(original, prepare(original, candidates(target, RunOptions()), RunOptions()), target,
                           smaller_scans=False)
    assert with_scans.quality >= baseline_only.quality
    same_quality = encode_picture(Picture(photo_rgb), "jpg", quality=with_scans.quality)
    assert len(with_scans.data) <= len(same_quality)
    assert np.array_equal(load_picture(with_scans.data).pixels, load_picture(same_quality).pixels)
    progressive = encode_picture(Picture(photo_rgb), "jpg", quality=90, options=EncodeOptions(progressive=True))
    assert np.array_equal(load_picture(progressive).pixels,
                          load_picture(encode_picture(Picture(photo_rgb), "jpg", quality=90)).pixels)


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_a_plain_webp_or_avif_decodes_as_decoded(tmp_path: Path, photo_rgb: np.ndarray, fmt: str) -> None:
    if fmt not in WRITE_FORMATS:
        pytest.skip(f"no {fmt} writer")
    path = tmp_path / f"plain.{fmt}"
    with Image.fromarray(photo_rgb) as image:
        image.save(path, quality=40)  # made without resizer
    back, row = decode(path, tmp_path / "back.png")
    assert row["method"] == "none"
    assert np.array_equal(back, load_picture(path).pixels)


@pytest.mark.parametrize("codec", ["webp", "avif"])
def test_a_full_size_webp_or_avif_choice_carries_no_metadata(tmp_path: Path, photo_rgb: np.ndarray, codec: str,
                                                             single_torch_thread) -> None:
    if codec not in WRITE_FORMATS:
        pytest.skip(f"no {codec} writer")
    choice = encode_to_budget(Picture(photo_rgb), RateTarget(bpp=3.0, codec=codec, format=codec, scales=()))
    assert choice.pipeline == "plain"
    assert choice.data == encode_picture(Picture(photo_rgb), codec, quality=choice.quality)  # not one byte of XMP
    (tmp_path / f"out.{codec}").write_bytes(choice.data)
    back, _ = decode(tmp_path / f"out.{codec}", tmp_path / "back.png")
    assert psnr(luma(photo_rgb), luma(back)) == pytest.approx(choice.psnr, abs=1e-3)


def test_the_restoration_ensemble_undoes_each_flip_and_beats_one_pass_on_a_photo(photo_rgb: np.ndarray,
                                                                                 single_torch_thread) -> None:
    decoded = load_picture(encode_picture(Picture(photo_rgb[:90, :124]), "jpg", quality=20))  # odd block grid
    one = restore_picture(decoded)
    eight = restore_picture(decoded, ensemble=8)
    assert eight.pixels.shape == one.pixels.shape and eight.metadata.jpeg_quality is None
    assert 0 < np.abs(eight.pixels.astype(int) - one.pixels.astype(int)).mean() < 2  # the same picture, not a shifted one
    reference = luma(photo_rgb[:90, :124])
    assert psnr(reference, luma(eight.pixels)) > psnr(reference, luma(one.pixels))
    with pytest.raises(ValueError):
        restore_picture(decoded, ensemble=3)


def test_decode_of_a_plain_jpeg_restores_in_one_pass_unless_an_ensemble_is_asked(
        tmp_path: Path, photo_rgb: np.ndarray, single_torch_thread) -> None:
    path = tmp_path / "plain.jpg"
    path.write_bytes(encode_picture(Picture(photo_rgb), "jpg", quality=30))
    back, row = decode(path, tmp_path / "back.png")
    assert DECODE_ENSEMBLE == 1 and row["method"] == "dejpeg" and row["restore"]["passes"] == 1
    assert np.array_equal(back, restore_picture(load_picture(path)).pixels)
    eight, row = decode(path, tmp_path / "eight.png", "--ensemble", "8")
    assert row["restore"]["passes"] == 8
    assert np.array_equal(eight, restore_picture(load_picture(path), ensemble=8).pixels)
    assert not np.array_equal(eight, back)
    refused = run("decode", str(path), "-o", str(tmp_path / "three.png"), "--ensemble", "3")
    assert refused.exit_code == 2 and "--ensemble is 1, 2, 4 or 8" in refused.output
    assert not (tmp_path / "three.png").exists()
