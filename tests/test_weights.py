"""Weights: safetensors round trip, refusals, the manifest, and the shipped package."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from resizer import weights as w
from resizer.errors import ModelError, UsageError
from resizer.models import create_model, get_architecture, register_architecture

REPO = Path(__file__).resolve().parents[1]
ARCH = "test-weights-tiny"
FAMILY = "test-weights"


@register_architecture(ARCH, family=FAMILY, task="up", channels=4)
class TinyNet(nn.Module):
    """Bilinear upscaling plus a two-conv residual: enough tensors to mismatch."""

    color = "rgb"
    halo = 2

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        return x + self.tail(torch.relu(self.head(x)))


@register_architecture("test-weights-other", family="test-weights-other", task="up", channels=4)
class OtherNet(TinyNet):
    pass


def tiny(channels: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(ARCH, {"channels": channels})


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    w.save_weights(tiny(seed=1), path, arch=ARCH, config={"channels": 4}, scales=[2.0])
    return path


def entry_dict(**changes: object) -> dict:
    base = {
        "name": "tiny-x2",
        "arch": ARCH,
        "family": FAMILY,
        "task": "up",
        "config": {"channels": 4},
        "scales": [2.0],
        "file": "tiny-x2.safetensors",
        "sha256": "a" * 64,
        "size": 1234,
        "params": 250,
        "license": "MIT",
        "recipe": {
            "data": "DIV2K train 800",
            "steps": 1000,
            "batch": 16,
            "patch": 48,
            "schedule": "adam 1e-4, cosine",
            "seed": 0,
            "hardware": "2-core CPU",
            "wall_time_s": 12.5,
            "command": "resizer train tiny --scale 2",
        },
        "scores": {"set5": {"x2": {"psnr": 33.1, "ssim": 0.91}}},
        "source": "bundled",
        "hub_repo": None,
        "hub_revision": None,
    }
    base.update(changes)
    return base


# --------------------------------------------------------------------------- round trip


def test_save_then_load_gives_equal_tensors(saved: Path) -> None:
    sha, size = w.save_weights(tiny(seed=1), saved, arch=ARCH, config={"channels": 4}, scales=[2.0])
    assert (sha, size) == (w.sha256_file(saved), saved.stat().st_size)
    meta = w.read_safetensors_metadata(saved)
    assert meta["format"] == "resizer" and meta["arch"] == ARCH and json.loads(meta["config"]) == {"channels": 4}

    source, fresh = tiny(seed=1), tiny(seed=2)
    assert not torch.equal(source.head.weight, fresh.head.weight)
    loaded = w.load_weights_into(fresh, saved)
    assert loaded is fresh
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.rand(1, 3, 5, 6)
    assert torch.equal(source(x, 2), loaded(x, 2))


def test_load_by_arch_name_uses_the_config_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wide.safetensors"
    w.save_weights(tiny(channels=6), path, arch=ARCH, config={"channels": 6})
    model = w.load_weights_into(ARCH, path)
    assert isinstance(model, TinyNet) and model.head.weight.shape[0] == 6
    with pytest.raises(ModelError, match="not 'test-weights-other'"):
        w.load_weights_into("test-weights-other", path)


# --------------------------------------------------------------------------- refusals


def refused(path: Path, *fragments: str, **kwargs: object) -> str:
    with pytest.raises(ModelError) as info:
        w.load_weights_into(tiny(), path, **kwargs)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return message


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"this is not a model at all\n" * 50)
    refused(path, "not a safetensors file")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    refused(empty, "not a safetensors file")
    refused(tmp_path / "absent.safetensors", "no such")


def test_truncated_file_is_refused(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 20):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        refused(path, "truncated")


class _Trap:
    """Unpickling this would create the marker file: proof that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_checkpoints_are_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    state = tiny().state_dict()
    zipped = tmp_path / "model.pt"
    torch.save({"state": state, "trap": _Trap(marker)}, zipped)
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    bare = tmp_path / "bare.safetensors"  # the extension does not matter, the bytes do
    bare.write_bytes(pickle.dumps(_Trap(marker)))
    for path in (zipped, legacy, bare):
        refused(path, "looks like a pickled PyTorch checkpoint", "only loads safetensors")
        with pytest.raises(ModelError, match="pickled"):
            w.load(FAMILY, 2, weights=str(path))
    assert not marker.exists()


def test_wrong_keys_are_named(tmp_path: Path) -> None:
    state = {k.replace("head.", "stem."): v for k, v in tiny().state_dict().items()}
    path = tmp_path / "renamed.safetensors"
    save_file(state, path)
    refused(path, "missing 'head.bias', 'head.weight'", "unexpected 'stem.bias', 'stem.weight'")


def test_wrong_shapes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "wide.safetensors"
    w.save_weights(tiny(channels=8), path, arch=ARCH, config={"channels": 8})
    refused(path, "tensor 'head.weight' has shape [8, 3, 3, 3]", "expects [4, 3, 3, 3]")


def test_sha256_mismatch_is_refused(saved: Path) -> None:
    refused(saved, "sha256", "does not match", expected_sha256="0" * 64)
    assert w.load_weights_into(tiny(), saved, expected_sha256=w.sha256_file(saved))


# --------------------------------------------------------------------------- manifest


def test_valid_entry_round_trips() -> None:
    [entry] = w.validate_manifest([entry_dict()])
    assert entry.name == "tiny-x2" and entry.scales == [2.0] and entry.recipe["steps"] == 1000
    assert entry.to_dict() == entry_dict()
    assert w.WeightsEntry.from_dict(entry.to_dict()) == entry
    assert entry.serves(2.0000001) and not entry.serves(2.001)
    assert entry.repo == os.environ.get("RESIZER_HUB_REPO", w.DEFAULT_HUB_REPO) and entry.revision == "main"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"sha256": None}, "'sha256' must be a string"),
        ({"sha256": "abc"}, "'sha256' must be 64"),
        ({"size": "12"}, "'size' must be an integer"),
        ({"params": True}, "'params' must be an integer"),
        ({"task": "sideways"}, "'task' must be one of"),
        ({"source": "ftp"}, "'source' must be one of"),
        ({"scales": [0]}, "'scales' must be positive"),
        ({"scales": [2, 2.0]}, "duplicates"),
        ({"file": "../x.safetensors"}, "relative path"),
        ({"file": "sub/x.safetensors"}, "bare file name"),
        ({"file": "x.pth"}, "must end in .safetensors"),
        ({"name": "Tiny X2"}, "'name'"),
        ({"sha": "a" * 64}, "unknown key(s) 'sha'"),
        ({"recipe": {"data": "x"}}, "'recipe' is missing 'steps'"),
        ({"scores": {"set5": {"3": {"psnr": 1}}}}, "must look like 'x3'"),
        ({"scores": {"set5": {"x3": {"psnr": "high"}}}}, "metric names to numbers"),
        ({"config": {"f": float("nan")}}, "JSON values"),
    ],
)
def test_invalid_entries_are_refused(changes: dict, fragment: str) -> None:
    with pytest.raises(ModelError) as info:
        w.validate_manifest([entry_dict(**changes)], source="m.json")
    assert "m.json: entry 0" in str(info.value) and fragment in str(info.value)


def test_missing_keys_and_duplicates_are_refused() -> None:
    data = entry_dict()
    del data["recipe"], data["license"]
    with pytest.raises(ModelError, match="missing key 'license'; missing key 'recipe'"):
        w.validate_manifest([data])
    with pytest.raises(ModelError, match="listed twice"):
        w.validate_manifest([entry_dict(), entry_dict()])
    with pytest.raises(ModelError, match="JSON list"):
        w.validate_manifest({"entries": []})


def test_read_manifest_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('[{"name": "x",]')
    with pytest.raises(ModelError, match=r"manifest.json: not valid JSON \(line 1"):
        w.read_manifest(path)
    with pytest.raises(ModelError, match="not found"):
        w.read_manifest(tmp_path / "absent.json")


def test_upsert_replaces_by_name_sorts_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "zoo" / "manifest.json"
    w.upsert_manifest_entry(w.WeightsEntry.from_dict(entry_dict(name="b")), path)
    w.upsert_manifest_entry(w.WeightsEntry.from_dict(entry_dict(name="a")), path)
    assert [e.name for e in w.read_manifest(path)] == ["a", "b"]
    w.upsert_manifest_entry(w.WeightsEntry.from_dict(entry_dict(name="a", license="CC-BY-4.0")), path)
    entries = w.read_manifest(path)
    assert [(e.name, e.license) for e in entries] == [("a", "CC-BY-4.0"), ("b", "MIT")]
    text = path.read_text()
    assert text.endswith("]\n") and json.loads(text)[0]["name"] == "a"
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]  # no temp files left

    bad = w.WeightsEntry.from_dict(entry_dict(name="c"))
    object.__setattr__(bad, "sha256", "nope")
    with pytest.raises(ModelError, match="sha256"):
        w.upsert_manifest_entry(bad, path)
    assert path.read_text() == text


def test_find_entry_matches_scales() -> None:
    entries = w.validate_manifest(
        [
            entry_dict(name="t-x2", scales=[2]),
            entry_dict(name="t-x3", scales=[3, 4]),
            entry_dict(name="t-down", task="down", scales=[2]),
            entry_dict(name="any", family="anyscale", scales=[]),
        ]
    )
    assert w.find_entry(FAMILY, 3, entries=entries).name == "t-x3"
    assert w.find_entry(FAMILY, 4.0000004, entries=entries).name == "t-x3"
    assert w.find_entry(FAMILY, 2, task="down", entries=entries).name == "t-down"
    assert w.find_entry("anyscale", 1.37, entries=entries).name == "any"
    with pytest.raises(UsageError) as info:
        w.find_entry(FAMILY, 2.5, entries=entries)
    assert "x2, x3, x4" in str(info.value) and "x2.5" in str(info.value)
    with pytest.raises(ModelError, match="no pretrained weights for method 'nothing'"):
        w.find_entry("nothing", 2, entries=entries)
    with pytest.raises(UsageError, match="available: t-x2, t-x3, t-down, any"):
        w.get_entry("nope", entries)


# --------------------------------------------------------------------------- load


def test_load_from_a_manifest_with_bundled_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "tiny-x2.safetensors"
    model = tiny(seed=3)
    sha, size = w.save_weights(model, file, arch=ARCH, config={"channels": 4})
    entry = w.WeightsEntry.from_dict(entry_dict(sha256=sha, size=size, params=w.count_parameters(model)))
    manifest = w.upsert_manifest_entry(entry, tmp_path / "manifest.json")
    monkeypatch.setenv("RESIZER_MANIFEST", str(manifest))
    w.clear_model_cache()

    loaded = w.load(FAMILY, 2)
    got = loaded.entry
    assert got == entry and not loaded.model.training
    assert torch.equal(loaded.model.head.weight, model.head.weight)
    assert (loaded.name, loaded.source, loaded.path) == ("tiny-x2", "bundled", file)
    assert (loaded.family, loaded.task, loaded.arch, loaded.scale) == (FAMILY, "up", ARCH, 2)
    assert w.load(FAMILY, 2).model is loaded.model  # cached
    assert w.model_location(entry) == "bundled"
    assert w.pull_weights("tiny-x2").status == "bundled"

    w.save_weights(tiny(seed=4), file, arch=ARCH, config={"channels": 4})  # the file changes under us
    with pytest.raises(ModelError) as info:
        w.load(FAMILY, 2)
    assert str(file) in str(info.value) and "sha256" in str(info.value)


def test_load_with_user_weights(saved: Path, tmp_path: Path) -> None:
    w.clear_model_cache()
    loaded = w.load(FAMILY, 2, weights=str(saved))
    model, entry = loaded.model, loaded.entry
    assert entry is None and isinstance(model, TinyNet) and not model.training
    assert (loaded.name, loaded.source, loaded.path) == ("tiny.safetensors", "file", saved)
    assert (loaded.family, loaded.task, loaded.arch, loaded.scale) == (FAMILY, "up", ARCH, 2)
    assert torch.equal(model.head.weight, tiny(seed=1).head.weight)
    assert w.load(FAMILY, 2, weights=str(saved)).model is model
    assert w.load(FAMILY, 2, weights=str(saved), device="auto").model is not None
    with pytest.raises(UsageError, match="unknown device 'gpu0'"):
        w.load(FAMILY, 2, weights=str(saved), device="gpu0")

    with pytest.raises(ModelError, match="not of method 'srcnn'"):
        w.load("srcnn", 2, weights=str(saved))
    with pytest.raises(UsageError, match="trained for x2, not x3"):
        w.load(FAMILY, 3, weights=str(saved))

    bare = tmp_path / "bare.safetensors"
    save_file(tiny().state_dict(), bare)
    with pytest.raises(ModelError, match="no resizer metadata"):
        w.load(FAMILY, 2, weights=str(bare))
    with pytest.raises(ModelError, match="hf://OWNER/REPO"):
        w.load(FAMILY, 2, weights=str(tmp_path / "absent.safetensors"))


def test_load_refuses_a_file_of_another_family_or_direction(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    w.save_weights(create_model("test-weights-other"), other, arch="test-weights-other", config={"channels": 4})
    with pytest.raises(ModelError) as info:
        w.load(FAMILY, 2, weights=str(other))
    message = str(info.value)
    assert str(other) in message and "architecture 'test-weights-other'" in message
    assert "upscaling method 'test-weights-other'" in message and "not of method 'test-weights'" in message
    assert w.load("test-weights-other", 2, weights=str(other)).name == "other.safetensors"
    with pytest.raises(ModelError, match="not of method 'test-weights-other'"):
        w.load("test-weights-other", 2, weights=str(other), task="down")


def test_load_of_a_shipped_entry_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESIZER_MANIFEST", raising=False)
    loaded = w.load("srcnn", 3)
    assert (loaded.name, loaded.source, loaded.entry.name) == ("srcnn-x3", "bundled", "srcnn-x3")
    assert loaded.path == w.bundled_dir() / "srcnn-x3.safetensors" and loaded.arch == loaded.entry.arch
    image = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        assert loaded.model(image, 3).shape[-2:] == (27, 33)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("hf://o/r/f.safetensors", ("o/r", "f.safetensors", "main")),
        ("hf://o/r/dir/f.safetensors@v2", ("o/r", "dir/f.safetensors", "v2")),
        ("hf://o/r/f.safetensors@refs/pr/1", ("o/r", "f.safetensors", "refs/pr/1")),
        ("hf://o/r/a@b/f.safetensors", ("o/r", "a@b/f.safetensors", "main")),
        ("hf://o/f.safetensors", None),
        ("hf://o/r/f.pt", None),
        ("hf://o//f.safetensors", None),
        ("hf://o/r/f.safetensors@", None),
    ],
)
def test_hub_reference_syntax(spec: str, expected: tuple[str, str, str] | None) -> None:
    if expected is None:
        with pytest.raises(UsageError, match="hf://OWNER/REPO/FILE.safetensors"):
            w.parse_hub_reference(spec)
    else:
        assert w.parse_hub_reference(spec) == expected


# --------------------------------------------------------------------------- what ships


def test_bundled_manifest_entries_match_their_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESIZER_MANIFEST", raising=False)
    folder = w.bundled_dir()
    path = folder / "manifest.json"
    assert path == w.manifest_path()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    entries = w.read_manifest()
    assert [e.name for e in entries] == sorted(e.name for e in entries) == [d["name"] for d in data]
    listed = {e.file for e in entries if e.source == "bundled"}
    assert {p.name for p in folder.glob("*.safetensors")} <= listed | {e.file for e in entries}, "unlisted files ship"
    for entry in entries:
        file = folder / entry.file
        if entry.source == "hub" and not file.exists():
            continue  # checked against the hub by test_hub
        assert file.is_file(), f"{entry.name}: {file} missing"
        assert file.stat().st_size == entry.size, entry.name
        assert w.sha256_file(file) == entry.sha256, entry.name
        arch = get_architecture(entry.arch)
        assert (arch.family, arch.task) == (entry.family, entry.task), entry.name
        model = w.load_weights_into(entry.arch, file, entry.config, expected_sha256=entry.sha256)
        assert w.count_parameters(model) == entry.params, entry.name
        assert w.model_location(entry) == "bundled"
        for scale in entry.scales:
            assert w.find_entry(entry.family, scale, task=entry.task).serves(scale)


def _copy_source(dest: Path) -> None:
    """The files a source distribution would hold, without caches or build leftovers."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")
    for name in ("resizer", "weights", "man"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)


_PIP_OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once from a copy of the source (no network, no build isolation)."""
    root = tmp_path_factory.mktemp("wheel")
    _copy_source(root / "src")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(root / "dist"), str(root / "src")],
        capture_output=True, text=True, env={**os.environ, **_PIP_OFFLINE}, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = (root / "dist").glob("resizer-*.whl")
    return wheel


def test_installed_package_brings_its_man_pages_for_man(built_wheel: Path, tmp_path: Path) -> None:
    """``pip install`` puts the pages in <prefix>/share/man/man1, where man(1) looks beside <prefix>/bin."""
    prefix = tmp_path / "venv"
    own_script = Path(sys.executable).with_name("resizer")
    had_script = own_script.exists()
    # --ignore-installed: without it pip first uninstalls this environment's own resizer
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", "--prefix", str(prefix),
         str(built_wheel)],
        capture_output=True, text=True, env={**os.environ, **_PIP_OFFLINE}, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert own_script.exists() == had_script, "installing into a prefix removed the running environment's resizer"
    pages = {p.name for p in (prefix / "share" / "man" / "man1").glob("*.1")}
    assert pages == {p.name for p in (REPO / "man").glob("*.1")}
    assert (prefix / "bin" / "resizer").is_file()
    if shutil.which("man") is None:
        pytest.skip("man(1) is not installed here; the pages are in place")
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for page in ("resizer", "resizer-eval"):
        found = subprocess.run(["man", "-w", page], capture_output=True, text=True, env=env, timeout=60)
        assert found.returncode == 0, found.stderr
        assert Path(found.stdout.strip()).resolve() == (prefix / "share" / "man" / "man1" / f"{page}.1").resolve()


def test_wheel_ships_the_manifest_and_bundled_weights_and_works_offline(built_wheel: Path, tmp_path: Path) -> None:
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "resizer/weights/__init__.py" in names and "resizer/bundled_weights/manifest.json" in names
    assert not any(n.startswith("resizer/weights/") and not n.endswith(".py") for n in names), (
        "the bundled data must not share the name of the weights code package"
    )
    packages = {p.parent.relative_to(REPO).as_posix() for p in (REPO / "resizer").rglob("__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= names, "a code package is missing from pyproject.toml"
    bundled = [e for e in w.read_manifest(w.bundled_dir() / "manifest.json") if e.source == "bundled"]
    for entry in bundled:
        assert f"resizer/bundled_weights/{entry.file}" in names, entry.name

    # Run the installed layout (an unpacked wheel) with no site-packages processing, so the
    # editable install of the checkout cannot leak in; the hub is off.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = """
import json, sys
from importlib import resources
import resizer.weights as w
out = {"module": w.__file__, "dir": str(w.bundled_dir()), "entries": [],
       "resources": str(resources.files("resizer.bundled_weights") / "manifest.json")}
for e in w.read_manifest():
    if e.source == "bundled":
        path = w.resolve_weights_file(e)
        model = w.load_weights_into(e.arch, path, e.config, expected_sha256=e.sha256)
        out["entries"].append([e.name, str(path), w.count_parameters(model) == e.params])
print(json.dumps(out))
"""
    purelib = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESIZER_", "PYTHON"))}
    env.update(PYTHONPATH=os.pathsep.join([str(site), purelib]), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    run = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["module"] == str(site / "resizer" / "weights" / "__init__.py")
    assert out["dir"] == str(site / "resizer" / "bundled_weights")
    assert out["resources"] == str(site / "resizer" / "bundled_weights" / "manifest.json")
    assert [name for name, _, _ in out["entries"]] == [e.name for e in bundled]
    for name, path, params_ok in out["entries"]:
        assert path.startswith(str(site)) and params_ok, name
