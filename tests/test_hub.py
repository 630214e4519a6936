"""Hub downloads against a real local HTTP server that answers like the Hugging Face hub.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, at import, so every
download runs in a fresh Python process with the environment set, as a user's would.
The server answers ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` the way the hub does
for a small non-LFS file (ETag, X-Repo-Commit, Content-Length; X-Error-Code on 404s) and
404 to everything else (huggingface_hub also asks for ``/api/agent-harnesses``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import pytest
import torch

from resizer import weights as w

REPO = "test-owner/weights"  # the default repo, via RESIZER_HUB_REPO
OTHER_REPO = "other-owner/zoo"  # named by one entry itself
FILE = "nets/hubnet-x2.safetensors"

# Registered in each subprocess that builds models (the test process registers nothing here).
HUBNET = '''
import torch
from torch import nn
from resizer.models import register_architecture

@register_architecture("hubnet", family="hubnet", task="up", channels=3)
class HubNet(nn.Module):
    color = "rgb"
    halo = 1

    def __init__(self, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)

    def forward(self, x, scale):
        return self.conv(nn.functional.interpolate(x, scale_factor=scale))
'''


class FakeHub:
    """Files per (repo, revision); every request is logged."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.failing: int | None = None  # answer every request with this HTTP status (a hub that is down)

    def add(self, repo: str, revision: str, path: str, data: bytes) -> None:
        self.repos.setdefault(repo, {}).setdefault(revision, {})[path] = data

    @staticmethod
    def commit(repo: str, revision: str) -> str:
        return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()

    def resolves(self) -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.requests if "/resolve/" in r[1]]


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _serve(self, head: bool) -> None:
            with hub.lock:
                hub.requests.append((self.command, self.path))
            if hub.failing is not None:
                return self._send(hub.failing, {"Content-Type": "text/plain"}, b"down", head)
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
            if len(parts) < 5 or parts[2] != "resolve":
                return self._send(404, {"Content-Type": "text/plain"}, b"not found", head)
            repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            revisions = hub.repos.get(repo)
            if revisions is None:
                return self._send(404, {"X-Error-Code": "RepoNotFound"}, b"", head)
            name = revision if revision in revisions else None
            name = name or next((r for r in revisions if hub.commit(repo, r) == revision), None)
            if name is None:
                return self._send(404, {"X-Error-Code": "RevisionNotFound"}, b"", head)
            commit = hub.commit(repo, name)
            data = revisions[name].get(filename)
            if data is None:
                return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"", head)
            headers = {
                "X-Repo-Commit": commit,
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "Content-Length": str(len(data)),
                "Content-Type": "application/octet-stream",
            }
            self._send(200, headers, data, head)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(head=True)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(head=False)

    return Handler


def weights_bytes(tmp: Path, seed: int) -> bytes:
    """A real resizer safetensors file for the hubnet architecture (3 channels)."""
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Module()
    model.conv = nn.Conv2d(3, 3, 3, padding=1)
    path = tmp / f"seed{seed}.safetensors"
    w.save_weights(model, path, arch="hubnet", config={"channels": 3}, scales=[2.0])
    return path.read_bytes()


def entry(name: str, data: bytes, **changes: object) -> dict:
    base = {
        "name": name,
        "arch": "hubnet",
        "family": "hubnet",
        "task": "up",
        "config": {"channels": 3},
        "scales": [2.0],
        "file": FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "params": 84,
        "license": "MIT",
        "recipe": {
            "data": "synthetic",
            "steps": 1,
            "batch": 1,
            "patch": 8,
            "schedule": "none",
            "seed": 0,
            "hardware": "none",
            "wall_time_s": 0.0,
            "command": "test",
        },
        "scores": {},
        "source": "hub",
        "hub_repo": None,
        "hub_revision": "v1",
    }
    base.update(changes)
    return base


class Env:
    """Everything one test needs: server, content, manifest, and a way to run Python/CLI in it."""

    def __init__(self, tmp: Path, hub: FakeHub, endpoint: str) -> None:
        self.tmp, self.hub, self.endpoint = tmp, hub, endpoint
        self.v1, self.v2, self.main = (weights_bytes(tmp, seed) for seed in (1, 2, 3))
        hub.add(REPO, "v1", FILE, self.v1)
        hub.add(REPO, "v2", FILE, self.v2)
        hub.add(REPO, "main", FILE, self.main)
        hub.add(OTHER_REPO, "v2", FILE, self.v2)
        zoo = tmp / "zoo"
        zoo.mkdir()
        (zoo / "hubnet-local.safetensors").write_bytes(self.main)
        entries = [
            entry("hubnet-v1", self.v1),
            entry("hubnet-v2", self.v2, scales=[3.0], hub_repo=OTHER_REPO, hub_revision="v2"),
            entry("hubnet-bad", self.v2, scales=[4.0]),  # the v1 file with the v2 hash
            entry("hubnet-local", self.main, scales=[8.0], source="bundled", file="hubnet-local.safetensors"),
        ]
        self.manifest = zoo / "manifest.json"
        self.manifest.write_text(json.dumps(entries, indent=2))
        (tmp / "hubnet.py").write_text(HUBNET)
        self.hf_home = tmp / "hf"

    def environ(self, offline: bool = False, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "RESIZER_"))}
        env = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_HOME=str(self.hf_home),
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_XET="1",
            NO_PROXY="127.0.0.1",
            no_proxy="127.0.0.1",
            RESIZER_MANIFEST=str(self.manifest),
            RESIZER_HUB_REPO=REPO,
            PYTHONPATH=os.pathsep.join(filter(None, [str(self.tmp), os.environ.get("PYTHONPATH")])),
            NO_COLOR="1",
        )
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        env.update(extra)
        return env

    def python(self, code: str, offline: bool = False, **extra: str) -> dict:
        """Run ``code`` (which sets ``out``) in a fresh interpreter; return ``out`` or the ModelError."""
        wrapped = (
            "import json\nfrom resizer import weights as w\nfrom resizer.errors import ResizerError\n"
            "out = {}\ntry:\n" + "".join(f"    {line}\n" for line in code.strip().splitlines())
            + "except ResizerError as exc:\n    out = {'error': str(exc), 'type': type(exc).__name__}\n"
            "print(json.dumps(out))\n"
        )  # fmt: skip
        run = subprocess.run(
            [sys.executable, "-c", wrapped], capture_output=True, text=True, env=self.environ(offline, **extra),
            cwd=self.tmp, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout.strip().splitlines()[-1])

    def cli(self, *args: str, offline: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "resizer", "models", *args], capture_output=True, text=True,
            env=self.environ(offline), cwd=self.tmp, timeout=120,
        )  # fmt: skip

    def snapshot(self, repo: str, revision: str) -> Path:
        folder = "models--" + repo.replace("/", "--")
        return self.hf_home / "hub" / folder / "snapshots" / self.hub.commit(repo, revision) / FILE


@pytest.fixture()
def hub() -> Iterator[tuple[FakeHub, str]]:
    state = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def env(tmp_path: Path, hub: tuple[FakeHub, str]) -> Env:
    return Env(tmp_path, *hub)


ONLINE = """
entry = w.get_entry("hubnet-v1")
before = w.model_location(entry)
out = {"before": before, "path": str(w.resolve_weights_file(entry)), "after": w.model_location(entry),
       "ref": str(w.resolve_user_weights("hf://test-owner/weights/nets/hubnet-x2.safetensors@v2"))}
"""

OFFLINE = """
import hubnet
loaded = w.load("hubnet", 2)
model, entry = loaded.model, loaded.entry
user = w.load("hubnet", 2, weights="hf://test-owner/weights/nets/hubnet-x2.safetensors@v2")
out = {"entry": entry.name, "path": str(w.resolve_weights_file(entry)), "training": model.training,
       "sum": float(model.conv.weight.sum()), "user": user.entry, "user_sum": float(user.model.conv.weight.sum()),
       "loaded": [loaded.name, loaded.source, str(loaded.path)], "user_loaded": [user.name, user.source, str(user.path)]}
"""


def conv_sum(data: bytes) -> float:
    from safetensors.torch import load

    return float(load(data)["conv.weight"].sum())


def test_download_lands_in_the_cache_and_works_offline_afterwards(env: Env) -> None:
    online = env.python(ONLINE)
    expected = env.snapshot(REPO, "v1")
    assert (online["before"], online["after"]) == ("remote", "cached")
    assert online["path"] == str(expected) and expected.read_bytes() == env.v1
    assert online["ref"] == str(env.snapshot(REPO, "v2"))
    assert ("GET", f"/{REPO}/resolve/v1/{FILE}") in env.hub.resolves()
    assert ("GET", f"/{REPO}/resolve/v2/{FILE}") in env.hub.resolves()

    before = len(env.hub.requests)
    offline = env.python(OFFLINE, offline=True)
    assert len(env.hub.requests) == before, "offline mode must not touch the network"
    assert offline["entry"] == "hubnet-v1" and offline["path"] == str(expected) and offline["training"] is False
    assert offline["sum"] == pytest.approx(conv_sum(env.v1))
    assert offline["user"] is None and offline["user_sum"] == pytest.approx(conv_sum(env.v2))
    assert offline["loaded"] == ["hubnet-v1", "hub", str(expected)]
    assert offline["user_loaded"] == ["hubnet-x2.safetensors@v2", "hub", str(env.snapshot(REPO, "v2"))]


def test_not_cached_and_unreachable_is_a_clear_error(env: Env) -> None:
    out = env.python("w.resolve_weights_file(w.get_entry('hubnet-v1'))", offline=True)
    assert out["type"] == "ModelError"
    assert "HF_HUB_OFFLINE" in out["error"]
    assert 'run "resizer models pull hubnet-v1" while online, or pass --weights FILE' in out["error"]
    assert env.hub.requests == []

    # Online, but the endpoint is not a hub (a dead port would do too, after ~20 s of retries).
    out = env.python("w.resolve_weights_file(w.get_entry('hubnet-v1'))", HF_ENDPOINT=env.endpoint + "/not-a-hub")
    assert out["type"] == "ModelError"
    assert "could not be fetched from" in out["error"] and "/not-a-hub" in out["error"]
    assert "resizer models pull hubnet-v1" in out["error"]


def test_revisions_and_repos_are_honoured(env: Env) -> None:
    out = env.python(
        """
out["v1"] = str(w.resolve_weights_file(w.get_entry("hubnet-v1")))
out["v2"] = str(w.resolve_weights_file(w.get_entry("hubnet-v2")))
out["ref_v2"] = str(w.resolve_user_weights("hf://test-owner/weights/nets/hubnet-x2.safetensors@v2"))
out["ref_main"] = str(w.resolve_user_weights("hf://test-owner/weights/nets/hubnet-x2.safetensors"))
"""
    )
    assert Path(out["v1"]).read_bytes() == env.v1
    assert out["v2"] == str(env.snapshot(OTHER_REPO, "v2")) and Path(out["v2"]).read_bytes() == env.v2
    assert out["ref_v2"] == str(env.snapshot(REPO, "v2")) and Path(out["ref_v2"]).read_bytes() == env.v2
    assert Path(out["ref_main"]).read_bytes() == env.main
    assert len({env.v1, env.v2, env.main}) == 3

    missing = env.python("w.resolve_user_weights('hf://test-owner/weights/nets/hubnet-x2.safetensors@v9')")
    assert "revision 'v9' not found" in missing["error"]
    missing = env.python("w.resolve_user_weights('hf://nobody/nothing/x.safetensors')")
    assert "repository 'nobody/nothing' not found" in missing["error"]


def test_sha256_mismatch_is_refused_and_the_cache_is_left_alone(env: Env) -> None:
    out = env.python("w.resolve_weights_file(w.get_entry('hubnet-bad'))")
    assert out["type"] == "ModelError"
    assert "hubnet-bad" in out["error"] and "sha256" in out["error"] and "refusing" in out["error"]
    assert env.snapshot(REPO, "v1").read_bytes() == env.v1  # downloaded, kept, not used


def test_models_cli_pull_list_info(env: Env) -> None:
    def locations() -> dict[str, str]:
        run = env.cli("list", "--json")
        assert run.returncode == 0, run.stderr
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        assert all(len(r["sha256"]) == 64 for r in rows)
        return {r["name"]: r["location"] for r in rows}

    everything_remote = {"hubnet-bad": "remote", "hubnet-local": "bundled", "hubnet-v1": "remote", "hubnet-v2": "remote"}
    assert locations() == everything_remote

    offline = env.cli("pull", "hubnet-v1", offline=True)
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    assert offline.stderr.startswith("resizer: error: ") and "resizer models pull hubnet-v1" in offline.stderr

    pulled = env.cli("pull", "hubnet-v1")
    assert pulled.returncode == 0, pulled.stderr
    assert "hubnet-v1: downloaded and verified" in pulled.stdout
    assert locations()["hubnet-v1"] == "cached"

    again = env.cli("pull", "hubnet-v1", "hubnet-local", "--json")
    assert again.returncode == 0, again.stderr
    statuses = {r["name"]: r["status"] for r in map(json.loads, again.stdout.splitlines())}
    assert statuses == {"hubnet-v1": "cached", "hubnet-local": "bundled"}

    info = env.cli("info", "hubnet-v1", "--json")
    data = json.loads(info.stdout)
    assert data["location"] == "cached" and data["recipe"]["command"] == "test" and data["hub_revision"] == "v1"
    text = env.cli("info", "hubnet-v1")
    assert text.returncode == 0 and "test-owner/weights@v1" in text.stdout and "cached" in text.stdout

    bad = env.cli("pull", "hubnet-bad", "hubnet-v2")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.count("resizer: error:") == 1 and "sha256" in bad.stderr
    assert "hubnet-v2: downloaded and verified" in bad.stdout  # the good one still came
    assert locations() == {**everything_remote, "hubnet-v1": "cached", "hubnet-v2": "cached"}  # bad: hash differs

    unknown = env.cli("pull", "nope")
    assert unknown.returncode == 2 and "unknown weights 'nope'" in unknown.stderr


def test_man_page_spells_every_option_of_the_cli() -> None:
    import typer.main

    from resizer.cli.models_cmd import models_app

    page = (Path(__file__).resolve().parents[1] / "man" / "resizer-models.1").read_text(encoding="utf-8")
    page = page.replace("\\-", "-")
    group = typer.main.get_command(models_app)
    assert sorted(group.commands) == ["import", "info", "list", "pull", "remove"]
    for name, command in group.commands.items():
        assert f"resizer models {name}" in page.replace("\\fR", "").replace("\\fB", "").replace(".B ", ""), name
        for param in command.params:
            for option in param.opts + param.secondary_opts:
                if option.startswith("-"):
                    assert option in page, f"{name} {option} is not in man/resizer-models.1"


def _batch(env: Env, tmp: Path, endpoint: str | None = None,
           reference: str = f"hf://{REPO}/{FILE}") -> subprocess.CompletedProcess[str]:
    """``resizer up`` of three images with a hub ``--weights`` that was never cached."""
    from PIL import Image

    inputs = []
    for i in range(3):
        inputs.append(str(tmp / f"in{i}.png"))
        Image.new("RGB", (8, 6), (40 * i, 90, 200)).save(inputs[-1])
    environ = env.environ(**({"HF_ENDPOINT": endpoint} if endpoint else {}))
    return subprocess.run(
        [sys.executable, "-m", "resizer", "up", *inputs, "--scale", "2", "-o", str(tmp / "out"),
         "--weights", reference], capture_output=True, text=True, env=environ, cwd=env.tmp, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("down", ["503", "refused"])
def test_an_unreachable_hub_fails_once_for_the_whole_batch(env: Env, tmp_path: Path, down: str) -> None:
    endpoint = None
    if down == "503":
        env.hub.failing = 503
    else:
        import socket

        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    run = _batch(env, tmp_path, endpoint)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"{REPO}/{FILE}@main" in lines[0] and ("unreachable" in lines[0] or "HTTP 503" in lines[0])
    assert "Retry" not in run.stderr and "Traceback" not in run.stderr
    if down == "503":
        assert len(env.hub.resolves()) == 1  # one request for three inputs: no retries, none per file
    assert not (tmp_path / "out").exists()


def test_a_hub_weights_file_is_fetched_once_for_the_whole_batch(env: Env, tmp_path: Path) -> None:
    """Reachable: three inputs share one download; resizer's own file names its method (vdsr)."""
    vdsr = (w.bundled_dir() / "vdsr.safetensors").read_bytes()
    env.hub.add(REPO, "main", "nets/vdsr.safetensors", vdsr)
    run = _batch(env, tmp_path, reference=f"hf://{REPO}/nets/vdsr.safetensors")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in0.png", "in1.png", "in2.png"]
    assert len([r for r in env.hub.resolves() if r[0] == "GET"]) == 1


def test_a_hub_that_is_down_is_asked_once_per_process(env: Env) -> None:
    """Manifest entries too: the second lookup repeats the first one's error without a request."""
    env.hub.failing = 503
    out = env.python("""
errors = []
for _ in range(3):
    try:
        w.resolve_weights_file(w.get_entry("hubnet-v1"))
    except ResizerError as exc:
        errors.append(str(exc))
out = {"errors": errors}
""")
    assert len(out["errors"]) == 3 and len(set(out["errors"])) == 1
    assert "HTTP 503" in out["errors"][0] and "resizer models pull hubnet-v1" in out["errors"][0]
    assert len(env.hub.resolves()) == 1
