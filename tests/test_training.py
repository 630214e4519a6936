"""Training: a real (tiny) run lowers the loss, resume is exact, export writes weights + manifest."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.errors import UsageError
from resizer.training import (
    PatchSampler,
    TrainConfig,
    learning_rate,
    load_training_images,
    make_lr,
    train,
)

from .conftest import REPO, synthetic_photo

TINY = {"channels": [8, 4], "kernels": [3, 3, 3]}  # an SRCNN small enough for a few seconds


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A training folder of 3 generated photos and a bench folder of 2 more (one grey)."""
    data, bench = tmp_path / "data", tmp_path / "bench"
    data.mkdir()
    bench.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_photo(72, 88, seed=i)).save(data / f"img{i}.png")
    Image.fromarray(synthetic_photo(48, 60, seed=10)).save(bench / "a.png")
    Image.fromarray(synthetic_photo(45, 51, seed=11)[:, :, 1]).save(bench / "grey.png")
    return data, bench


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(arch="srcnn", scales=(3,), data=(str(data),), steps=30, batch=4, patch=24, lr=3e-3,
                seed=1, out=str(out), model_config=TINY, checkpoint_every=0, log_every=10)
    base.update(kw)
    return TrainConfig(**base)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    latest = json.loads((run_dir / "latest.json").read_text())
    return load_file(str(run_dir / "checkpoints" / latest["checkpoint"] / "model.safetensors"))


def test_training_lowers_the_loss(folders, tmp_path):
    data, bench = folders
    result = train(_config(data, tmp_path / "run", steps=80, val=(str(bench),), val_every=40))
    losses = [h["loss"] for h in result.history if h["event"] == "step"]
    assert len(losses) == 8 and result.step == 80
    assert losses[-1] < 0.5 * losses[0], losses
    vals = [h for h in result.history if h["event"] == "val"]
    assert [v["step"] for v in vals] == [40, 80]
    assert np.isfinite(vals[-1]["psnr"]["bench/x3"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log == result.history


def test_resume_continues_exactly(folders, tmp_path):
    """Stopped by SIGTERM at step 10 and resumed == trained in one go (same seed)."""
    data, _ = folders
    train(_config(data, tmp_path / "whole"))

    def stop_at_10(event):
        if event["event"] == "step" and event["step"] == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    part = train(_config(data, tmp_path / "split", checkpoint_every=5), progress=stop_at_10)
    assert part.stopped and part.step == 10
    starts = []
    rest = train(_config(data, tmp_path / "split", resume=True),
                 progress=lambda e: starts.append(e["step"]) if e["event"] == "start" else None)
    assert starts == [10] and rest.step == 30 and not rest.stopped
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    state = json.loads((tmp_path / "split" / "checkpoints" / "step-00000030" / "state.json").read_text())
    assert state["step"] == 30 and state["optimizer"]["param_groups"]


def test_resume_refuses_a_different_trajectory(folders, tmp_path):
    data, _ = folders
    train(_config(data, tmp_path / "run", steps=5))
    with pytest.raises(UsageError, match="seed differs"):
        train(_config(data, tmp_path / "run", steps=10, seed=2, resume=True))
    with pytest.raises(UsageError, match="already has checkpoints"):
        train(_config(data, tmp_path / "run", steps=10))


def test_export_writes_weights_and_manifest_entry(folders, tmp_path):
    from resizer.weights import load_weights_into, read_manifest

    data, bench = folders
    manifest = tmp_path / "w" / "manifest.json"
    result = train(_config(data, tmp_path / "run", steps=20, export="tiny-srcnn", manifest=str(manifest),
                           bench=(str(bench),)))
    shipped = REPO / "weights"  # the bundled manifest and files are never touched by a test export
    assert not (shipped / "tiny-srcnn.safetensors").exists()
    assert "tiny-srcnn" not in ((shipped / "manifest.json").read_text() if (shipped / "manifest.json").exists() else "")
    path = tmp_path / "w" / "tiny-srcnn.safetensors"
    model = load_weights_into("srcnn", path)
    assert sum(p.numel() for p in model.parameters()) == result.export["params"]
    (entry,) = read_manifest(manifest)
    assert entry.name == "tiny-srcnn" and entry.arch == "srcnn" and entry.file == path.name
    assert entry.scales == [3.0] and entry.config["channels"] == [8, 4]
    recipe = entry.recipe
    assert recipe["data"] == "data" and recipe["steps"] == 20 and recipe["batch"] == 4 and recipe["seed"] == 1
    assert recipe["command"].startswith("resizer train srcnn --scale 3 --data ")
    assert "--loss l2" in recipe["command"] and "L2 loss" in recipe["schedule"]  # the default, said
    assert "--export tiny-srcnn" in recipe["command"] and recipe["hardware"] and recipe["wall_time_s"] > 0
    score = entry.scores["bench"]["x3"]
    assert 5 < score["psnr"] < 60 and 0 < score["ssim"] <= 1


def test_a_failed_export_keeps_the_file_the_manifest_describes(folders, tmp_path):
    from resizer.weights import read_manifest, sha256_file

    data, bench = folders
    manifest = tmp_path / "w" / "manifest.json"
    train(_config(data, tmp_path / "run", steps=2, export="tiny-srcnn", manifest=str(manifest), bench=(str(bench),)))
    (entry,) = read_manifest(manifest)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no images"):  # scoring fails after the new file was written
        train(_config(data, tmp_path / "run2", steps=3, export="tiny-srcnn", manifest=str(manifest),
                      bench=(str(empty),)))
    assert read_manifest(manifest) == [entry]
    assert sha256_file(tmp_path / "w" / "tiny-srcnn.safetensors") == entry.sha256


def test_a_run_from_a_shipped_file_continues_its_recipe(folders, tmp_path):
    from resizer.weights import read_manifest

    data, bench = folders
    manifest = tmp_path / "w" / "manifest.json"
    train(_config(data, tmp_path / "run", steps=4, export="tiny-srcnn", manifest=str(manifest), bench=(str(bench),)))
    (first,) = read_manifest(manifest)
    train(_config(data, tmp_path / "run2", steps=3, lr=1e-3, export="tiny-srcnn", manifest=str(manifest),
                  bench=(str(bench),), init=str(tmp_path / "w" / "tiny-srcnn.safetensors")))
    (second,) = read_manifest(manifest)
    assert second.recipe["steps"] == 7
    assert second.recipe["command"].startswith(first.recipe["command"] + " && resizer train srcnn")
    assert "--init" in second.recipe["command"].split(" && ")[1]
    # The first command exports to the bundled weights/, so the second starts from there.
    assert "--init weights/tiny-srcnn.safetensors" in second.recipe["command"]
    assert str(tmp_path / "w") not in second.recipe["command"]
    assert second.recipe["wall_time_s"] >= first.recipe["wall_time_s"]
    assert second.recipe["schedule"].startswith(first.recipe["schedule"] + "; then ")


def test_init_from_weights_file(folders, tmp_path):
    data, _ = folders
    manifest = tmp_path / "w" / "manifest.json"
    train(_config(data, tmp_path / "a", steps=10, export="a", manifest=str(manifest), bench=()))
    result = train(_config(data, tmp_path / "b", steps=0, init=str(tmp_path / "w" / "a.safetensors")))
    a = _weights(tmp_path / "a")
    b = _weights(tmp_path / "b")
    assert result.step == 0 and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UsageError, match="not a .safetensors"):
        train(_config(data, tmp_path / "c", init=str(tmp_path / "a" / "config.json")))


def test_patches_are_a_function_of_seed_and_step():
    images = [synthetic_photo(60, 70, seed=i) for i in range(2)]
    s1 = PatchSampler(images, 24, (2, 3, 4), 3, seed=5)
    s2 = PatchSampler(images, 24, (2, 3, 4), 3, seed=5)
    for step in (0, 7, 1000):
        (a, sa), (b, sb) = s1.batch_at(step), s2.batch_at(step)
        assert sa == sb and np.array_equal(a, b) and a.dtype == np.uint8
        assert a.shape[-1] == 24 - 24 % int(sa)
    assert {s1.batch_at(k)[1] for k in range(40)} == {2, 3, 4}  # one scale per batch, all used


def test_lr_images_are_quantised_matlab_bicubic():
    from resizer.ops import imresize

    hr = torch.rand(2, 1, 24, 24, dtype=torch.float64)
    lr = make_lr(hr, 3)
    assert lr.shape == (2, 1, 8, 8)
    assert torch.equal(lr * 255, torch.round(lr * 255))
    assert (lr - imresize(hr, scale=1 / 3)).abs().max() <= 0.5 / 255 + 1e-9


def test_schedules():
    c = TrainConfig(arch="srcnn", scales=(3,), data=("x",), steps=100, lr=1e-3, min_lr=0.01)
    assert learning_rate(c, 0) == pytest.approx(1e-3)
    assert learning_rate(c, 100) == pytest.approx(1e-5)
    assert learning_rate(c, 50) == pytest.approx(0.5 * (1e-3 + 1e-5))
    s = TrainConfig(arch="srcnn", scales=(3,), data=("x",), steps=100, schedule="step", decay_every=30, gamma=0.5)
    assert [learning_rate(s, k) for k in (0, 29, 30, 95)] == pytest.approx([1e-3, 1e-3, 5e-4, 1.25e-4])


def test_luma_for_y_models(folders):
    data, _ = folders
    (im, *_) = load_training_images([data], "y")
    assert im.shape[2] == 1 and im.dtype == np.uint8
    assert load_training_images([data], "rgb")[0].shape[2] == 3


runner = CliRunner()


def test_cli_end_to_end(folders, tmp_path):
    data, bench = folders
    out = tmp_path / "run"
    args = ["train", "srcnn", "--scale", "3", "--data", str(data), "--val", str(bench), "--steps", "12",
            "--batch", "2", "--patch", "24", "--log-every", "6", "--config", json.dumps(TINY),
            "--out", str(out), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done" and events[-1]["step"] == 12
    assert [e["step"] for e in events if e["event"] == "step"] == [6, 12]
    assert any(e["event"] == "val" for e in events)
    # --resume with more steps continues from 12
    res = runner.invoke(app, args[:-1] + ["--resume", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "latest.json").read_text())["step"] == 12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": "nosuchnet"}, "unknown architecture 'nosuchnet'"),
        ({"data": "EMPTY"}, "contains no images"),
        ({"data": "MISSING"}, "does not exist"),
        ({"scale": "1"}, "must be greater than 1"),
        ({"loss": "l3"}, "unknown loss"),
        ({"arch": "dsn", "scale": "2", "loss": "l1"}, "is a down/up pair trained on its joint objective"),
        ({"resume": True}, "no checkpoint"),
    ],
)
def test_cli_clear_errors(folders, tmp_path, change, message):
    data, _ = folders
    (tmp_path / "EMPTY").mkdir()
    folder = {"EMPTY": tmp_path / "EMPTY", "MISSING": tmp_path / "MISSING"}.get(change.get("data"), data)
    args = ["train", change.get("arch", "srcnn"), "--scale", change.get("scale", "3"), "--data", str(folder),
            "--steps", "3", "--batch", "2", "--patch", "24", "--loss", change.get("loss", "l2"),
            "--out", str(tmp_path / "run")]
    if change.get("resume"):
        args.append("--resume")
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output


def test_stop_at_and_a_changed_step_count_are_recorded(folders, tmp_path):
    """--stop-at ends a session cleanly; resuming with other --steps keeps a reproducible command."""
    data, _ = folders
    first = train(_config(data, tmp_path / "run", steps=20, stop_at=8))
    assert first.step == 8 and not first.stopped
    manifest = tmp_path / "w" / "manifest.json"
    last = train(_config(data, tmp_path / "run", steps=12, resume=True, export="seg", manifest=str(manifest), bench=()))
    assert last.step == 12
    command = last.export["recipe"]["command"]
    first_cmd, second_cmd = command.split(" && ")
    assert "--steps 20" in first_cmd and first_cmd.endswith("--stop-at 8") and "--export" not in first_cmd
    assert "--steps 12" in second_cmd and "--export seg" in second_cmd and second_cmd.endswith("--resume")


def test_recorded_command_uses_the_datasets_variable(tmp_path, monkeypatch):
    (tmp_path / "train" / "t91").mkdir(parents=True)
    monkeypatch.setenv("RESIZER_DATASETS", str(tmp_path))
    c = TrainConfig(arch="vdsr", scales=(2, 3), data=(str(tmp_path / "train" / "t91"), "/x y"), steps=5,
                    export="v")
    assert c.to_command().startswith(
        "resizer train vdsr --scale 2 --scale 3 --data \"$RESIZER_DATASETS/train/t91\" --data '/x y' --steps 5 ")
    assert c.to_command().endswith("--seed 0 --export v")


# --- the one options schema: TrainConfig, the CLI flags and the recipe command come from OPTIONS ---


def test_cli_flags_and_config_fields_are_generated_from_one_schema():
    import dataclasses

    import typer

    from resizer.training import OPTIONS, TRAJECTORY

    command = typer.main.get_command(app).commands["train"]
    cli = {p.name: p for p in command.params}
    assert [f.name for f in dataclasses.fields(TrainConfig)] == [o.name for o in OPTIONS]
    assert [o.param for o in OPTIONS if o.flag] == [name for name in cli if name not in ("json_out", "quiet", "debug")]
    for o in OPTIONS:
        if o.flag and not o.argument:
            assert cli[o.param].opts[0] == o.flag and cli[o.param].required == o.required
    assert set(TRAJECTORY) <= {o.name for o in OPTIONS} and "seed" in TRAJECTORY and "device" not in TRAJECTORY


@pytest.mark.parametrize("arch", ["srcnn", "car", "dsn"])
def test_a_config_survives_its_recorded_command(arch, tmp_path):
    """TrainConfig -> to_command -> parsed by `resizer train` -> the same TrainConfig."""
    import shlex

    import typer

    from resizer.training import config_from_cli

    pair = arch != "srcnn"
    config = TrainConfig(
        arch=arch, scales=(2,) if pair else (2, 3), data=(str(tmp_path / "a b"), str(tmp_path / "c")),
        val=(str(tmp_path / "v"),), eval_scales=() if pair else (2.5,), steps=123, batch=3, patch=40, lr=2e-4,
        loss=None if pair else "l1", schedule="step", decay_every=40, gamma=0.5, warmup=7, clip=0.5, seed=9,
        model_config={"up": {"feats": 8}} if pair else {"channels": [8, 4], "kernels": [3, 3, 3]},
        loss_weights={"offset": 0.002} if arch == "car" else {}, codec="jpeg" if arch == "dsn" else None,
        codec_joint=arch == "dsn", codec_rate=0.05 if arch == "dsn" else 0.0,
        init=str(tmp_path / "w" / "x.safetensors"), export="round-trip",
        **({"codec_quality": (10, 60), "codec_share": 0.25} if arch == "dsn" else {}))  # recorded with --codec only
    words = shlex.split(config.to_command())
    assert words[:2] == ["resizer", "train"]
    params = typer.main.get_command(app).commands["train"].make_context("train", words[2:]).params
    for name in ("json_out", "quiet", "debug"):
        params.pop(name)
    assert config_from_cli(params).to_json() == config.to_json()


def test_objective_is_chosen_once_from_the_family():
    from resizer.training.config import training_family
    from resizer.training.objectives import CodecObjective, JointObjective, PixelObjective, select_objective

    def chosen(**kw):
        c = TrainConfig(data=("x",), steps=1, **kw).normalized()
        return select_objective(c, training_family(c.arch))

    single, _ = chosen(arch="srcnn", scales=(3,), model_config=TINY)
    assert type(single) is PixelObjective and not single.family.is_pair
    pair, _ = chosen(arch="car", scales=(2,))
    assert type(pair) is JointObjective and pair.family.objective == "joint"
    codec, _ = chosen(arch="dsn", scales=(2,), codec="jpeg")
    assert type(codec) is CodecObjective
    alone, _ = chosen(arch="car-up", scales=(2,))  # one network of a pair, trained as a single network
    assert type(alone) is PixelObjective and alone.family.kind == "single" and alone.family.color == "rgb"
    _, per_scale = chosen(arch="dair", scales=(3,))
    assert per_scale.model_config == {"scale": 3}  # a per-scale family is built for the scale it trains
    with pytest.raises(UsageError, match="downscaler"):
        training_family("car-down")
    with pytest.raises(UsageError, match="not a single network"):
        chosen(arch="srcnn", scales=(3,), codec="jpeg")


@pytest.mark.parametrize("arch", ["srcnn", "car"])
def test_each_objective_gives_a_finite_loss_with_gradients(arch):
    from resizer.training.config import training_family
    from resizer.training.objectives import select_objective

    config = {"model_config": TINY} if arch == "srcnn" else {"model_config": {"up": {"feats": 8, "blocks": 1}}}
    c = TrainConfig(arch=arch, scales=(2,), data=("x",), steps=1, **config).normalized()
    objective, c = select_objective(c, training_family(c.arch))
    torch.manual_seed(0)
    model = objective.build()
    hr = torch.from_numpy(synthetic_photo(32, 32, seed=3).transpose(2, 0, 1)[None].copy()).float() / 255
    hr = hr[:, :1] if objective.family.color == "y" else hr
    loss, terms = objective(hr, 2.0, step=0)
    loss.backward()
    assert torch.isfinite(loss) and isinstance(terms, dict)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
