"""One way to get a pretrained network: ``load(family, scale)`` gives a :class:`LoadedModel`.

This module owns turning a ``--method`` (and optionally ``--weights``) into a network in
eval mode on a device, with what it is and where it came from, and the cache that lets
every caller of the same file and device share one model. Without ``weights`` the
manifest picks the file; with it, the file's own metadata says what it is and the
loader checks that it belongs to the family and serves the scale.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ModelError, UsageError
from .hub import bundled_file, is_hub_reference, resolve_user_weights, resolve_weights_file
from .manifest import SCALE_TOLERANCE, WeightsEntry, choose_entry, format_scale
from .safetensors_io import load_weights_into, metadata_config, read_safetensors_metadata

if TYPE_CHECKING:
    from torch import nn

Source = Literal["bundled", "hub", "file"]


@dataclass(frozen=True)
class LoadedModel:
    """A pretrained network with what it is and where it came from.

    ``name`` is the manifest entry's name, or the ``--weights`` file's name (for a hub
    reference, its last path part with any ``@REVISION``). ``source`` is where the file
    was read from: "bundled" (beside the active manifest), "hub" (the Hugging Face cache,
    downloaded now or earlier) or "file" (a local ``--weights`` file). ``entry`` is the
    manifest entry, ``None`` for ``--weights``. ``model`` is shared through the cache:
    do not modify it (convert a copy for half precision).
    """

    model: "nn.Module"
    name: str
    source: Source
    path: Path
    family: str
    task: str
    arch: str
    scale: float
    entry: WeightsEntry | None = None


@functools.lru_cache(maxsize=8)
def _cached_model(path: str, stamp: tuple[int, int], device: str, arch: str, config_json: str) -> "nn.Module":
    model = load_weights_into(arch, path, json.loads(config_json))
    return model.to(device).eval()


def clear_model_cache() -> None:
    """Forget the models ``load`` keeps (tests, or to free memory)."""
    _cached_model.cache_clear()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _network(path: Path, device: str, arch: str, config: dict[str, Any]) -> "nn.Module":
    """The cached model of ``path`` on ``device``; a file changed on disk is loaded afresh."""
    return _cached_model(str(path), _stamp(path), device, arch, json.dumps(config, sort_keys=True))


def _from_manifest(family: str, scale: float, device: str, task: str | None, use: str,
                   paired_with: str | None) -> LoadedModel:
    entry = choose_entry(family, scale, task=task, use=use, paired_with=paired_with)
    path = resolve_weights_file(entry)
    source: Source = "bundled" if path == bundled_file(entry) else "hub"
    model = _network(path, device, entry.arch, entry.config)
    return LoadedModel(model, entry.name, source, path, entry.family, entry.task, entry.arch, scale, entry)


def _check_scales(path: Path, metadata: dict[str, str], scale: float) -> None:
    """Refuse a file whose recorded training scales do not include ``scale``."""
    if "scales" not in metadata:
        return
    try:
        scales = [float(s) for s in json.loads(metadata["scales"])]
    except (ValueError, TypeError):
        raise ModelError(f"{path}: the 'scales' metadata is not a list of numbers") from None
    if scales and not any(abs(s - scale) <= SCALE_TOLERANCE for s in scales):
        listed = ", ".join(f"x{format_scale(s)}" for s in scales)
        raise UsageError(f"{path}: weights trained for {listed}, not x{format_scale(scale)}")


def _from_file(family: str, scale: float, weights: str, device: str, task: str | None) -> LoadedModel:
    from ..models import get_architecture

    path = resolve_user_weights(weights)
    checkpoint = _from_checkpoint(family, scale, path, device, task)
    if checkpoint is not None:
        return checkpoint
    metadata = read_safetensors_metadata(path)
    arch = metadata.get("arch")
    config = metadata_config(path, metadata)
    if metadata.get("format") != "resizer" or not arch or config is None:
        raise ModelError(
            f"{path}: no resizer metadata (format, arch, config); --weights takes files written by "
            "resizer.weights.save_weights"
        )
    architecture = get_architecture(arch)  # the file says its architecture; the architecture says its family
    family = family.strip().lower()
    if architecture.family != family or (task is not None and architecture.task != task):
        raise ModelError(
            f"{path}: weights of architecture '{arch}' ({architecture.task}scaling method "
            f"'{architecture.family}'), not of method '{family}'"
        )
    _check_scales(path, metadata, scale)
    source: Source = "hub" if is_hub_reference(weights) else "file"
    model = _network(path.resolve(), device, arch, config)
    return LoadedModel(model, Path(weights).name, source, path, family, architecture.task, arch, scale)


def _from_checkpoint(family: str, scale: float, path: Path, device: str, task: str | None) -> LoadedModel | None:
    """A ``resizer train`` checkpoint (run folder, checkpoint folder or its model file), else ``None``."""
    from .checkpoint_weights import checkpoint_weights, load_checkpoint_network

    ckpt = checkpoint_weights(path, task or "up")
    if ckpt is None:
        return None
    if ckpt.family != family.strip().lower():
        raise ModelError(f"{path}: a training checkpoint of method '{ckpt.family}', not of method '{family}'")
    from ..models import get_family

    if ckpt.scales and not get_family(ckpt.family).any_scale:
        _check_scales(path, {"scales": json.dumps(ckpt.scales)}, scale)
    model = load_checkpoint_network(ckpt, device)
    return LoadedModel(model, ckpt.model_file.parent.name, "file", ckpt.model_file, ckpt.family, ckpt.task, ckpt.arch,
                       scale)


def load(
    family: str,
    scale: float,
    *,
    weights: str | None = None,
    device: str = "cpu",
    task: str | None = None,
    use: str = "any",
    paired_with: str | None = None,
) -> LoadedModel:
    """The pretrained network of method ``family`` for ``scale``, in eval mode on ``device``.

    Without ``weights`` the manifest picks the file (bundled, cached or downloaded, sha256
    verified). With ``weights`` (``--weights``: a file or a ``hf://`` reference) the
    architecture and config come from the file's metadata, which must be of ``family``
    (and ``task``, when given) and serve ``scale``. ``use`` and ``paired_with`` choose among a
    family's manifest entries (:func:`~resizer.weights.manifest.choose_entry`: ``"view"`` refuses
    encode-only pairs, ``"encode"`` prefers them; ``paired_with`` is the downscaler a thumbnail
    records, whose partner restores it). ``device`` is as ``--device`` takes it
    (``auto``: CUDA, else MPS, else CPU). Models are cached per file and device.
    """
    from ..devices import resolve_device

    resolved = str(resolve_device(device))
    if weights is None:
        return _from_manifest(family, scale, resolved, task, use, paired_with)
    return _from_file(family, scale, weights, resolved, task)
