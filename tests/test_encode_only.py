"""Encode-only pairs (manifest ``"use": "encode"``): ``encode`` runs them, ``down``/``up --method`` never pick them.

Two tiny DSN x2 pairs are trained into one folder: ``dsn-x2`` (marked encode-only, as the
shipped one is) and ``dsn-x2-thumb`` (for viewing). Three manifests beside the same files
stand for three states of the product: ``old.json`` (before the mark: ``dsn-x2`` for
everything), ``encode.json`` (only the encode-only pair) and ``manifest.json`` (both).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.errors import ModelError, UsageError
from resizer.image_io import load_picture
from resizer.pairing import read_pairing
from resizer.training import TrainConfig
from resizer.weights import read_manifest, upsert_manifest_entry, validate_manifest

from .conftest import activate_manifest, synthetic_photo, train_on_one_thread

TINY = {"down": {"feats": 8}, "up": {"feats": 8, "growth": 4, "layers": 2, "blocks": 1}}


def _train(root: Path, export: str, seed: int, steps: int = 2) -> None:
    data = root / "data"
    train_on_one_thread(TrainConfig(arch="dsn", scales=(2,), data=(str(data),), steps=steps, batch=2, patch=32,
                                    model_config=TINY, out=str(root / f"run-{export}-{seed}"), export=export,
                                    manifest=str(root / "weights" / "manifest.json"), bench=(str(data),),
                                    device="cpu", seed=seed))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("encode-only")
    (root / "data").mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(64, 80, seed=i)).save(root / "data" / f"{i}.png")
    folder = root / "weights"
    manifest = folder / "manifest.json"
    _train(root, "dsn-x2", seed=1)
    shutil.copy(manifest, folder / "old.json")  # as shipped before: dsn-x2 serves every use
    for entry in read_manifest(manifest):
        upsert_manifest_entry(dataclasses.replace(entry, use="encode"), manifest_path=manifest)
    shutil.copy(manifest, folder / "encode.json")
    _train(root, "dsn-x2-thumb", seed=2)  # a new, visible pair beside it
    return folder


def _photo(tmp_path: Path, name: str = "photo.png") -> Path:
    src = tmp_path / name
    Image.fromarray(synthetic_photo(48, 60, seed=9)).save(src)
    return src


def run(*args: str):
    return CliRunner().invoke(app, [*args, "--precision", "fp32"])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_down_and_up_refuse_an_encode_only_pair_in_one_line(weights: Path, tmp_path: Path, monkeypatch,
                                                            single_torch_thread) -> None:
    activate_manifest(monkeypatch, weights / "encode.json")
    src = _photo(tmp_path)
    for direction in ("down", "up"):
        out = tmp_path / f"{direction}.png"
        result = run(direction, str(src), "--method", "dsn", "--scale", "2", "-o", str(out))
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        assert "encode-only pair at x2 ('dsn-x2'" in result.output and "resizer encode" in result.output
        assert not out.exists()
    assert "use 'resizer encode --method dsn'" in run("down", str(src), "-m", "dsn", "-s", "2").output
    import resizer

    with pytest.raises(UsageError, match="encode-only"):
        resizer.resize(synthetic_photo(32, 40), scale=0.5, method="dsn")


def test_encode_and_decode_still_use_the_encode_only_pair(weights: Path, tmp_path: Path, monkeypatch,
                                                          single_torch_thread) -> None:
    activate_manifest(monkeypatch, weights / "encode.json")
    src = _photo(tmp_path)
    encoded = run("encode", str(src), "--scale", "2", "--quality", "90", "-o", str(tmp_path / "e.jpg"))
    assert encoded.exit_code == 0, encoded.output
    pairing = read_pairing(load_picture(tmp_path / "e.jpg").metadata.text)
    assert (pairing.method, pairing.model) == ("dsn", "dsn-x2-down")
    decoded = run("decode", str(tmp_path / "e.jpg"), "-o", str(tmp_path / "d.png"))
    assert decoded.exit_code == 0, decoded.output
    assert _pixels(tmp_path / "d.png").shape == (48, 60, 3)

    from resizer.methods import RunOptions
    from resizer.rate_encode import LearnedPair, RateTarget, candidates

    searched = candidates(RateTarget(max_bytes=2000), RunOptions(use="encode"))
    assert [c.name for c in searched if isinstance(c, LearnedPair)] == ["dsn-x2"]
    budget = run("encode", str(src), "--max-bytes", "1500", "-o", str(tmp_path / "r.jpg"), "--json")
    assert budget.exit_code == 0, budget.output
    assert json.loads(budget.output)["bytes"] <= 1500


def test_a_visible_pair_is_what_down_picks_and_encode_keeps_its_own(weights: Path, tmp_path: Path, monkeypatch,
                                                                    single_torch_thread) -> None:
    activate_manifest(monkeypatch, weights / "manifest.json")
    src = _photo(tmp_path)
    down = run("down", str(src), "--method", "dsn", "--scale", "2", "-o", str(tmp_path / "t.png"))
    assert down.exit_code == 0, down.output
    assert read_pairing(load_picture(tmp_path / "t.png").metadata.text).model == "dsn-x2-thumb-down"
    assert run("encode", str(src), "--scale", "2", "-o", str(tmp_path / "e.jpg")).exit_code == 0
    assert read_pairing(load_picture(tmp_path / "e.jpg").metadata.text).model == "dsn-x2-down"
    for made in ("t.png", "e.jpg"):
        assert run("decode", str(tmp_path / made), "-o", str(tmp_path / f"{made}.png")).exit_code == 0
    assert run("up", str(src), "--method", "dsn", "--scale", "2", "-o", str(tmp_path / "u.png")).exit_code == 0


def test_old_thumbnails_restore_with_the_weights_that_made_them(weights: Path, tmp_path: Path, monkeypatch,
                                                                single_torch_thread) -> None:
    src = _photo(tmp_path)
    activate_manifest(monkeypatch, weights / "old.json")  # 'down --method dsn --scale 2' as it was
    assert run("down", str(src), "--method", "dsn", "--scale", "2", "-o", str(tmp_path / "old.png")).exit_code == 0
    assert read_pairing(load_picture(tmp_path / "old.png").metadata.text).model == "dsn-x2-down"
    activate_manifest(monkeypatch, weights / "encode.json")  # the one x2 pair there is the one that made it
    assert run("up", str(tmp_path / "old.png"), "-o", str(tmp_path / "alone.png")).exit_code == 0
    activate_manifest(monkeypatch, weights / "manifest.json")  # now beside a visible pair
    for command in ("up", "decode"):
        restored = run(command, str(tmp_path / "old.png"), "-o", str(tmp_path / f"{command}.png"))
        assert restored.exit_code == 0, restored.output
        assert np.array_equal(_pixels(tmp_path / f"{command}.png"), _pixels(tmp_path / "alone.png"))
    other = run("up", str(tmp_path / "old.png"), "--method", "dsn", "--scale", "2", "-o", str(tmp_path / "other.png"),
                "--weights", str(weights / "dsn-x2-thumb-up.safetensors"))
    assert other.exit_code == 0, other.output
    assert not np.array_equal(_pixels(tmp_path / "other.png"), _pixels(tmp_path / "alone.png"))  # it could fail


def test_eval_scores_an_encode_only_pair_with_use_encode(weights: Path, monkeypatch, single_torch_thread) -> None:
    activate_manifest(monkeypatch, weights / "encode.json")
    data = str(weights.parent / "data")
    refused = run("eval", data, "--down", "dsn", "--up", "dsn", "--scale", "2")
    assert refused.exit_code == 2 and "encode-only" in refused.output
    scored = run("eval", data, "--down", "dsn", "--up", "dsn", "--scale", "2", "--use", "encode", "--json")
    assert scored.exit_code == 0, scored.output
    recorded = {e.name: e for e in read_manifest(weights / "encode.json")}["dsn-x2-up"].scores
    assert json.loads(scored.output.splitlines()[0])["psnr"] == pytest.approx(recorded["data"]["x2"]["psnr"], abs=0.01)
    assert run("eval", data, "--scale", "2", "--use", "thumbnail").exit_code == 2


def test_models_list_and_info_show_each_entry_s_use(weights: Path, monkeypatch) -> None:
    activate_manifest(monkeypatch, weights / "manifest.json")
    rows = [json.loads(line) for line in CliRunner().invoke(app, ["models", "list", "--json"]).output.splitlines()]
    assert {r["name"]: r["use"] for r in rows} == {"dsn-x2-down": "encode", "dsn-x2-up": "encode",
                                                   "dsn-x2-thumb-down": "view", "dsn-x2-thumb-up": "view"}
    table = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "200"}).output
    assert "USE" in table and any("dsn-x2-down" in line and " encode " in line for line in table.splitlines())
    info = CliRunner().invoke(app, ["models", "info", "dsn-x2-up", "--json"]).output
    assert json.loads(info)["use"] == "encode"
    assert "only 'resizer encode' picks this pair" in CliRunner().invoke(app, ["models", "info", "dsn-x2-up"]).output


def test_a_re_export_keeps_the_pair_encode_only(weights: Path, tmp_path: Path) -> None:
    root = tmp_path / "again"
    shutil.copytree(weights.parent / "data", root / "data")
    (root / "weights").mkdir()
    for entry in read_manifest(weights / "encode.json"):
        shutil.copy(weights / entry.file, root / "weights" / entry.file)
    shutil.copy(weights / "encode.json", root / "weights" / "manifest.json")
    _train(root, "dsn-x2", seed=3, steps=1)
    entries = read_manifest(root / "weights" / "manifest.json")
    assert {e.name: e.use for e in entries} == {"dsn-x2-down": "encode", "dsn-x2-up": "encode"}
    assert all(e.scores for e in entries)  # scored as 'encode' runs it, not refused


def test_the_manifest_refuses_an_unknown_use(weights: Path) -> None:
    data = [e.to_dict() for e in read_manifest(weights / "encode.json")]
    assert all(d["use"] == "encode" for d in data)
    assert "use" not in read_manifest(weights / "old.json")[0].to_dict()  # a view entry keeps its old shape
    with pytest.raises(ModelError, match="'use' must be one of view, encode"):
        validate_manifest([{**data[0], "use": "thumbnail"}])
