"""Training of the learned resamplers: ``train(TrainConfig(...)) -> TrainResult``.

The package owns a run from its options to its manifest entry, one concern per module:

- :mod:`.config`: ``TrainConfig`` and the one schema of the options (CLI flags, recipe
  command and the ``--resume`` trajectory are generated from it);
- :mod:`.data`: the training images in memory and the patch sampler;
- :mod:`.objectives`: the objective chosen once from the model family (one network's
  pixel loss, a down/up pair's joint loss, a pair through a codec);
- :mod:`.loop`: ``train()``, the learning-rate schedule and validation (scored by
  ``resizer.evaluation``, the one benchmark protocol);
- :mod:`.checkpoints`: run folders, checkpoints (safetensors, nothing pickled), resuming;
- :mod:`.export`: ``--export`` into the manifest, with the recipe and the scores.

Importing the package imports the torch-free schema only (``resizer train --help`` stays
fast); the other names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import OPTIONS, TRAJECTORY, Option, TrainConfig, config_from_cli

_LAZY = {
    "train": ".loop", "TrainResult": ".loop", "learning_rate": ".loop", "validate": ".loop",
    "PatchSampler": ".data", "load_training_images": ".data",
    "export_weights": ".export", "export_pair": ".export", "default_bench_dirs": ".export",
    "make_lr": "..evaluation", "hardware_string": "..devices",
}

__all__ = ["OPTIONS", "TRAJECTORY", "Option", "TrainConfig", "config_from_cli", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
