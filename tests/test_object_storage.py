"""Issue 18: batch inputs and outputs in object storage, against a real S3-compatible server on localhost.

moto's server runs in a thread for the session; each test gets its own bucket and the
test credentials in its environment only. http(s) inputs come from a local http.server.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import io
import json
import logging
import pickle
import socket
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resizer.cli import app
from resizer.errors import ImageWriteError, UsageError
from resizer import storage

from .conftest import synthetic_photo

KEY_ID, SECRET = "AKIARESIZERTEST00001", "resizer-test-secret-0001"
WRONG_SECRET = "WRONG-secret-that-must-never-be-printed-42"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on a free localhost port, with one IAM user (for the credential checks)."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    iam.create_user(UserName="resizer")
    key = iam.create_access_key(UserName="resizer")["AccessKey"]
    yield endpoint, (key["AccessKeyId"], key["SecretAccessKey"])
    server.stop()


class Store:
    """The test's bucket, and a plain boto3 client on it (not resizer's code) to check what was written."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        import boto3

        self.endpoint, self.bucket = endpoint, bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                                   aws_secret_access_key=SECRET)
        self.client.create_bucket(Bucket=bucket)

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"][len(prefix):] for item in listing.get("Contents", []))

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.client.list_buckets()["Buckets"])


@pytest.fixture()
def s3(s3_endpoint, monkeypatch, tmp_path) -> Store:
    """A fresh bucket; the environment holds test credentials and the endpoint for this test only."""
    import s3fs

    endpoint, _ = s3_endpoint
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    yield Store(endpoint, f"test-{uuid.uuid4().hex[:12]}")
    s3fs.S3FileSystem.clear_instance_cache()


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def png_bytes(seed: int, size=(64, 48), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(size[1], size[0], seed=seed)).save(buffer, fmt)
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


TREE = {"a.png": png_bytes(1), "sub/b.jpg": png_bytes(2, fmt="JPEG"), "sub/deeper/c.png": png_bytes(3, (40, 40)),
        ".hidden.png": png_bytes(4), "notes.txt": b"not an image"}


def local_tree(folder: Path) -> Path:
    for name, data in TREE.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def json_rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------- prefixes in and out


def test_a_prefix_in_and_out_mirrors_the_tree_with_the_pixels_of_a_local_run(s3, tmp_path) -> None:
    for name, data in TREE.items():
        s3.put(f"in/{name}", data)
    remote = run("down", s3.url("in/"), "--fit", "32x32", "-o", s3.url("out/"), "--json")
    assert remote.exit_code == 0, remote.output
    local = run("down", str(local_tree(tmp_path / "in")), "--fit", "32x32", "-o", str(tmp_path / "out"))
    assert local.exit_code == 0, local.output
    expected = files_under(tmp_path / "out")
    assert s3.keys("out/") == sorted(expected) == ["a.png", "sub/b.jpg", "sub/deeper/c.png"]
    for name, data in expected.items():
        assert s3.get(f"out/{name}") == data, name  # the same encoder on the same pixels: the same bytes
    rows = json_rows(remote.stdout)
    assert [(r["input"], r["output"], r["status"]) for r in rows] == [
        (s3.url(f"in/{n}"), s3.url(f"out/{n}"), "ok") for n in ("a.png", "sub/b.jpg", "sub/deeper/c.png")]
    assert "3 written, 0 skipped, 0 failed" in remote.stderr


def test_include_exclude_and_an_output_prefix_inside_the_input(s3) -> None:
    for name, data in TREE.items():
        s3.put(f"in/{name}", data)
    first = run("down", s3.url("in/"), "--scale", "2", "-o", s3.url("in/small/"), "--exclude", "sub/deeper/*", "-q")
    assert first.exit_code == 0, first.output
    assert s3.keys("in/small/") == ["a.png", "sub/b.jpg"]
    again = run("down", s3.url("in/"), "--scale", "2", "-o", s3.url("in/small/"), "--include", "*.png",
                "--skip-existing", "--json")
    assert again.exit_code == 0, again.output  # its own outputs under in/small/ are not inputs
    assert [(r["input"], r["status"]) for r in json_rows(again.stdout)] == [
        (s3.url("in/a.png"), "skipped"), (s3.url("in/sub/deeper/c.png"), "ok")]


def test_a_learned_pair_encodes_into_a_bucket_and_decodes_to_a_local_folder(s3, tmp_path) -> None:
    s3.put("photos/a.png", png_bytes(5, (48, 40)))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(png_bytes(5, (48, 40)))
    encoded = run("encode", s3.url("photos/"), "-o", s3.url("enc/"), "--device", "cpu", "--json")
    assert encoded.exit_code == 0, encoded.output
    assert json_rows(encoded.stdout)[0]["method"] == "dsn"
    assert run("encode", str(tmp_path / "photos"), "-o", str(tmp_path / "enc"), "--device", "cpu").exit_code == 0
    assert s3.keys("enc/") == ["a.jpg"] and s3.get("enc/a.jpg") == (tmp_path / "enc" / "a.jpg").read_bytes()
    decoded = run("decode", s3.url("enc/"), "-o", str(tmp_path / "dec") + "/", "--device", "cpu")
    assert decoded.exit_code == 0, decoded.output
    assert run("decode", str(tmp_path / "enc"), "-o", str(tmp_path / "dec-local") + "/", "--device", "cpu").exit_code == 0
    assert pixels((tmp_path / "dec" / "a.png").read_bytes()).shape == (40, 48, 3)
    assert (tmp_path / "dec" / "a.png").read_bytes() == (tmp_path / "dec-local" / "a.png").read_bytes()


def test_a_single_object_in_and_a_local_file_in_to_an_object(s3, tmp_path) -> None:
    s3.put("one/photo.png", png_bytes(6))
    beside = run("up", s3.url("one/photo.png"), "--scale", "2", "--method", "bicubic")
    assert beside.exit_code == 0, beside.output
    assert s3.keys("one/") == ["photo.png", "photo_up2.png"]
    (tmp_path / "photo.png").write_bytes(png_bytes(6))
    assert run("up", str(tmp_path / "photo.png"), "--scale", "2", "--method", "bicubic").exit_code == 0
    assert s3.get("one/photo_up2.png") == (tmp_path / "photo_up2.png").read_bytes()
    named = run("down", str(tmp_path / "photo.png"), "--scale", "2", "-o", s3.url("named/small.webp"), "--json")
    assert named.exit_code == 0, named.output
    assert json_rows(named.stdout)[0]["output"] == s3.url("named/small.webp")
    assert s3.get("named/small.webp")[8:12] == b"WEBP"


def test_templates_write_under_a_prefix(s3, tmp_path) -> None:
    local_tree(tmp_path / "in")
    result = run("down", str(tmp_path / "in"), "--fit", "20x20", "-o", s3.url("web/{dir}/{stem}_{width}.webp"), "-q")
    assert result.exit_code == 0, result.output
    assert s3.keys("web/") == ["a_20.webp", "sub/b_20.webp", "sub/deeper/c_20.webp"]


# --------------------------------------------------------------------------- safety rules


def test_an_existing_object_is_kept_without_overwrite(s3, tmp_path) -> None:
    local_tree(tmp_path / "in")
    s3.put("out/a.png", b"precious")
    plain = run("down", str(tmp_path / "in"), "--scale", "2", "-o", s3.url("out/"), "--json")
    assert plain.exit_code == 1
    assert s3.get("out/a.png") == b"precious"
    assert f"resizer: error: {s3.url('out/a.png')}: exists (use --overwrite)" in plain.stderr
    assert s3.keys("out/") == ["a.png", "sub/b.jpg", "sub/deeper/c.png"]  # the others were written
    skipped = run("down", str(tmp_path / "in"), "--scale", "2", "-o", s3.url("out/"), "--skip-existing", "--json")
    assert skipped.exit_code == 0 and {r["status"] for r in json_rows(skipped.stdout)} == {"skipped"}
    assert s3.get("out/a.png") == b"precious"
    replaced = run("down", str(tmp_path / "in"), "--scale", "2", "-o", s3.url("out/"), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert pixels(s3.get("out/a.png")).shape == (24, 32, 3)


def test_an_object_written_meanwhile_is_not_replaced(s3, tmp_path, monkeypatch) -> None:
    """The put itself is exclusive (If-None-Match), not only the check before it."""
    s3.put("race/a.png", b"first")
    with pytest.raises(ImageWriteError) as caught:
        storage.put_bytes(s3.url("race/a.png"), b"second", overwrite=False)
    assert isinstance(caught.value.__context__, FileExistsError)
    assert caught.value.__context__.filename == s3.url("race/a.png")
    local_tree(tmp_path / "in")
    monkeypatch.setattr(storage, "exists", lambda url: False)  # another run writes between the check and the put
    raced = run("down", str(tmp_path / "in" / "a.png"), "--scale", "2", "-o", s3.url("race/a.png"))
    assert raced.exit_code == 1 and raced.stderr.strip() == (
        f"resizer: error: {s3.url('race/a.png')}: exists (written meanwhile by another process; use --overwrite)")
    skipped = run("down", str(tmp_path / "in" / "a.png"), "--scale", "2", "-o", s3.url("race/a.png"),
                  "--skip-existing", "--json")
    assert skipped.exit_code == 0 and json_rows(skipped.stdout)[0]["status"] == "skipped"
    assert s3.get("race/a.png") == b"first"


def test_a_missing_bucket_is_one_error_and_nothing_is_written(s3, tmp_path) -> None:
    local_tree(tmp_path / "in")
    before = s3.buckets()
    missing_local = run("down", str(tmp_path / "no-such-folder"), "--scale", "2")
    read = run("down", "s3://no-such-bucket-resizer/in/", "--scale", "2", "-o", str(tmp_path / "out"))
    assert read.exit_code == missing_local.exit_code == 1
    assert read.stderr.strip().splitlines()[0] == "resizer: error: s3://no-such-bucket-resizer/in/: no such bucket"
    assert not (tmp_path / "out").exists()
    write = run("down", str(tmp_path / "in"), "--scale", "2", "-o", "s3://no-such-bucket-resizer/out/", "--json")
    assert write.exit_code == 1
    assert write.stderr.strip() == "resizer: error: s3://no-such-bucket-resizer/: no such bucket"
    assert s3.buckets() == before  # no bucket was made


@contextlib.contextmanager
def iam_checks(endpoint: str):
    """moto checks signatures and access keys while the block runs (it accepts anything by default)."""
    import urllib.request

    def reset(count: str) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                                      headers={"Content-Type": "text/plain"}, method="POST")).read()

    reset("0")
    try:
        yield
    finally:
        reset("inf")


def test_wrong_credentials_are_one_error_naming_the_url_not_the_secret(s3, s3_endpoint, tmp_path, monkeypatch) -> None:
    local_tree(tmp_path / "in")
    s3.put("in/a.png", TREE["a.png"])
    import s3fs

    key_id, _ = s3_endpoint[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
    s3fs.S3FileSystem.clear_instance_cache()
    with iam_checks(s3.endpoint):
        write = run("down", str(tmp_path / "in"), "--scale", "2", "-o", s3.url("out/"), "--json")
        read = run("down", s3.url("in/"), "--scale", "2", "-o", str(tmp_path / "out"))
    for result in (write, read):
        assert result.exit_code == 1, result.output
        assert WRONG_SECRET not in result.output + result.stderr and key_id not in result.stderr
    assert write.stderr.strip().splitlines() == [
        f"resizer: error: s3://{s3.bucket}/: access denied (cannot write; check the credentials of this store in "
        "the environment or its config)"]
    assert read.stderr.strip().splitlines()[0].startswith(f"resizer: error: {s3.url('in/')}: access denied")
    assert s3.keys("out/") == [] and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- http(s), extras, names


@pytest.fixture()
def http_folder(tmp_path):
    """``tmp_path/site`` served by http.server on localhost: its URL."""
    pytest.importorskip("aiohttp")  # fsspec's http file system
    site = tmp_path / "site"
    site.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_inputs_are_read_and_http_outputs_refused(http_folder, tmp_path) -> None:
    site, base = http_folder
    local_tree(site / "photos")
    one = run("down", f"{base}/photos/a.png", "--scale", "2", "-o", str(tmp_path / "a.png"), "--json")
    assert one.exit_code == 0, one.output
    assert json_rows(one.stdout)[0]["input"] == f"{base}/photos/a.png"
    assert run("down", str(site / "photos" / "a.png"), "--scale", "2", "-o", str(tmp_path / "a-local.png")).exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "a-local.png").read_bytes()
    folder = run("down", f"{base}/photos/", "--scale", "2", "-o", str(tmp_path / "out"), "-q")
    assert folder.exit_code == 0, folder.output
    assert sorted(files_under(tmp_path / "out")) == ["a.png", "sub/b.jpg", "sub/deeper/c.png"]
    refused = run("down", str(site / "photos" / "a.png"), "--scale", "2", "-o", f"{base}/photos/new.png")
    assert refused.exit_code == 2 and "read-only" in refused.stderr and f"{base}/photos/new.png" in refused.stderr
    beside = run("down", f"{base}/photos/a.png", "--scale", "2")  # the default output would be beside it
    assert beside.exit_code == 2 and "read-only" in beside.stderr
    assert not (site / "photos" / "new.png").exists() and not (site / "photos" / "a_down2.png").exists()


def test_a_missing_http_object_is_a_per_file_error(http_folder, tmp_path) -> None:
    _, base = http_folder
    result = run("down", f"{base}/nothing.png", "--scale", "2", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1 and result.stderr.strip() == f"resizer: error: {base}/nothing.png: no such object or prefix"


def test_a_url_without_its_extra_names_the_extra(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as if s3fs (and fsspec with it) were not installed
    result = run("down", "s3://bucket/in/", "--scale", "2", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.strip() == ('resizer: error: s3://bucket/in/: s3:// needs s3fs; install it with '
                                     'pip install "resizer[s3]"')
    with pytest.raises(UsageError, match="unsupported URL scheme 'ftp://'"):
        storage.read_bytes("ftp://host/a.png")


def test_a_store_whose_package_is_missing_names_its_extra(tmp_path) -> None:
    pytest.importorskip("fsspec")
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    result = run("down", "gs://bucket/photo.png", "--scale", "2", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 2
    assert result.stderr.strip() == ('resizer: error: gs://bucket/photo.png: gs:// needs gcsfs; install it with '
                                     'pip install "resizer[gcs]"')


def test_printed_urls_carry_no_passwords_or_signatures() -> None:
    assert storage.display("https://user:pw@host/a.png?X-Amz-Signature=abc&X-Amz-Credential=k&v=2") == \
        "https://host/a.png?X-Amz-Signature=***&X-Amz-Credential=***&v=2"
    assert storage.display("s3://bucket/a b.png") == "s3://bucket/a b.png"
    assert storage.display("photos/a.png") == "photos/a.png"


def test_jobs_with_urls_are_plain_picklable_data(s3) -> None:
    from resizer.geometry import SizeSpec
    from resizer.pipeline import BatchSettings, plan_jobs

    s3.put("in/a.png", TREE["a.png"])
    jobs, errors = plan_jobs([s3.url("in/")], BatchSettings("down", SizeSpec(scale=2), output=s3.url("out/")))
    assert not errors and pickle.loads(pickle.dumps(jobs)) == jobs
    assert [(j.input, j.output) for j in jobs] == [(s3.url("in/a.png"), s3.url("out/a.png"))]
