"""MATLAB-compatible bicubic imresize: against a slow literal port of MATLAB's code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from resizer.methods import ResizeRequest, RunOptions, get_method
from resizer.ops import contributions, imresize
from resizer.ops.matlab import _tables


# --- an obvious, slow reference: MATLAB's imresize.m transcribed line by line (1-based) ---

def _ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    width = 4.0
    if scale < 1 and antialias:
        h = lambda t: scale * _ref_cubic(scale * t)  # noqa: E731
        width = width / scale
    else:
        h = _ref_cubic
    taps = math.ceil(width) + 2
    aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
    rows = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + j for j in range(taps)]
        w = [h(u - i) for i in idx]
        total = sum(w)
        w = [v / total for v in w]
        idx = [aux[(i - 1) % len(aux)] - 1 for i in idx]  # mirrored, 0-based
        rows.append(list(zip(idx, w)))
    return rows


def _ref_resize_dim(a: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    rows = _ref_contributions(a.shape[0], out_len, scale)
    out = np.zeros((out_len,) + a.shape[1:])
    for o, taps in enumerate(rows):
        for i, w in taps:
            out[o] += w * a[i]
    return np.moveaxis(out, 0, axis)


def _ref_imresize(a: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """2-D array; MATLAB semantics for scale/size; smallest scale first, rows on ties."""
    h, w = a.shape
    if size is None:
        size = (math.ceil(scale * h), math.ceil(scale * w))
        scales = [scale, scale]
    else:
        scales = [size[0] / h, size[1] / w]
    order = sorted(range(2), key=lambda d: scales[d])  # stable
    for d in order:
        a = _ref_resize_dim(a, d, size[d], scales[d])
    return a


# --- tests -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "shape, scale, size",
    [
        ((12, 15), 1 / 3, None),
        ((19, 23), 0.37, None),
        ((9, 7), 2.7, None),
        ((5, 8), 4.0, None),
        ((13, 11), 0.5, None),
        ((17, 16), None, (7, 30)),   # down in H, up in W: W first? no, H (smaller scale) first
        ((10, 21), None, (25, 6)),   # W has the smaller scale, so W first
        ((3, 4), None, (11, 2)),
    ],
)
def test_matches_matlab_reference(shape, scale, size):
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 255, shape)
    expected = _ref_imresize(a, scale=scale, size=size)
    got = imresize(torch.from_numpy(a)[None, None], scale=scale, size=size)[0, 0].numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_gather_path_matches_dense_path():
    # Large dimensions use the per-tap gather, small ones a dense matrix: same numbers.
    rng = np.random.default_rng(2)
    a = torch.from_numpy(rng.uniform(0, 1, (1, 1, 1300, 9)))
    big = imresize(a, size=(433, 25))
    assert _tables(1300, 433, 433 / 1300, True, a.device, a.dtype)[0] == "gather"
    expected = _ref_imresize(a[0, 0].numpy(), size=(433, 25))
    np.testing.assert_allclose(big[0, 0].numpy(), expected, atol=1e-9)


def test_known_values_against_hand_computed_kernel():
    # x2 upscaling of a ramp: away from the borders, samples fall at +-0.25 of the input
    # grid, where Keys' a=-0.5 kernel reproduces linear functions exactly.
    ramp = torch.arange(8, dtype=torch.float64).view(1, 1, 1, 8)
    out = imresize(ramp, size=(1, 16))[0, 0, 0]
    np.testing.assert_allclose(out[3:-3].numpy(), np.arange(3, 13) / 2 - 0.25, atol=1e-12)
    # First output sample: u = 0.75 (1-based), taps at -1, 0, 1, 2 with weights
    # cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25) = -0.0234375, 0.2265625,
    # 0.8671875, -0.0703125; MATLAB's mirror maps -1 -> 2 and 0 -> 1, i.e. values 1, 0, 0, 1.
    assert out[0].item() == pytest.approx(-0.0234375 - 0.0703125, abs=1e-12)
    # u = 1.25: taps 0..3 -> values 0, 0, 1, 2 (the mirrored tap still bends the ramp).
    assert out[1].item() == pytest.approx(0.2265625 - 2 * 0.0234375, abs=1e-12)


@pytest.mark.parametrize("scale", [1 / 3, 0.37, 0.5, 1.5, 2.7, 4.0])
def test_weights_sum_to_one(scale):
    weights, indices = contributions(29, math.ceil(29 * scale), scale)
    np.testing.assert_allclose(weights.sum(dim=1).numpy(), 1.0, atol=1e-12)
    assert indices.min() >= 0 and indices.max() < 29


@pytest.mark.parametrize("size", [(10, 13), (41, 37), (7, 90), (120, 5)])
def test_constant_image_stays_constant(size):
    x = torch.full((2, 3, 31, 29), 0.625, dtype=torch.float64)
    out = imresize(x, size=size)
    assert out.shape == (2, 3) + size
    torch.testing.assert_close(out, torch.full_like(out, 0.625), atol=1e-12, rtol=0)


def test_batched_equals_one_by_one_and_float32():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.uniform(0, 1, (3, 2, 20, 17)).astype(np.float32))
    out = imresize(x, scale=0.37)
    assert out.dtype == torch.float32
    for n in range(3):
        torch.testing.assert_close(out[n : n + 1], imresize(x[n : n + 1], scale=0.37))
    ref = _ref_imresize(x[1, 1].double().numpy(), scale=0.37)
    np.testing.assert_allclose(out[1, 1].numpy(), ref, atol=1e-5)


def test_antialias_off_uses_plain_kernel():
    x = torch.from_numpy(np.random.default_rng(4).uniform(0, 1, (1, 1, 16, 16)))
    sharp = imresize(x, scale=0.5, antialias=False)
    soft = imresize(x, scale=0.5)
    assert sharp.shape == soft.shape == (1, 1, 8, 8)
    assert not torch.allclose(sharp, soft)
    assert sharp.std() > soft.std()  # no low-pass: more of the noise survives


def test_bad_arguments():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, scale=0)
    with pytest.raises(ValueError):
        imresize(x, size=(0, 3))
    with pytest.raises(TypeError):
        imresize(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), scale=2)


def test_gradients_flow():
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale=0.6), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, size=(9, 4)), (x,))
    big = torch.rand(1, 1, 600, 3, dtype=torch.float64, requires_grad=True)  # gather path
    imresize(big, size=(250, 3)).sum().backward()
    assert big.grad is not None and torch.isfinite(big.grad).all() and big.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 40, 33, dtype=torch.float64)
    cpu = imresize(x, scale=0.37)
    gpu = imresize(x.cuda(), scale=0.37)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
    x32 = torch.rand(1, 3, 700, 500, device="cuda")
    torch.testing.assert_close(imresize(x32, scale=2.7).cpu(), imresize(x32.cpu(), scale=2.7), atol=1e-5, rtol=1e-5)


def _picture(pixels):
    from resizer.image_io import Metadata, Picture

    return Picture(pixels, Metadata(dpi=(72.0, 72.0), text={"k": "v"}))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_method_registered_and_exact_sizes(channels):
    method = get_method("matlab-bicubic")
    assert method.directions == {"down", "up"}
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (23, 31, channels), dtype=np.uint8)
    picture = _picture(pixels)
    down = method.resize(picture, ResizeRequest("down", (12, 9), 2.6), RunOptions(device="cpu"))
    assert down.pixels.shape == (9, 12, channels) and down.pixels.dtype == np.uint8
    assert down.metadata.dpi == (72.0, 72.0) and down.metadata.text == {"k": "v"}
    assert down.metadata is not picture.metadata
    up = method.resize(picture, ResizeRequest("up", (70, 50), 2.2), RunOptions(device="cpu"))
    assert up.pixels.shape == (50, 70, channels)
    # MATLAB's rounding of the float result: half away from zero, clamped.
    ref = _ref_imresize(pixels[:, :, 0].astype(np.float64), size=(9, 12))
    np.testing.assert_array_equal(down.pixels[:, :, 0], np.clip(np.floor(ref + 0.5), 0, 255))


def test_method_sixteen_bit_and_constant_alpha():
    method = get_method("matlab-bicubic")
    pixels = np.full((20, 20, 4), 40000, dtype=np.uint16)
    pixels[..., 3] = 65535
    out = method.resize(_picture(pixels), ResizeRequest("down", (7, 7), 20 / 7), RunOptions(device="cpu"))
    assert out.pixels.dtype == np.uint16
    assert (out.pixels[..., :3] == 40000).all() and (out.pixels[..., 3] == 65535).all()


def test_scale_sets_the_kernel_and_size_the_shape():
    # MATLAB's imresize(x, 1/3) on 16 px gives ceil(16/3) = 6 px with the kernel of 1/3,
    # not of 6/16; passing both reproduces it at an explicit size.
    x = torch.from_numpy(np.random.default_rng(6).uniform(0, 1, (1, 1, 16, 16)))
    by_scale = imresize(x, scale=1 / 3)
    assert by_scale.shape[-2:] == (6, 6)
    np.testing.assert_allclose(by_scale[0, 0].numpy(), _ref_imresize(x[0, 0].numpy(), scale=1 / 3), atol=1e-9)
    torch.testing.assert_close(imresize(x, scale=1 / 3, size=(6, 6)), by_scale)
    assert not torch.allclose(imresize(x, size=(6, 6)), by_scale)


def test_ops_imports_nothing_above_it():
    """``resizer.ops`` is the bottom layer: beyond the package's own face it loads only itself.

    ``import resizer.ops`` first runs ``resizer/__init__.py`` (the public API), so what that
    loads is subtracted; every module left must be ``resizer.ops.*`` or ``resizer.errors``.
    The sources are read too, so a lazy import inside a function cannot hide a way up.
    """
    import ast
    import json
    import subprocess
    import sys
    from pathlib import Path

    import resizer.ops

    code = ("import json, sys\n"
            "def ours(): return {m for m in sys.modules if m == 'resizer' or m.startswith('resizer.')}\n"
            "import resizer\nface = ours()\nimport resizer.ops\nprint(json.dumps(sorted(ours() - face)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = json.loads(run.stdout)
    assert {"resizer.ops", "resizer.ops.matlab", "resizer.ops.car", "resizer.ops.jpeg"} <= set(added)
    assert [m for m in added if m not in ("resizer.ops", "resizer.errors") and not m.startswith("resizer.ops.")] == []

    for path in Path(resizer.ops.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert node.level <= 1 or target == "..errors", f"{path.name} imports {target}"
                assert node.level > 0 or not (node.module or "").startswith("resizer") or \
                    node.module.startswith(("resizer.ops", "resizer.errors")), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("resizer") or alias.name.startswith("resizer.ops"), \
                        f"{path.name} imports {alias.name}"


def test_matlab_bicubic_is_a_classical_method():
    """Registered with the Pillow methods: finding it loads neither torch nor the learned methods."""
    import subprocess
    import sys

    from resizer import classical

    assert isinstance(get_method("matlab-bicubic"), classical.MatlabBicubic)
    code = ("import sys; from resizer.methods import get_method; m = get_method('matlab-bicubic'); "
            "sys.exit(3 * ('torch' in sys.modules) + 5 * ('resizer.learned' in sys.modules) "
            "+ 7 * (type(m).__module__ != 'resizer.classical'))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_method_auto_device_runs_in_float64_on_cpu_without_a_gpu(monkeypatch):
    """``auto`` never picks MPS (no float64 there): without CUDA it is the CPU, exactly."""
    from resizer import devices

    monkeypatch.setattr(devices, "mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    method = get_method("matlab-bicubic")
    pixels = np.random.default_rng(8).integers(0, 256, (17, 19, 3), dtype=np.uint8)
    request = ResizeRequest("down", (8, 7), 2.4)
    auto = method.resize(_picture(pixels), request, RunOptions(device="auto"))
    cpu = method.resize(_picture(pixels), request, RunOptions(device="cpu"))
    np.testing.assert_array_equal(auto.pixels, cpu.pixels)
    ref = _ref_imresize(pixels[:, :, 1].astype(np.float64), size=(7, 8))
    np.testing.assert_array_equal(auto.pixels[:, :, 1], np.clip(np.floor(ref + 0.5), 0, 255))


def test_tables_cached_during_inference_still_train():
    """The engine runs under inference mode; the tables it caches must serve training's backward too."""
    _tables.cache_clear()
    with torch.inference_mode():
        imresize(torch.rand(1, 1, 13, 11), scale=2.0)
    x = torch.rand(1, 1, 13, 11, requires_grad=True)
    imresize(x, scale=2.0).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
