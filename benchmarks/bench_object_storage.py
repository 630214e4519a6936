"""What object storage costs a batch: the same files local -> local and s3:// -> s3:// (a moto server).

    python benchmarks/bench_object_storage.py [--files 24] [--megapixels 0.25] [--method bicubic] [--jobs 1]

moto runs in this process (its threads share the interpreter with the batch), so the
S3 figures are pessimistic against a real store on the network; the point is the
per-file cost resizer's storage layer adds (one GET, one HEAD, one PUT per file).
Needs the test extra (s3fs, moto[server]).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from resizer.geometry import SizeSpec
from resizer.methods import RunOptions
from resizer.pipeline import BatchSettings, run_batch


def _photo(megapixels: float, seed: int) -> bytes:
    height = int(round(math.sqrt(megapixels * 1e6 * 3 / 4)))
    width = int(round(height * 4 / 3))
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _start_moto() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint)
    return endpoint


def _timed(inputs: list[str], output: str, args: argparse.Namespace) -> float:
    settings = BatchSettings("down", SizeSpec(scale=2), method=args.method, output=output, jobs=args.jobs,
                             run=RunOptions(device="cpu"))
    started = time.perf_counter()
    results = run_batch(inputs, settings)
    seconds = time.perf_counter() - started
    failed = [r.error for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"failures: {failed[:3]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--megapixels", type=float, default=0.25)
    parser.add_argument("--method", default="bicubic")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    import boto3

    endpoint = _start_moto()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="bench")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for index in range(args.files):
            data = _photo(args.megapixels, index)
            (folder / f"{index:04d}.png").write_bytes(data)
            client.put_object(Bucket="bench", Key=f"in/{index:04d}.png", Body=data)
        _timed([str(folder / "0000.png")], str(Path(tmp) / "warm.png"), args)  # model load, imports
        local = _timed([str(folder)], str(Path(tmp) / "out"), args)
        remote = _timed(["s3://bench/in/"], "s3://bench/out/", args)
    per_file = (remote - local) / args.files * 1000
    print(f"{args.files} files of {args.megapixels} MP, {args.method}, --jobs {args.jobs}")
    print(f"local -> local  {args.files / local:7.1f} files/s")
    print(f"s3 -> s3 (moto) {args.files / remote:7.1f} files/s  ({remote / local:.2f}x the time, "
          f"{per_file:+.1f} ms per file)")


if __name__ == "__main__":
    main()
