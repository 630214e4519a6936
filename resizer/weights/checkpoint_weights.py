"""``resizer train`` checkpoints as ``--weights``: a run folder, a checkpoint folder or its ``model.safetensors``.

A checkpoint's ``model.safetensors`` has no resizer metadata: what reads it is in the run's
``config.json`` (``arch``, ``model_config``, ``scales``), two folders up. A pair's tensors are
``down.*`` and ``up.*``; the half the request needs is taken. Only safetensors and JSON
are read, so nothing is unpickled (:mod:`resizer.training.checkpoints` writes no pickle).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, UsageError
from .safetensors_io import first_line, read_header

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class CheckpointWeights:
    """What reads one network of a training checkpoint."""

    model_file: Path
    run_dir: Path
    family: str
    arch: str  # the architecture of the network ``task`` needs
    task: str
    config: dict[str, Any]
    prefix: str  # "down." / "up." for a pair's halves, "" for a single network
    scales: list[float]


def _model_file(path: Path) -> Path | None:
    """The checkpoint ``model.safetensors`` that ``path`` names, or ``None`` if it names no checkpoint."""
    if path.is_dir() and (path / "latest.json").is_file():
        try:
            latest = json.loads((path / "latest.json").read_text(encoding="utf-8"))["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelError(f"{path}: latest.json of the training run is unreadable") from None
        return path / "checkpoints" / str(latest) / "model.safetensors"
    if path.is_dir() and (path / "state.json").is_file():
        return path / "model.safetensors"
    if path.name == "model.safetensors" and (path.parent / "state.json").is_file():
        return path
    return None


def checkpoint_weights(path: str | Path, task: str = "up") -> CheckpointWeights | None:
    """The network of ``task`` in the checkpoint ``path`` names; ``None`` when ``path`` is no checkpoint."""
    from ..training.config import training_family

    model_file = _model_file(Path(path))
    if model_file is None:
        return None
    run_dir = model_file.parent.parent.parent
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        arch, model_config = str(config["arch"]), dict(config.get("model_config") or {})
        scales = [float(s) for s in config.get("scales") or []]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: a training checkpoint without a readable run config.json ({first_line(exc)})") from None
    if not model_file.is_file():
        raise ModelError(f"{model_file}: the checkpoint's model file is missing")
    family = training_family(arch)
    if family.is_pair:
        architecture = family.architecture(task)  # type: ignore[arg-type]
        return CheckpointWeights(model_file, run_dir, family.name, architecture.name, task,
                                 dict(model_config.get(task) or {}), f"{task}.", scales)
    if task != "up":
        raise UsageError(f"{path}: a checkpoint of '{arch}', an upscaler; it cannot scale down")
    architecture = family.architecture("up")
    return CheckpointWeights(model_file, run_dir, architecture.family, architecture.name, "up", model_config, "",
                             scales)


@functools.lru_cache(maxsize=4)
def _cached(model_file: str, arch: str, config_json: str, prefix: str, stamp: tuple[int, int],
            device: str) -> "nn.Module":
    from safetensors.torch import load_file

    from ..models import create_model

    read_header(model_file)  # truncated or garbage files are refused before torch reads them
    model = create_model(arch, json.loads(config_json))
    tensors = {k[len(prefix):]: v for k, v in load_file(model_file).items() if k.startswith(prefix)}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{model_file}: the checkpoint does not match '{arch}' ({first_line(exc)})") from None
    return model.to(device).eval()


def load_checkpoint_network(ckpt: CheckpointWeights, device: str) -> "nn.Module":
    """The checkpoint's network on ``device``, in eval mode (cached per file, change and device)."""
    stat = ckpt.model_file.stat()
    return _cached(str(ckpt.model_file), ckpt.arch, json.dumps(ckpt.config, sort_keys=True), ckpt.prefix,
                   (stat.st_size, stat.st_mtime_ns), device)
