"""The user's own model files: ``resizer models import FILE`` records them so that ``--method NAME`` works.

The list lives in ``models.json`` in resizer's user folder: ``$RESIZER_HOME`` if set, else
the platform's user data folder (``$XDG_DATA_HOME/resizer``, by default
``~/.local/share/resizer``; ``~/Library/Application Support/resizer`` on macOS;
``%APPDATA%\\resizer`` on Windows). The files themselves stay where they are; each entry
records the path, its sha256 and size (a file changed since is refused), what reads it
(``method``: ``community`` for spandrel files, else the resizer family), the architecture
and the scale. The bundled manifest (``weights/manifest.json``) is never written here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from ..files import atomic_write_bytes
from .manifest import _locked_dir

HOME_ENV = "RESIZER_HOME"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def user_home() -> Path:
    """resizer's user folder: ``$RESIZER_HOME``, else the platform's user data folder."""
    override = os.environ.get(HOME_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "resizer"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "resizer"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "resizer"


def user_manifest_path() -> Path:
    """``models.json`` in :func:`user_home`."""
    return user_home() / "models.json"


@dataclass(frozen=True)
class ImportedModel:
    """One imported file: where it is, what it is, and how to check it is still the same file."""

    name: str
    path: str  # absolute
    sha256: str
    size: int
    method: str  # "community" (read by spandrel) or a resizer family ("vdsr", ...)
    arch: str  # spandrel's architecture id, or resizer's architecture name
    scales: list[float]  # the scales it serves; empty: any scale (a resizer any-scale family)
    params: int
    task: str = "up"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "ImportedModel":
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not {"name", "path", "sha256", "method", "arch"} <= set(data):
            raise ModelError(f"{where}: not an imported-model entry")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise ModelError(f"{where}: {exc}") from None

    @property
    def scale_label(self) -> str:
        """``x4``, ``x2, x3`` or ``any`` for humans."""
        return ", ".join(f"x{s:g}" for s in self.scales) or "any"


def read_user_models(path: Path | None = None) -> list[ImportedModel]:
    """The imported models, sorted by name (none when the file does not exist)."""
    path = path or user_manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the imported models ({exc})") from None
    if not isinstance(data, list):
        raise ModelError(f"{path}: must be a JSON list of imported models")
    return sorted((ImportedModel.from_dict(item, f"{path}: entry {i}") for i, item in enumerate(data)),
                  key=lambda m: m.name)


def _write(path: Path, models: list[ImportedModel]) -> None:
    text = json.dumps([asdict(m) for m in sorted(models, key=lambda m: m.name)], indent=2) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"), mode=0o644, fsync=True)


def check_name(name: str) -> str:
    """A valid imported-model name (lower-case letters, digits, '.', '_', '-'), else a ``UsageError``."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"--name {name!r}: use 1 to 64 lower-case letters, digits, '.', '_' or '-' "
                         "(starting with a letter or digit)")
    return name


def add_user_model(model: ImportedModel, *, replace: bool = False) -> Path:
    """Record ``model`` (atomically, under a lock); a name already recorded needs ``replace``."""
    path = user_manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked_dir(path.parent):
        models = read_user_models(path)
        if any(m.name == model.name for m in models) and not replace:
            raise UsageError(f"'{model.name}' is already imported (remove it with 'resizer models remove "
                             f"{model.name}', or choose another --name)")
        _write(path, [m for m in models if m.name != model.name] + [model])
    return path


def remove_user_model(name: str) -> ImportedModel:
    """Forget the imported model ``name`` (its file is left alone); ``UsageError`` if there is none."""
    path = user_manifest_path()
    with _locked_dir(path.parent) if path.parent.is_dir() else _no_lock():
        models = read_user_models(path)
        found = [m for m in models if m.name == name]
        if not found:
            known = ", ".join(m.name for m in models) or "none"
            raise UsageError(f"no imported model '{name}' (imported: {known})")
        _write(path, [m for m in models if m.name != name])
    return found[0]


class _no_lock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
