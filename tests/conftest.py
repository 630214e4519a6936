"""Shared fixtures: real images from the benchmark sets when present, generated ones otherwise."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` imported as module ``NAME`` (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def datasets_root() -> Path | None:
    """``$RESIZER_DATASETS`` or ``../shared/datasets`` beside the checkout, if it exists."""
    candidates = [os.environ.get("RESIZER_DATASETS"), REPO.parent / "shared" / "datasets"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bench" / "set5").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if root is None:
        pytest.skip("benchmark datasets not found (set RESIZER_DATASETS)")
    return root


def synthetic_photo(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth-plus-edges RGB uint8 image: gradients, a disc, stripes and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)
    g = 255 * x / max(width - 1, 1)
    b = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 3) ** 2, 220.0, 30.0)
    b = b + 40 * ((x // 4) % 2)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 4, (height, width, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.fixture()
def photo_rgb() -> np.ndarray:
    """A real photograph (a crop of Set5 img_003) when available, else a synthetic one."""
    root = datasets_root()
    if root is not None:
        from PIL import Image

        with Image.open(root / "bench" / "set5" / "img_003.png") as im:
            return np.asarray(im.convert("RGB"))[:96, :128].copy()
    return synthetic_photo()


@pytest.fixture()
def single_torch_thread(monkeypatch: pytest.MonkeyPatch):
    """Tiny tensors: intra-op threads cost more than they give (and a lot on a busy machine).

    The engine would raise the thread count back to every core, so it is held at one too.
    """
    import torch

    from resizer import engine

    threads = torch.get_num_threads()
    monkeypatch.setattr(engine, "use_all_cpu_threads", lambda: None)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_on_one_thread(config):
    """``resizer.training.train(config)`` with torch on one thread (tiny models; module-scoped fixtures)."""
    import torch

    from resizer.training import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(config)
    finally:
        torch.set_num_threads(threads)


def activate_manifest(monkeypatch: pytest.MonkeyPatch, manifest: Path) -> Path:
    """Make ``manifest`` the one every ``--method`` lookup reads, for this test."""
    from resizer.weights import clear_model_cache

    monkeypatch.setenv("RESIZER_MANIFEST", str(manifest))
    clear_model_cache()
    return manifest
