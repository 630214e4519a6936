"""Every method's output on a fixed set of images, held against outputs recorded once.

Refactors must not change what users get: the same command with the bundled weights
gives the same pixels before and after. Each case runs one CLI command in-process on
small generated images (odd sizes, RGB, grey, alpha) and compares the decoded pixels
with ``tests/golden/`` (one PNG per case, recorded by ``python -m tests.test_golden_outputs``).

On the machine the references were recorded on (same torch, same CPU model) the pixels
must be identical. Elsewhere a different oneDNN kernel may round a float differently, so
there every pixel must be within one level and 99.5 % of them identical; a real change
of behaviour moves far more than that.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

GOLDEN = Path(__file__).resolve().parent / "golden"

# name -> (input image, command arguments after the input; "{out}" is the output path)
CASES: dict[str, tuple[str, list[str]]] = {}
for _m in ("nearest", "bilinear", "bicubic", "lanczos", "box", "matlab-bicubic"):
    CASES[f"down-{_m}-x3"] = ("rgb", ["down", "--scale", "3", "--method", _m])
    CASES[f"up-{_m}-x2.7"] = ("rgb", ["up", "--scale", "2.7", "--method", _m])
CASES["down-lanczos-rgba-w20"] = ("rgba", ["down", "--width", "20"])
CASES["down-matlab-bicubic-grey-x2"] = ("grey", ["down", "--scale", "2", "--method", "matlab-bicubic"])
for _s in ("1.5", "2", "2.7", "4"):
    CASES[f"up-asdn-x{_s}"] = ("rgb", ["up", "--scale", _s])
CASES["up-asdn-grey-x2"] = ("grey", ["up", "--scale", "2"])
CASES["up-asdn-rgba-x3"] = ("rgba", ["up", "--scale", "3", "--method", "asdn"])
CASES["up-asdn-x2-tiled"] = ("rgb", ["up", "--scale", "2", "--tile", "32"])
for _s in ("2", "3", "4"):
    CASES[f"up-dair-x{_s}"] = ("rgb", ["up", "--scale", _s, "--method", "dair"])
    CASES[f"up-vdsr-x{_s}"] = ("rgb", ["up", "--scale", _s, "--method", "vdsr"])
CASES["up-dair-x2-grey"] = ("grey", ["up", "--scale", "2", "--method", "dair"])
CASES["up-srcnn-x3"] = ("rgb", ["up", "--scale", "3", "--method", "srcnn"])
for _pair, _scales in (("car", ("2", "4")), ("dsn", ("2", "3", "4"))):
    for _s in _scales:
        CASES[f"down-{_pair}-x{_s}"] = ("rgb", ["down", "--scale", _s, "--method", _pair])
        CASES[f"down-{_pair}-x{_s}-grey"] = ("grey", ["down", "--scale", _s, "--method", _pair])
CASES["down-car-x2-rgba"] = ("rgba", ["down", "--scale", "2", "--method", "car"])
# DSN x2 is an encode-only pair ('down --method dsn --scale 2' refuses it): its thumbnails are
# held through its explicit file, and 'up' of them still restores with its partner (resizer:model).
_ENCODE_ONLY = str(Path(__file__).resolve().parents[1] / "weights" / "dsn-x2-down.safetensors")
for _case in ("down-dsn-x2", "down-dsn-x2-grey"):
    CASES[_case] = (CASES[_case][0], [*CASES[_case][1], "--weights", _ENCODE_ONLY])
# The view pair 'down --method dsn --scale 2' picks (dsn-x2-thumb, trained with an LR-fidelity term).
CASES["down-dsn-x2-thumb"] = ("rgb", ["down", "--scale", "2", "--method", "dsn"])

# A plain JPEG (q30, kept in tests/golden so its bytes never depend on the encoder): 'decode' restores it
# at its own size with dejpeg, 'up' restores it before ASDN.
JPEG_INPUT = GOLDEN / "input-rgb-q30.jpg"
CASES["decode-plain-jpeg-q30"] = ("jpeg", ["decode"])
CASES["up-asdn-x2-jpeg-q30"] = ("jpeg", ["up", "--scale", "2"])

# The picture of DAIR's predicted kernels (``resizer kernels``): "{out}" is where the picture goes.
KERNEL_PICTURES: dict[str, tuple[str, list[str]]] = {
    "kernels-dair-x2": ("rgb", ["kernels", "--scale", "2", "--method", "dair", "-o", "{out}"]),
}

# Cases whose input is the output of another case (a paired thumbnail restored by ``up``).
RESTORES: dict[str, str] = {
    "up-car-x2-restored": "down-car-x2",
    "up-car-x4-restored": "down-car-x4",
    "up-dsn-x2-restored": "down-dsn-x2",
    "up-dsn-x2-thumb-restored": "down-dsn-x2-thumb",
    "up-dsn-x3-restored": "down-dsn-x3",
    "up-dsn-x4-restored": "down-dsn-x4",
    "up-car-x2-rgba-restored": "down-car-x2-rgba",
    "decode-dsn-x2-jpeg40": "encode-dsn-x2-jpeg40",
    "decode-car-x4-webp60": "encode-car-x4-webp60",
}
# Cases whose output is a compressed file (``resizer encode``); its decoded pixels are compared.
ENCODES: dict[str, tuple[str, list[str]]] = {
    "encode-dsn-x2-jpeg40": ("jpg", ["--scale", "2", "--codec", "jpeg", "--quality", "40"]),
    "encode-car-x4-webp60": ("webp", ["--scale", "4", "--codec", "webp", "--quality", "60", "--method", "car"]),
}


def _inputs(folder: Path) -> dict[str, Path]:
    """Three small generated images with odd sizes (RGB, grey, RGBA) and the recorded JPEG."""
    from .conftest import synthetic_photo

    rgb = synthetic_photo(45, 61, seed=3)
    grey = synthetic_photo(31, 41, seed=4).mean(axis=2).round().astype(np.uint8)
    rgba = synthetic_photo(29, 37, seed=5)
    yy, xx = np.mgrid[0:29, 0:37]
    alpha = np.clip(255 * (1.2 - np.hypot(yy - 14, xx - 18) / 18), 0, 255).astype(np.uint8)
    paths = {"rgb": folder / "rgb.png", "grey": folder / "grey.png", "rgba": folder / "rgba.png", "jpeg": JPEG_INPUT}
    if not JPEG_INPUT.is_file():  # made once, by the first recording
        Image.fromarray(rgb).save(JPEG_INPUT, quality=30)
    Image.fromarray(rgb).save(paths["rgb"])
    Image.fromarray(grey, mode="L").save(paths["grey"])
    Image.fromarray(np.dstack([rgba, alpha]), mode="RGBA").save(paths["rgba"])
    return paths


def _run_cli(args: list[str]) -> None:
    from typer.testing import CliRunner

    from resizer.cli import app

    if args[0] in ("up", "down", "encode", "decode"):
        args = [*args, "--precision", "fp32"]  # the recordings are fp32; the default is auto
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, f"resizer {' '.join(args)} exited {result.exit_code}: {result.output}"


def _produce(name: str, folder: Path, inputs: dict[str, Path], produced: dict[str, Path]) -> Path:
    out = folder / f"{name}.{ENCODES[name][0] if name in ENCODES else 'png'}"
    if name in KERNEL_PICTURES:
        image, args = KERNEL_PICTURES[name]
        args = [a.replace("{out}", str(out)) for a in args]
        _run_cli([args[0], str(inputs[image]), *args[1:]])
    elif name in ENCODES:
        _run_cli(["encode", str(inputs["rgb"]), *ENCODES[name][1], "-o", str(out)])
    elif name in RESTORES:
        source = produced.get(RESTORES[name]) or _produce(RESTORES[name], folder, inputs, produced)
        _run_cli(["decode" if name.startswith("decode") else "up", str(source), "-o", str(out)])
    else:
        image, args = CASES[name]
        _run_cli([args[0], str(inputs[image]), *args[1:], "-o", str(out)])
    produced[name] = out
    return out


def _fingerprint() -> dict[str, str]:
    """What decides float rounding: torch's version and the CPU's model and vector unit."""
    import torch

    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "cpu": model, "capability": torch.backends.cpu.get_cpu_capability()}


def _pixels(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im).copy()


ALL = sorted(CASES) + sorted(ENCODES) + sorted(KERNEL_PICTURES) + sorted(RESTORES)


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    folder = tmp_path_factory.mktemp("golden")
    return folder, _inputs(folder), {}


@pytest.mark.parametrize("name", ALL)
def test_output_matches_recording(name: str, produced) -> None:
    folder, inputs, done = produced
    out = done.get(name) or _produce(name, folder, inputs, done)
    reference = GOLDEN / f"{name}.png"
    assert reference.is_file(), f"no recording for {name}: run python -m tests.test_golden_outputs"
    mode, got = _pixels(out)
    ref_mode, want = _pixels(reference)
    assert (mode, got.shape) == (ref_mode, want.shape)
    recorded = json.loads((GOLDEN / "fingerprint.json").read_text())
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    if recorded == _fingerprint():
        assert diff.max() == 0, f"{name}: {int((diff > 0).sum())} pixels differ (max {int(diff.max())})"
    else:
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.995, (
            f"{name}: max difference {int(diff.max())}, {float((diff > 0).mean()):.3%} of values differ")


def record(folder: Path) -> None:
    """Write every case's output into ``tests/golden`` with this machine's fingerprint."""
    GOLDEN.mkdir(exist_ok=True)
    inputs, done = _inputs(folder), {}
    for name in ALL:
        out = done.get(name) or _produce(name, folder, inputs, done)
        mode, pixels = _pixels(out)
        Image.fromarray(pixels, mode=mode).save(GOLDEN / f"{name}.png", optimize=True)
    (GOLDEN / "fingerprint.json").write_text(json.dumps(_fingerprint(), indent=1) + "\n")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        record(Path(tmp))
    print(f"recorded {len(ALL)} cases in {GOLDEN}", file=sys.stderr)
