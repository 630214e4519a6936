"""The ``resizer`` command line: parsing only; every command calls the Python API.

Each command lives in its own module of this package and attaches itself to ``app``.
"""

from __future__ import annotations

# Importing a command module attaches its command to ``app``.
from . import bench_cmd, codec_cmd, eval_cmd, kernels_cmd, models_cmd, resize_cmd, train_cmd  # noqa: F401
from .app import app, main

__all__ = ["app", "main"]
