"""What a weights file is, from the file alone: which ``--method`` reads it, its architecture and scales.

``--weights FILE`` without ``--method`` and ``resizer models import`` both ask here. resizer's
own safetensors name their architecture in their metadata (and so their family); a
``resizer train`` checkpoint names it in its run's ``config.json``; any other ``.pth``,
``.ckpt`` or ``.safetensors`` is a community file, read by spandrel (``method`` "community").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from .hub import resolve_user_weights

COMMUNITY_METHOD = "community"


@dataclass(frozen=True)
class WeightsFacts:
    """``method`` reads the file; ``kind`` is "resizer", "checkpoint" or "community"."""

    path: Path
    method: str
    arch: str
    kind: str
    scales: tuple[float, ...]  # () for any scale
    params: int
    task: str = "up"


def _resizer_facts(path: Path) -> WeightsFacts | None:
    from .safetensors_io import read_safetensors_metadata

    if path.suffix.lower() != ".safetensors":
        return None
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != "resizer" or not metadata.get("arch"):
        return None
    from ..models import get_architecture, get_family

    architecture = get_architecture(metadata["arch"])
    try:
        scales = tuple(float(s) for s in json.loads(metadata.get("scales", "[]")))
    except (ValueError, TypeError):
        raise ModelError(f"{path}: the 'scales' metadata is not a list of numbers") from None
    if get_family(architecture.family).any_scale:
        scales = ()
    return WeightsFacts(path, architecture.family, architecture.name, "resizer", scales, 0, architecture.task)


def _checkpoint_facts(path: Path) -> WeightsFacts | None:
    from ..models import get_family
    from .checkpoint_weights import checkpoint_weights

    ckpt = checkpoint_weights(path)
    if ckpt is None:
        return None
    scales = () if get_family(ckpt.family).any_scale else tuple(ckpt.scales)
    return WeightsFacts(path, ckpt.family, ckpt.arch, "checkpoint", scales, 0)


def describe_weights(spec: str) -> WeightsFacts:
    """The facts of the ``--weights`` value ``spec`` (a hub reference is fetched first)."""
    path = resolve_user_weights(spec)
    facts = _checkpoint_facts(path) or _resizer_facts(path)
    if facts is not None:
        return facts
    from .community import inspect_file

    found = inspect_file(path)
    return WeightsFacts(path, COMMUNITY_METHOD, found.arch, "community", (float(found.scale),), found.params)


def infer_method(spec: str) -> str:
    """The ``--method`` that reads ``spec`` (see :func:`describe_weights`)."""
    return describe_weights(spec).method
