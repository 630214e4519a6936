"""``--ray``: the same batch on a real Ray cluster (issue 18).

One cluster for the whole module, started the way a user would (``ray start --head`` with
2 CPUs in a short temporary folder, in its own process group) and stopped at the end.
Skipped when Ray is not installed (``pip install "resizer[ray]"``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer import pipeline
from resizer.cli import app
from resizer.geometry import SizeSpec

from .conftest import REPO, synthetic_photo

if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (pip install 'resizer[ray]')", allow_module_level=True)

# Ray's token authentication, with a token of this test run (not the user's ~/.ray/auth_token); set
# before Ray is imported, for the head and for every driver (this process and its subprocesses).
_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
_SAVED = {name: os.environ.get(name) for name in _AUTH}
os.environ.update(_AUTH)
import ray  # noqa: E402,F401

from resizer.distributed import RayExecutor, _retried_job  # noqa: E402  (needs nothing of Ray to import)

TIMING = ("seconds",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster() -> str:
    """The address of a 2-CPU Ray head started for these tests."""
    temp = tempfile.mkdtemp(prefix="rzt-", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "OMP_WAIT_POLICY": "passive"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--num-cpus", "2", "--num-gpus", "0", "--port", str(port), "--temp-dir", temp,
                             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                             "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not _reachable(port):
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for signum, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):  # the whole group: head and workers
            try:
                os.killpg(head.pid, signum)
                head.wait(timeout=wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        shutil.rmtree(temp, ignore_errors=True)


def teardown_module() -> None:
    """The authentication variables as they were before this module set them."""
    for name, value in _SAVED.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def make_folder(folder: Path, count: int = 4, size: tuple[int, int] = (48, 40)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(synthetic_photo(size[1], size[0], seed=index)).save(folder / f"im{index}.png")
    return folder


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def without_timing(records: list[dict], out: Path) -> list[dict]:
    """``--json`` records without timings, output paths relative to ``out``."""
    found = []
    for record in records:
        row = {k: v for k, v in record.items() if k not in TIMING}
        row["output"] = row["output"] and os.path.relpath(row["output"], out)
        found.append(row)
    return found


def rows(stdout: str, out: Path) -> list[dict]:
    """The JSON lines of a run, without timings, output paths relative to ``out``."""
    return without_timing([json.loads(line) for line in stdout.splitlines() if line.startswith("{")], out)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- same outputs as a local run


def test_a_ray_run_writes_the_same_bytes_and_json_rows_as_a_local_run(tmp_path, cluster) -> None:
    folder = make_folder(tmp_path / "in")
    local, remote = tmp_path / "local", tmp_path / "ray"
    common = ["down", str(folder), "--scale", "2", "-m", "car", "--json"]  # a learned pair, in actors
    here = run(*common, "-o", str(local))
    there = run(*common, "-o", str(remote), "--ray", cluster)
    assert here.exit_code == there.exit_code == 0, there.output
    assert rows(there.stdout, remote) == rows(here.stdout, local)  # input order, the same fields
    assert [r["status"] for r in rows(there.stdout, remote)] == ["ok"] * 4
    assert tree(remote) == tree(local)


def test_ray_auto_reads_ray_address_and_a_failed_file_gives_the_local_rows_and_exit_code(tmp_path, cluster,
                                                                                         monkeypatch) -> None:
    folder = make_folder(tmp_path / "in", count=3)
    (folder / "broken.png").write_bytes(b"not a png")
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    common = ["down", str(folder), "--scale", "2", "-m", "lanczos", "--json"]
    local = run(*common, "-o", str(tmp_path / "local"))
    result = run(*common, "-o", str(tmp_path / "ray"), "--ray", "auto")
    assert result.exit_code == local.exit_code == 1, result.output
    assert rows(result.stdout, tmp_path / "ray") == rows(local.stdout, tmp_path / "local")
    assert [r["status"] for r in rows(result.stdout, tmp_path / "ray")] == ["error", "ok", "ok", "ok"]
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_ray_local_starts_a_private_cluster_for_one_encode_run_and_removes_it(tmp_path) -> None:
    folder = make_folder(tmp_path / "in", count=2)
    before = set(Path("/tmp").glob("rz-ray-*"))
    local = run("encode", str(folder), "--json", "-o", str(tmp_path / "local"))
    result = run("encode", str(folder), "--json", "-o", str(tmp_path / "ray"), "--ray", "local", "-j", "1")
    assert result.exit_code == local.exit_code == 0, result.output
    assert rows(result.stdout, tmp_path / "ray") == rows(local.stdout, tmp_path / "local")
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert set(Path("/tmp").glob("rz-ray-*")) == before  # its temporary folder is gone
    assert not ray.is_initialized()


@pytest.fixture()
def bucket(tmp_path, monkeypatch):
    """A fresh bucket on a moto S3 server of this test (moto's stores are per process: names are unique)."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    s3fs = pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    env = {"AWS_ACCESS_KEY_ID": "ray-test", "AWS_SECRET_ACCESS_KEY": "ray-test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="ray-test",
                          aws_secret_access_key="ray-test")
    name = f"ray-{os.urandom(6).hex()}"
    client.create_bucket(Bucket=name)
    try:
        yield client, name, env
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_a_ray_run_reads_and_writes_object_storage_like_a_local_run(tmp_path, cluster, bucket) -> None:
    client, name, env = bucket
    for index in range(3):
        data = (make_folder(tmp_path / f"in{index}", count=1) / "im0.png").read_bytes()
        client.put_object(Bucket=name, Key=f"in/im{index}.png", Body=data)
    # the workers' store configuration (on a real cluster: each node's own environment or role)
    executor = RayExecutor(cluster, runtime_env={"env_vars": env})
    made, stored = {}, {}
    for label, where in (("local", None), ("ray", executor)):
        settings = pipeline.BatchSettings("down", SizeSpec(scale=2), method="car", output=f"s3://{name}/{label}/")
        results = pipeline.run_batch([f"s3://{name}/in/"], settings, executor=where)
        made[label] = [{**r.to_json(), "seconds": None, "output": r.output.rsplit("/", 1)[-1]} for r in results]
        listing = client.list_objects_v2(Bucket=name, Prefix=f"{label}/").get("Contents", [])
        stored[label] = {item["Key"].split("/", 1)[1]: client.get_object(Bucket=name, Key=item["Key"])["Body"].read()
                         for item in listing}
    assert made["ray"] == made["local"] and [r["status"] for r in made["ray"]] == ["ok"] * 3
    assert sorted(stored["ray"]) == ["im0.png", "im1.png", "im2.png"] and stored["ray"] == stored["local"]


# --------------------------------------------------------------------------- faults


def test_workers_killed_mid_batch_have_their_files_retried_and_each_output_written_once(tmp_path, cluster,
                                                                                      capfd) -> None:
    folder = make_folder(tmp_path / "in", count=6)
    settings = pipeline.BatchSettings("down", SizeSpec(scale=2), method="car", output=str(tmp_path / "local"))
    expected = [r.to_json() for r in pipeline.run_batch([str(folder)], settings)]
    writing, written = tmp_path / "killed-writing", tmp_path / "killed-written"
    kills = f"im1.png:writing:{writing};im4.png:written:{written}"  # mid-write (.part), and after the output is whole
    hook = {"worker_process_setup_hook": "tests.ray_faults.install",
            "env_vars": {"RESIZER_TEST_KILL": kills, "PYTHONPATH": str(REPO)}}
    out = tmp_path / "ray"
    settings = dataclasses.replace(settings, output=str(out), jobs=2)
    results = pipeline.run_batch([str(folder)], settings, executor=RayExecutor(cluster, runtime_env=hook))
    assert writing.exists() and written.exists(), "the hook should have killed two workers"
    got = [r.to_json() for r in results]
    assert [r["status"] for r in got] == ["ok"] * 6, [r.get("error") for r in got]
    assert without_timing(got, out) == without_timing(expected, tmp_path / "local")
    assert tree(out) == tree(tmp_path / "local")  # no .part left, nothing missing, the same bytes
    assert (out / "im4.png").stat().st_ino == int(written.read_text())  # the lost attempt's output, kept
    assert "worker died" not in capfd.readouterr().out  # Ray's notice stays off stdout (the --json lines)


def test_a_retry_keeps_the_output_its_lost_attempt_wrote_and_refuses_a_different_one(tmp_path) -> None:
    source = make_folder(tmp_path / "in", count=1) / "im0.png"
    target = tmp_path / "out.png"
    settings = pipeline.BatchSettings("down", SizeSpec(scale=2))
    job = pipeline.ResizeJob(str(source), str(target), str(source))
    assert pipeline.process_job(job, settings).status == "ok"
    inode = target.stat().st_ino
    retried = _retried_job(job, settings)
    assert (retried.status, retried.output, target.stat().st_ino) == ("ok", str(target), inode)
    target.write_bytes(b"someone else's file")
    refused = _retried_job(job, settings)
    assert refused.status == "error" and "exists" in refused.error
    assert target.read_bytes() == b"someone else's file"


_INTERRUPTED = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, even when started in the background
from resizer.cli import main
sys.argv = ["resizer", *sys.argv[1:]]
main()
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_cancels_the_outstanding_files_and_leaves_no_partial_output(tmp_path, cluster) -> None:
    folder = make_folder(tmp_path / "in", count=16, size=(192, 160))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "passive"}
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, "down", str(folder), "--scale", "2", "-m", "car",
                             "-o", str(out), "--ray", cluster, "-j", "2"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read()
    assert code == 130 and stderr.strip().splitlines()[-1] == "resizer: interrupted", stderr
    assert "Traceback" not in stderr, stderr
    time.sleep(0.5)  # a worker still running would write now
    written = sorted(out.iterdir())
    assert all(p.suffix == ".png" for p in written), written  # no .part file
    assert 1 <= len(written) < 16
    for path in written:  # each one complete
        with Image.open(path) as image:
            image.load()
            assert image.size == (96, 80)


# --------------------------------------------------------------------------- connection errors


@pytest.mark.parametrize("command", [["down", "--scale", "2"], ["up", "--scale", "2"], ["encode"], ["decode"]])
def test_an_unreachable_cluster_is_one_line_naming_it_and_exit_2(tmp_path, monkeypatch, command) -> None:
    source = make_folder(tmp_path / "in", count=1) / "im0.png"
    address = f"127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(app, [command[0], str(source), *command[1:], "--ray", address])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and lines[0].startswith("resizer: error: --ray"), lines
    monkeypatch.setenv("RAY_ADDRESS", address)
    result = CliRunner().invoke(app, [command[0], str(source), *command[1:], "--ray", "auto", "--json"])
    assert result.exit_code == 2 and address in result.stderr
    assert json.loads(result.stdout)["usage_error"] is True
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["im0.png"]  # nothing written


def test_standard_input_is_refused_with_ray_as_a_usage_error(tmp_path, cluster) -> None:
    data = (make_folder(tmp_path / "in", count=1) / "im0.png").read_bytes()
    result = CliRunner().invoke(app, ["down", "-", "--scale", "2", "-o", str(tmp_path / "out.png"), "--ray", cluster],
                                input=data)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "resizer: error: --ray reads and writes files: standard input or output ('-') runs without --ray"]
    assert not (tmp_path / "out.png").exists()


def test_importing_resizer_does_not_import_ray() -> None:
    code = "import sys, resizer, resizer.cli, resizer.pipeline; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.strip() == "False", result.stderr
