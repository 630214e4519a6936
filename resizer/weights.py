"""Pretrained weights: the manifest, safetensors I/O, and fetching from the Hugging Face hub.

Every weight file resizer knows is listed in one manifest (``resizer/weights/manifest.json``
in an installation, ``weights/manifest.json`` in the source tree). An entry pairs a file
with the architecture and config that read it, the scales it serves, its sha256 and how it
was trained. Files are either shipped inside the package ("bundled") or downloaded on first
use into the Hugging Face cache ("hub"); both are checked against the manifest's sha256.

Only safetensors is ever read: a pickle can run code when loaded, so a ``.pt``/``.pth``
checkpoint is refused with a message instead of being unpickled.

``--weights`` takes a local file or a hub reference ``hf://OWNER/REPO/PATH.safetensors[@REVISION]``.

Environment: ``RESIZER_MANIFEST`` (use this manifest instead of the bundled one; its
"bundled" files live next to it), ``RESIZER_HUB_REPO`` (hub repo of entries that name
none), and huggingface_hub's own ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``.

Importing this module does not import torch or huggingface_hub; listing the manifest stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal

from .errors import ModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DEFAULT_HUB_REPO",
    "PullResult",
    "WeightsEntry",
    "bundled_dir",
    "clear_model_cache",
    "count_parameters",
    "find_entry",
    "get_entry",
    "hub_repo",
    "load_model",
    "load_weights_into",
    "manifest_path",
    "model_location",
    "parse_hub_reference",
    "pull_weights",
    "read_manifest",
    "read_safetensors_metadata",
    "resolve_user_weights",
    "resolve_weights_file",
    "save_weights",
    "sha256_file",
    "upsert_manifest_entry",
    "validate_manifest",
]

DEFAULT_HUB_REPO = "resizer-project/weights"
DEFAULT_REVISION = "main"
HUB_PREFIX = "hf://"
SCALE_TOLERANCE = 1e-6
Location = Literal["bundled", "cached", "remote"]

_SOURCES = ("bundled", "hub")
_TASKS = ("up", "down")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_SCALE_KEY_RE = re.compile(r"x\d+(\.\d+)?")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_PICKLE_HINT = (
    "looks like a pickled PyTorch checkpoint; resizer only loads safetensors (convert it with "
    "resizer.weights.save_weights after torch.load(..., weights_only=True), and only if you trust its source)"
)

# key -> (accepted types, required). bool is refused where int is wanted (see _type_ok).
_ENTRY_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "arch": ((str,), True),
    "family": ((str,), True),
    "task": ((str,), True),
    "config": ((dict,), True),
    "scales": ((list,), True),
    "file": ((str,), True),
    "sha256": ((str,), True),
    "size": ((int,), True),
    "params": ((int,), True),
    "license": ((str,), True),
    "recipe": ((dict,), True),
    "scores": ((dict,), True),
    "source": ((str,), True),
    "hub_repo": ((str, type(None)), False),
    "hub_revision": ((str, type(None)), False),
}
_RECIPE_SCHEMA: dict[str, tuple[type, ...]] = {
    "data": (str,),
    "steps": (int,),
    "batch": (int,),
    "patch": (int,),
    "schedule": (str,),
    "seed": (int,),
    "hardware": (str,),
    "wall_time_s": (int, float),
    "command": (str,),
}


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class WeightsEntry:
    """One weight file of the manifest: what reads it, what it serves, how it was made.

    ``scales`` empty means the network serves any scale (it takes the scale as an input).
    ``hub_repo``/``hub_revision`` say where a file that is not bundled is downloaded from
    (``None``: ``$RESIZER_HUB_REPO`` or ``resizer-project/weights``, and ``main``).
    ``recipe`` has data, steps, batch, patch, schedule, seed, hardware, wall_time_s and
    command; ``scores`` maps a benchmark set to ``{"x3": {"psnr": .., "ssim": ..}}``.
    """

    name: str
    arch: str
    family: str
    task: str
    config: dict[str, Any]
    scales: list[float]
    file: str
    sha256: str
    size: int
    params: int
    license: str
    recipe: dict[str, Any]
    scores: dict[str, Any]
    source: str = "bundled"
    hub_repo: str | None = None
    hub_revision: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest entry") -> "WeightsEntry":
        """Validate ``data`` (``ModelError`` listing every problem) and build the entry."""
        problems = _entry_problems(data)
        if problems:
            raise ModelError(f"{where}: {'; '.join(problems)}")
        values = {f.name: data.get(f.name, f.default) for f in fields(cls)}
        values["scales"] = [float(s) for s in data["scales"]]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The manifest JSON object, keys in a stable order."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["scales"] = [float(s) for s in self.scales]
        return json.loads(json.dumps(out))  # deep copy, JSON types only

    @property
    def any_scale(self) -> bool:
        """True when the network takes the scale as an input instead of being trained for some."""
        return not self.scales

    def serves(self, scale: float) -> bool:
        """Whether this entry is meant for ``scale`` (exact within 1e-6, or any scale)."""
        return self.any_scale or any(abs(s - scale) <= SCALE_TOLERANCE for s in self.scales)

    @property
    def scales_label(self) -> str:
        """``x2, x3`` or ``any`` for humans."""
        return ", ".join(f"x{_fmt_scale(s)}" for s in self.scales) or "any"

    @property
    def repo(self) -> str:
        """The hub repo this file is downloaded from when it is not bundled."""
        return self.hub_repo or hub_repo()

    @property
    def revision(self) -> str:
        return self.hub_revision or DEFAULT_REVISION


def _fmt_scale(scale: float) -> str:
    return f"{scale:g}"


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list"}
    return " or ".join(names.get(t, "null") for t in types)


def _entry_problems(data: Any) -> list[str]:
    """Everything wrong with one manifest entry, as short phrases."""
    if not isinstance(data, dict):
        return [f"must be a JSON object, not {type(data).__name__}"]
    problems: list[str] = []
    unknown = sorted(set(data) - set(_ENTRY_SCHEMA))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(map(repr, unknown))}")
    for key, (types, required) in _ENTRY_SCHEMA.items():
        if key not in data:
            if required:
                problems.append(f"missing key '{key}'")
        elif not _type_ok(data[key], types):
            problems.append(f"'{key}' must be {_type_names(types)}, not {type(data[key]).__name__}")
    if problems:
        return problems

    if not _NAME_RE.fullmatch(data["name"]):
        problems.append(f"'name' {data['name']!r} must be lower-case letters, digits, '.', '_' or '-'")
    for key in ("arch", "family", "license"):
        if not data[key].strip():
            problems.append(f"'{key}' must not be empty")
    if data["task"] not in _TASKS:
        problems.append(f"'task' must be one of {', '.join(_TASKS)}, not {data['task']!r}")
    if data["source"] not in _SOURCES:
        problems.append(f"'source' must be one of {', '.join(_SOURCES)}, not {data['source']!r}")
    scales = data["scales"]
    if not all(_type_ok(s, (int, float)) and math.isfinite(s) and s > 0 for s in scales):
        problems.append("'scales' must be positive numbers")
    elif len({round(float(s), 6) for s in scales}) != len(scales):
        problems.append("'scales' has duplicates")
    problems += _file_problems(data["file"], data["source"])
    if not _SHA_RE.fullmatch(data["sha256"]):
        problems.append("'sha256' must be 64 lower-case hex digits")
    for key in ("size", "params"):
        if data[key] < 0:
            problems.append(f"'{key}' must not be negative")
    for key, types in _RECIPE_SCHEMA.items():
        if key not in data["recipe"]:
            problems.append(f"'recipe' is missing '{key}'")
        elif not _type_ok(data["recipe"][key], types):
            problems.append(f"'recipe.{key}' must be {_type_names(types)}")
    problems += _score_problems(data["scores"])
    try:
        json.dumps(data["config"], allow_nan=False)
    except (TypeError, ValueError):
        problems.append("'config' must hold JSON values only")
    return problems


def _file_problems(file: str, source: str) -> list[str]:
    parts = file.split("/")
    if not file.endswith(".safetensors"):
        return [f"'file' {file!r} must end in .safetensors"]
    if file.startswith("/") or "\\" in file or any(p in ("", ".", "..") for p in parts):
        return [f"'file' {file!r} must be a relative path inside the repo, with '/' separators"]
    if source == "bundled" and len(parts) > 1:
        return [f"'file' {file!r} of a bundled entry must be a bare file name (it lies next to the manifest)"]
    return []


def _score_problems(scores: dict[str, Any]) -> list[str]:
    for dataset, by_scale in scores.items():
        if not isinstance(by_scale, dict):
            return [f"'scores.{dataset}' must be an object like {{\"x3\": {{\"psnr\": 30.1, \"ssim\": 0.9}}}}"]
        for scale_key, metrics in by_scale.items():
            if not _SCALE_KEY_RE.fullmatch(scale_key):
                return [f"'scores.{dataset}' key {scale_key!r} must look like 'x3'"]
            if not isinstance(metrics, dict) or not all(
                isinstance(k, str) and _type_ok(v, (int, float)) for k, v in metrics.items()
            ):
                return [f"'scores.{dataset}.{scale_key}' must map metric names to numbers"]
    return []


def validate_manifest(data: Any, source: str = "manifest") -> list[WeightsEntry]:
    """Check parsed manifest JSON (a list of entries) and return the entries.

    Raises ``ModelError`` naming ``source``, the entry and every problem found.
    """
    if not isinstance(data, list):
        raise ModelError(f"{source}: must be a JSON list of entries, not {type(data).__name__}")
    entries: list[WeightsEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        label = item.get("name") if isinstance(item, dict) else None
        where = f"{source}: entry {index}" + (f" ('{label}')" if isinstance(label, str) else "")
        entry = WeightsEntry.from_dict(item, where=where)
        if entry.name in seen:
            raise ModelError(f"{where}: the name '{entry.name}' is listed twice")
        seen.add(entry.name)
        entries.append(entry)
    return entries


def bundled_dir() -> Path:
    """The folder of the shipped manifest and weight files.

    In a wheel it is ``resizer/weights/`` beside this module; in a source checkout or an
    editable install it is the top-level ``weights/`` folder. (``importlib.resources``
    cannot name it: ``resizer.weights`` is this module.)
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent / "weights"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise ModelError(f"this installation of resizer has no weights manifest (looked in {here / 'weights'})")


def manifest_path() -> Path:
    """``$RESIZER_MANIFEST`` if set, else the bundled manifest."""
    override = os.environ.get("RESIZER_MANIFEST")
    return Path(override).expanduser() if override else bundled_dir() / "manifest.json"


@contextlib.contextmanager
def manifest_override(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, the manifest (and so every ``--method`` lookup) is ``path``.

    For scoring weights just exported to a manifest that is not the active one (a
    training run's ``--manifest``). Not thread-safe: it sets ``$RESIZER_MANIFEST``.
    """
    old = os.environ.get("RESIZER_MANIFEST")
    os.environ["RESIZER_MANIFEST"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RESIZER_MANIFEST", None)
        else:
            os.environ["RESIZER_MANIFEST"] = old


_default_manifest_path = manifest_path  # ``upsert_manifest_entry``'s argument shadows the name


def read_manifest(path: str | os.PathLike[str] | None = None) -> list[WeightsEntry]:
    """Parse and validate a manifest (default: ``manifest_path()``)."""
    path = Path(path) if path is not None else manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: weights manifest not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the weights manifest ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return validate_manifest(data, source=str(path))


@contextlib.contextmanager
def _locked_dir(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of a manifest between processes (POSIX only; no lock file left)."""
    try:
        import fcntl
    except ImportError:  # Windows: best effort
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` so that readers see the old or the new content, never half of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def upsert_manifest_entry(entry: WeightsEntry, manifest_path: str | os.PathLike[str] | None = None) -> Path:
    """Add ``entry`` to the manifest or replace the one of the same name; keep it sorted by name.

    The entry is validated first and the file is replaced atomically. Returns the manifest path.
    """
    path = Path(manifest_path) if manifest_path is not None else _default_manifest_path()
    checked = WeightsEntry.from_dict(entry.to_dict(), where=f"{path}: entry '{entry.name}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked_dir(path.parent):
        entries = read_manifest(path) if path.exists() else []
        entries = [e for e in entries if e.name != checked.name] + [checked]
        entries.sort(key=lambda e: e.name)
        text = json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False) + "\n"
        _write_atomically(path, text.encode("utf-8"))
    return path


def get_entry(name: str, entries: list[WeightsEntry] | None = None) -> WeightsEntry:
    """The manifest entry called ``name``; ``UsageError`` listing the names otherwise."""
    entries = read_manifest() if entries is None else entries
    for entry in entries:
        if entry.name == name.strip():
            return entry
    known = ", ".join(e.name for e in entries) or "none: the manifest is empty"
    raise UsageError(f"unknown weights '{name}' (available: {known})")


def find_entry(
    family: str, scale: float, *, task: str | None = None, entries: list[WeightsEntry] | None = None
) -> WeightsEntry:
    """The entry of method ``family`` serving ``scale`` (exact within 1e-6, else one serving any scale).

    ``UsageError`` lists the scales the family has; ``ModelError`` when it has no weights at all.
    """
    entries = read_manifest() if entries is None else entries
    family = family.strip().lower()
    candidates = [e for e in entries if e.family.lower() == family and (task is None or e.task == task)]
    if not candidates:
        what = f"method '{family}'" + (f" ({task}scaling)" if task else "")
        raise ModelError(f"no pretrained weights for {what} in {manifest_path()}")
    exact = [e for e in candidates if not e.any_scale and e.serves(scale)]
    generic = [e for e in candidates if e.any_scale]
    for group in (exact, generic):
        if group:
            return sorted(group, key=lambda e: e.name)[0]
    available = sorted({s for e in candidates for s in e.scales})
    listed = ", ".join(f"x{_fmt_scale(s)}" for s in available)
    raise UsageError(f"method '{family}' has weights for {listed} only, not x{_fmt_scale(scale)}")


# --------------------------------------------------------------------------- safetensors I/O


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_parameters(model: "nn.Module") -> int:
    """Number of parameters (the manifest's ``params``)."""
    return sum(p.numel() for p in model.parameters())


def save_weights(
    model: "nn.Module",
    path: str | os.PathLike[str],
    *,
    arch: str,
    config: dict[str, Any],
    scales: list[float] | None = None,
) -> tuple[str, int]:
    """Write ``model``'s state dict as safetensors; return ``(sha256, size)`` for the manifest.

    The metadata records ``format=resizer``, ``arch`` and ``config`` (JSON), so the file can be
    used with ``--weights`` alone; ``scales`` (optional) lets ``load_model`` refuse a wrong scale.
    The file is written atomically.
    """
    from safetensors.torch import save_file

    path = Path(path)
    try:
        config_json = json.dumps(config or {}, sort_keys=True, allow_nan=False)
        metadata = {"format": "resizer", "arch": arch, "config": config_json}
        if scales is not None:
            metadata["scales"] = json.dumps([float(s) for s in scales])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: config of '{arch}' is not JSON-serialisable ({exc})") from None
    # Clone: safetensors refuses tensors sharing storage, and non-contiguous views.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return sha256_file(path), path.stat().st_size


def _read_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check the safetensors header without torch; ``ModelError`` on anything odd."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(9)
            header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
            plausible = head[8:9] == b"{" and 2 <= header_len <= _MAX_HEADER
            if not plausible and (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
                # a zip (torch.save since 1.6) or a bare pickle (older torch.save, pickle.dump)
                raise ModelError(f"{path}: {_PICKLE_HINT}")
            if not plausible:
                raise ModelError(f"{path}: not a safetensors file ({size} bytes without a safetensors header)")
            if 8 + header_len > size:
                raise ModelError(
                    f"{path}: truncated safetensors file (its header alone needs {8 + header_len} bytes, file has {size})"
                )
            handle.seek(8)
            raw = handle.read(header_len)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such weights file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a weights file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise ModelError(f"{path}: not a safetensors file (its header is not a JSON object)") from None
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise ModelError(f"{path}: corrupt safetensors header (tensor '{key}')") from None
    if 8 + header_len + end != size:
        raise ModelError(
            f"{path}: truncated or corrupt safetensors file ({size} bytes, the header describes {8 + header_len + end})"
        )
    return header


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (``{}`` if none); validates the header, no torch."""
    metadata = _read_header(Path(path)).get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def _metadata_config(path: Path, metadata: dict[str, str]) -> dict[str, Any] | None:
    if "config" not in metadata:
        return None
    try:
        config = json.loads(metadata["config"])
        if not isinstance(config, dict):
            raise ValueError
    except ValueError:
        raise ModelError(f"{path}: the 'config' metadata is not a JSON object") from None
    return config


def _few(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_weights_into(
    model_or_arch: "nn.Module | str",
    path: str | os.PathLike[str],
    config: dict[str, Any] | None = None,
    *,
    expected_sha256: str | None = None,
) -> "nn.Module":
    """Load a safetensors file into a model (or into a new ``arch`` built with ``config``).

    With an architecture name and no ``config``, the config stored in the file is used.
    Never unpickles: garbage, truncated or pickled files, a sha256 other than
    ``expected_sha256``, and missing, unexpected or mis-shaped tensors all raise
    ``ModelError`` naming the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    header = _read_header(path)
    metadata = header.get("__metadata__") or {}
    if expected_sha256 is not None:
        actual = _verified_sha256(path)
        if actual != expected_sha256:
            raise ModelError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected_sha256[:12]}…; "
                "the file is corrupt or not the one the manifest lists"
            )
    if isinstance(model_or_arch, str):
        from .models import create_model

        arch = model_or_arch
        saved_arch = metadata.get("arch")
        if metadata.get("format") == "resizer" and saved_arch and saved_arch != arch:
            raise ModelError(f"{path}: weights of architecture '{saved_arch}', not '{arch}'")
        if config is None:
            config = _metadata_config(path, metadata)
        model = create_model(arch, config)
    else:
        model = model_or_arch

    expected = model.state_dict()
    tensors_info = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(tensors_info))
    unexpected = sorted(set(tensors_info) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise ModelError(f"{path}: tensors do not match the architecture ({'; '.join(parts)})")
    for key, value in expected.items():
        shape = tuple(tensors_info[key].get("shape", ()))
        if shape != tuple(value.shape):
            raise ModelError(
                f"{path}: tensor '{key}' has shape {list(shape)} in the file but the model expects {list(value.shape)}"
            )
    try:
        tensors = load_file(path, device="cpu")
        model.load_state_dict(tensors, strict=True)
    except (SafetensorError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the tensors ({_first_line(exc)})") from None
    return model


# --------------------------------------------------------------------------- hub


def hub_repo() -> str:
    """The default hub repo: ``$RESIZER_HUB_REPO`` or ``resizer-project/weights``."""
    return os.environ.get("RESIZER_HUB_REPO", "").strip() or DEFAULT_HUB_REPO


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads it once, at import)."""
    from huggingface_hub import constants

    return _is_true(os.environ.get("HF_HUB_OFFLINE")) or bool(constants.HF_HUB_OFFLINE)


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _verified_sha256(path: Path) -> str:
    """sha256 of ``path``, memoised on (real path, size, mtime) so repeated loads hash once."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(real)
    return _SHA_MEMO[key]


def _check_file(entry: WeightsEntry, path: Path, origin: str) -> Path:
    actual_size = path.stat().st_size
    actual = _verified_sha256(path)
    if actual != entry.sha256 or actual_size != entry.size:
        raise ModelError(
            f"{path}: {origin} weights '{entry.name}' have sha256 {actual[:12]}… ({actual_size} bytes), "
            f"the manifest says {entry.sha256[:12]}… ({entry.size} bytes); refusing to use them"
        )
    return path


def _local_file(entry: WeightsEntry) -> Path:
    return manifest_path().parent / entry.file


def _hub_download(repo: str, filename: str, revision: str, *, hint: str) -> Path:
    """``hf_hub_download`` into the HF cache, its errors turned into one-line ``ModelError``s."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hf_errors

    where = f"{repo}/{filename}@{revision}"
    offline = _offline()
    try:
        return Path(
            hf_hub_download(
                repo_id=repo,
                filename=filename,
                revision=revision,
                local_files_only=offline,
                library_name="resizer",
            )
        )
    except hf_errors.LocalEntryNotFoundError as exc:
        if offline:
            raise ModelError(f"{where} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {hint}") from None
        reason = _first_line(exc.__cause__ or exc)
        raise ModelError(
            f"{where} is not in the Hugging Face cache and could not be fetched from {constants.ENDPOINT} "
            f"({reason}): {hint}"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise ModelError(f"{where}: revision '{revision}' not found on {constants.ENDPOINT}") from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelError(f"{where}: repository '{repo}' not found on {constants.ENDPOINT} (or it is private)") from None
    except hf_errors.EntryNotFoundError:
        raise ModelError(f"{where}: no such file in the repository") from None
    except (OSError, ValueError) as exc:  # HfHubHTTPError is an OSError
        raise ModelError(f"{where}: download failed ({_first_line(exc)}): {hint}") from None
    except Exception as exc:  # httpx transport errors (proxy, protocol) are not OSErrors
        if type(exc).__module__.split(".")[0] not in {"httpx", "httpx2", "httpcore", "huggingface_hub"}:
            raise
        raise ModelError(f"{where}: download failed ({type(exc).__name__}: {_first_line(exc)}): {hint}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _pull_hint(entry: WeightsEntry) -> str:
    return f'run "resizer models pull {entry.name}" while online, or pass --weights FILE'


def model_location(entry: WeightsEntry) -> Location:
    """Where the file of ``entry`` is now: shipped with resizer, in the HF cache, or only on the hub.

    "cached" means usable offline: a cached copy whose sha256 differs counts as "remote".
    """
    if _local_file(entry).is_file():
        return "bundled"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.repo, entry.file, revision=entry.revision)
    if isinstance(cached, str) and _verified_sha256(Path(cached)) == entry.sha256:
        return "cached"
    return "remote"


def resolve_weights_file(entry: WeightsEntry) -> Path:
    """A local, sha256-verified path to ``entry``'s file: bundled, else cached, else downloaded.

    A cached copy whose sha256 matches is used without asking the hub (the hash pins the
    content). A download that does not match is refused but left in the HF cache.
    """
    local = _local_file(entry)
    if local.is_file():
        return _check_file(entry, local, "bundled")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.repo, entry.file, revision=entry.revision)
    if isinstance(cached, str) and _verified_sha256(Path(cached)) == entry.sha256:
        return Path(cached)
    path = _hub_download(entry.repo, entry.file, entry.revision, hint=_pull_hint(entry))
    return _check_file(entry, path, "downloaded")


@dataclass(frozen=True)
class PullResult:
    """What ``pull_weights`` did: ``status`` is "bundled", "cached" or "downloaded"."""

    entry: WeightsEntry
    path: Path
    status: str


def pull_weights(name: str) -> PullResult:
    """Make the weights ``name`` available offline (download into the HF cache and verify)."""
    entry = get_entry(name)
    before = model_location(entry)
    path = resolve_weights_file(entry)
    status = {"bundled": "bundled", "cached": "cached"}.get(before, "downloaded")
    return PullResult(entry, path, status)


def parse_hub_reference(spec: str) -> tuple[str, str, str]:
    """Split ``hf://OWNER/REPO/PATH/FILE.safetensors[@REVISION]`` into (repo, path, revision)."""
    if not spec.startswith(HUB_PREFIX):
        raise UsageError(f"not a hub reference: {spec!r} (expected {HUB_PREFIX}OWNER/REPO/FILE.safetensors[@REVISION])")
    body, revision = spec[len(HUB_PREFIX) :], DEFAULT_REVISION
    at = body.rfind("@")
    if at != -1 and body[:at].endswith(".safetensors"):
        body, revision = body[:at], body[at + 1 :]
    parts = body.split("/")
    if (
        len(parts) < 3
        or any(p in ("", ".", "..") for p in parts)
        or not revision
        or not parts[-1].endswith(".safetensors")
    ):
        raise UsageError(f"bad hub reference {spec!r} (expected {HUB_PREFIX}OWNER/REPO/FILE.safetensors[@REVISION])")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def resolve_user_weights(spec: str) -> Path:
    """The local path for ``--weights``: a file, or ``hf://OWNER/REPO/FILE.safetensors[@REVISION]``
    downloaded into (or found in) the Hugging Face cache."""
    if spec.startswith(HUB_PREFIX):
        repo, filename, revision = parse_hub_reference(spec)
        hint = "run the command once while online, or pass a local --weights FILE"
        return _hub_download(repo, filename, revision, hint=hint)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(
            f"{spec}: no such weights file (hub references look like {HUB_PREFIX}OWNER/REPO/FILE.safetensors[@REVISION])"
        )
    if path.is_dir():
        raise ModelError(f"{spec}: is a folder, not a weights file")
    return path


# --------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=8)
def _cached_model(path: str, stamp: tuple[int, int], device: str, arch: str, config_json: str) -> "nn.Module":
    model = load_weights_into(arch, path, json.loads(config_json))
    return model.to(device).eval()


def clear_model_cache() -> None:
    """Forget the models ``load_model`` keeps (tests, or to free memory)."""
    _cached_model.cache_clear()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def load_model(
    family: str,
    scale: float,
    *,
    weights: str | None = None,
    device: str = "cpu",
    task: str | None = None,
) -> "tuple[nn.Module, WeightsEntry | None]":
    """The pretrained network of method ``family`` for ``scale``, in eval mode on ``device``.

    Without ``weights`` the manifest picks the file (bundled, cached or downloaded, sha256
    verified) and the entry is returned too. With ``weights`` (``--weights``: a file or a
    ``hf://`` reference) the architecture and config come from the file's metadata, and the
    entry is ``None``. ``device`` is a torch device or "auto" (cuda, else mps, else cpu).
    Models are cached per file and device: callers share them and must not modify them
    (convert a copy for half precision).
    """
    import torch

    if device == "auto":
        mps = getattr(torch.backends, "mps", None)
        device = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
    try:
        device = str(torch.device(device))
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"unknown device '{device}' (cpu, cuda, cuda:N, mps)") from None
    if weights is None:
        entry = find_entry(family, scale, task=task)
        path = resolve_weights_file(entry)
        config_json = json.dumps(entry.config, sort_keys=True)
        return _cached_model(str(path), _stamp(path), device, entry.arch, config_json), entry

    from .models import get_architecture

    path = resolve_user_weights(weights)
    metadata = read_safetensors_metadata(path)
    arch = metadata.get("arch")
    config = _metadata_config(path, metadata)
    if metadata.get("format") != "resizer" or not arch or config is None:
        raise ModelError(
            f"{path}: no resizer metadata (format, arch, config); --weights takes files written by "
            "resizer.weights.save_weights"
        )
    architecture = get_architecture(arch)
    family = family.strip().lower()
    if architecture.family != family or (task is not None and architecture.task != task):
        raise ModelError(
            f"{path}: weights of architecture '{arch}' ({architecture.task}scaling method "
            f"'{architecture.family}'), not of method '{family}'"
        )
    if "scales" in metadata:
        try:
            scales = [float(s) for s in json.loads(metadata["scales"])]
        except (ValueError, TypeError):
            raise ModelError(f"{path}: the 'scales' metadata is not a list of numbers") from None
        if scales and not any(abs(s - scale) <= SCALE_TOLERANCE for s in scales):
            listed = ", ".join(f"x{_fmt_scale(s)}" for s in scales)
            raise UsageError(f"{path}: weights trained for {listed}, not x{_fmt_scale(scale)}")
    config_json = json.dumps(config, sort_keys=True)
    return _cached_model(str(path.resolve()), _stamp(path), device, arch, config_json), None
