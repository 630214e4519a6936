"""``resizer models import FILE [--name NAME]``: check a local model file and record it for ``--method NAME``."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ModelError, UsageError
from .infer import describe_weights
from .safetensors_io import sha256_file
from .user_manifest import ImportedModel, add_user_model, check_name


def default_name(path: Path) -> str:
    """The file's stem in lower case, other characters as '-' (``RealESRGAN_x4plus.pth`` -> ``realesrgan_x4plus``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")
    return name[:64] or "model"


def import_model(file: str, name: str | None = None) -> tuple[ImportedModel, Path]:
    """Detect what ``file`` is (loading it the way ``--weights`` does) and record it; returns the entry and manifest.

    A name of a method resizer has (``lanczos``, ``car``, ...) is refused, so an import never hides one.
    """
    from ..methods import _REGISTRY, list_methods

    path = Path(file).expanduser()
    if not path.is_file():
        raise ModelError(f"{file}: no such model file")
    chosen = check_name(name if name is not None else default_name(path))
    list_methods()  # every provider registered, so that a built-in name is known
    if chosen in _REGISTRY:
        raise UsageError(f"--name {chosen}: a method of resizer's own; choose another --name")
    facts = describe_weights(str(path))
    if facts.kind == "checkpoint":
        raise UsageError(f"{file}: a training checkpoint; export it with 'resizer train --export' and import that file")
    resolved = path.resolve()
    model = ImportedModel(chosen, str(resolved), sha256_file(resolved), resolved.stat().st_size, facts.method,
                          facts.arch, list(facts.scales), facts.params, facts.task)
    return model, add_user_model(model)
