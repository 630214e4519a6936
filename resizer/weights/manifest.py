"""The weights manifest: one JSON list of entries, each pairing a file with what reads it.

This module owns the entry schema (:class:`WeightsEntry` and its validation), where the
active manifest is (``$RESIZER_MANIFEST``, else the bundled one), reading it, adding an
entry under a lock, and choosing the entry a ``--method`` and scale stand for. It knows
nothing of torch, safetensors files or the hub beyond the names an entry records.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from ..errors import ModelError, UsageError
from ..files import atomic_write_bytes

DEFAULT_HUB_REPO = "resizer-project/weights"
DEFAULT_REVISION = "main"
BUNDLED_PACKAGE = "resizer.bundled_weights"  # the top-level weights/ folder, as installed
SCALE_TOLERANCE = 1e-6

_SOURCES = ("bundled", "hub")
_TASKS = ("up", "down")
# What an entry's thumbnails are for: "view" (the default: ``down`` may show them) or "encode"
# (a pair whose small image only a codec sees: ``resizer encode`` and the decoding of its files only).
USES = ("view", "encode")
ENCODE_ONLY = "encode"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_SCALE_KEY_RE = re.compile(r"x\d+(\.\d+)?")

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
    "precision": ((dict,), False),
    "use": ((str,), False),
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


def hub_repo() -> str:
    """The hub repo of entries that name none: ``$RESIZER_HUB_REPO`` or ``resizer-project/weights``.

    It lives with the manifest because ``"hub_repo": null`` in an entry means this default.
    """
    return os.environ.get("RESIZER_HUB_REPO", "").strip() or DEFAULT_HUB_REPO


def format_scale(scale: float) -> str:
    """``2``, ``2.5``: a scale as messages and labels print it (after an ``x``)."""
    return f"{scale:g}"


@dataclass(frozen=True)
class WeightsEntry:
    """One weight file of the manifest: what reads it, what it serves, how it was made.

    ``scales`` empty means the network serves any scale (it takes the scale as an input).
    ``hub_repo``/``hub_revision`` say where a file that is not bundled is downloaded from
    (``None``: ``$RESIZER_HUB_REPO`` or ``resizer-project/weights``, and ``main``).
    ``recipe`` has data, steps, batch, patch, schedule, seed, hardware, wall_time_s and
    command; ``scores`` maps a benchmark set to ``{"x3": {"psnr": .., "ssim": ..}}``.
    ``precision`` (optional) holds the measured cost and speed of each low precision per
    device kind (:mod:`resizer.precision`, written by ``benchmarks/measure_precision.py``);
    ``--precision auto`` reads it. Re-exported weights start without it: a measurement
    belongs to one file. ``use`` (optional, ``"view"`` when absent) is ``"encode"`` for a pair
    trained for ``resizer encode`` alone, whose thumbnails nobody looks at (they may trade
    their fidelity to the picture for a better round trip): ``down``/``up --method`` and the
    API never pick it, ``encode`` prefers it, and the files it made decode with it.
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
    precision: dict[str, Any] = field(default_factory=dict)
    use: str = "view"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest entry") -> "WeightsEntry":
        """Validate ``data`` (``ModelError`` listing every problem) and build the entry."""
        problems = _entry_problems(data)
        if problems:
            raise ModelError(f"{where}: {'; '.join(problems)}")
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["scales"] = [float(s) for s in data["scales"]]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The manifest JSON object, keys in a stable order."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["scales"] = [float(s) for s in self.scales]
        if not self.precision:
            del out["precision"]  # entries never measured keep their old shape
        if self.use == "view":
            del out["use"]  # as do entries for every use
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
        return ", ".join(f"x{format_scale(s)}" for s in self.scales) or "any"

    @property
    def encode_only(self) -> bool:
        """A pair half for ``resizer encode`` alone: its thumbnails are not for viewing."""
        return self.use == ENCODE_ONLY

    @property
    def pair_stem(self) -> str:
        """The name both halves of a pair share (``dsn-x2`` for ``dsn-x2-down`` and ``dsn-x2-up``)."""
        suffix = f"-{self.task}"
        return self.name[: -len(suffix)] if self.name.endswith(suffix) else self.name

    @property
    def repo(self) -> str:
        """The hub repo this file is downloaded from when it is not bundled."""
        return self.hub_repo or hub_repo()

    @property
    def revision(self) -> str:
        """The hub revision (branch, tag or commit) of the file; ``main`` unless the entry pins one."""
        return self.hub_revision or DEFAULT_REVISION


# --------------------------------------------------------------------------- validation


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list"}
    return " or ".join(names.get(t, "null") for t in types)


def _shape_problems(data: dict[str, Any]) -> list[str]:
    """Unknown keys, missing keys and values of the wrong JSON type."""
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
    return problems


def _entry_problems(data: Any) -> list[str]:
    """Everything wrong with one manifest entry, as short phrases."""
    if not isinstance(data, dict):
        return [f"must be a JSON object, not {type(data).__name__}"]
    problems = _shape_problems(data)
    if problems:
        return problems

    if not _NAME_RE.fullmatch(data["name"]):
        problems.append(f"'name' {data['name']!r} must be lower-case letters, digits, '.', '_' or '-'")
    for key in ("arch", "family", "license"):
        if not data[key].strip():
            problems.append(f"'{key}' must not be empty")
    if data["task"] not in _TASKS:
        problems.append(f"'task' must be one of {', '.join(_TASKS)}, not {data['task']!r}")
    if data.get("use", "view") not in USES:
        problems.append(f"'use' must be one of {', '.join(USES)}, not {data['use']!r}")
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


# --------------------------------------------------------------------------- where the manifest is


def bundled_dir() -> Path:
    """The folder of the shipped manifest and weight files.

    In a source checkout (editable install or not) it is the top-level ``weights/``
    folder; installed from a wheel, it is that folder under the package name
    ``resizer.bundled_weights``, found with ``importlib.resources`` (``resizer.weights``
    is this code).
    """
    # The checkout's folder first: code run from a work tree (PYTHONPATH) next to an
    # editable install of another tree must read its own weights, not the installed ones.
    candidates = [Path(__file__).resolve().parents[2] / "weights"]
    try:
        installed = resources.files(BUNDLED_PACKAGE) / "manifest.json"
    except ModuleNotFoundError:
        pass
    else:
        if isinstance(installed, Path):  # a folder on disk, not inside a zip
            candidates.append(installed.parent)
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    raise ModelError(f"this installation of resizer has no weights manifest (package {BUNDLED_PACKAGE} not found)")


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


# --------------------------------------------------------------------------- reading and writing


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


_active_manifest_path = manifest_path  # ``upsert_manifest_entry``'s keyword shadows the name


def upsert_manifest_entry(entry: WeightsEntry, manifest_path: str | os.PathLike[str] | None = None) -> Path:
    """Add ``entry`` to the manifest or replace the one of the same name; keep it sorted by name.

    The entry is validated first and the file is replaced atomically (readers never see
    half a manifest), under a lock on its folder (two exports never lose each other's
    entry). Returns the manifest path.
    """
    path = Path(manifest_path) if manifest_path is not None else _active_manifest_path()
    checked = WeightsEntry.from_dict(entry.to_dict(), where=f"{path}: entry '{entry.name}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked_dir(path.parent):
        entries = read_manifest(path) if path.exists() else []
        entries = [e for e in entries if e.name != checked.name] + [checked]
        entries.sort(key=lambda e: e.name)
        text = json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"), mode=0o644, fsync=True)
    return path


# --------------------------------------------------------------------------- choosing an entry


def get_entry(name: str, entries: list[WeightsEntry] | None = None) -> WeightsEntry:
    """The manifest entry called ``name``; ``UsageError`` listing the names otherwise."""
    entries = read_manifest() if entries is None else entries
    for entry in entries:
        if entry.name == name.strip():
            return entry
    known = ", ".join(e.name for e in entries) or "none: the manifest is empty"
    raise UsageError(f"unknown weights '{name}' (available: {known})")


# ``use`` of a lookup -> the entry uses it may pick, best first. "view": what ``down``/``up --method``
# and the API run (their thumbnails are seen); "encode": ``resizer encode``; "any": view first.
_PICKED: dict[str, tuple[str, ...]] = {"view": ("view",), "encode": ("encode", "view"), "any": ("view", "encode")}


def find_entry(
    family: str, scale: float, *, task: str | None = None, entries: list[WeightsEntry] | None = None,
    use: str = "any",
) -> WeightsEntry:
    """The entry of method ``family`` serving ``scale`` (exact within 1e-6, else one serving any scale).

    ``use`` says who asks (``_PICKED``): ``"view"`` never gets an encode-only entry (a
    ``UsageError`` says why when only such a pair serves the scale), ``"encode"`` prefers one.
    ``UsageError`` lists the scales the family has; ``ModelError`` when it has no weights at all.
    """
    entries = read_manifest() if entries is None else entries
    family = family.strip().lower()
    candidates = [e for e in entries if e.family.lower() == family and (task is None or e.task == task)]
    if not candidates:
        what = f"method '{family}'" + (f" ({task}scaling)" if task else "")
        raise ModelError(f"no pretrained weights for {what} in {manifest_path()}")
    picked = _PICKED[use]
    exact = [e for e in candidates if not e.any_scale and e.serves(scale) and e.use in picked]
    generic = [e for e in candidates if e.any_scale and e.use in picked]
    for group in (exact, generic):
        if group:
            return sorted(group, key=lambda e: (picked.index(e.use), e.name))[0]
    hidden = [e for e in candidates if e.serves(scale)]
    if hidden:
        raise UsageError(_encode_only_refusal(hidden[0], scale, entries))
    available = sorted({s for e in candidates for s in e.scales})
    listed = ", ".join(f"x{format_scale(s)}" for s in available)
    raise UsageError(f"method '{family}' has weights for {listed} only, not x{format_scale(scale)}")


def _encode_only_refusal(entry: WeightsEntry, scale: float, entries: list[WeightsEntry]) -> str:
    """Why ``down``/``up --method`` will not run an encode-only pair, and what to run instead."""
    others = sorted({e.family for e in entries if e.task == "down" and not e.encode_only and e.serves(scale)})
    instead = f"--method {' or --method '.join(others)}" if others else "a classical --method such as lanczos"
    at = f"x{format_scale(scale)}"
    if entry.task == "down":
        return (f"method '{entry.family}' has only an encode-only pair at {at} ('{entry.pair_stem}': its thumbnails "
                f"are made for a codec, not for viewing); use 'resizer encode --method {entry.family}' or {instead}")
    return (f"method '{entry.family}' has only an encode-only pair at {at} ('{entry.pair_stem}': its upscaler "
            f"restores the files 'resizer encode' makes, with 'resizer decode'); enlarge other images with "
            f"another --method")


def paired_entry(family: str, scale: float, task: str, made_by: str,
                 entries: list[WeightsEntry] | None = None) -> WeightsEntry | None:
    """The ``task`` half of the pair whose downscaler ``made_by`` made a thumbnail (``resizer:model``).

    ``made_by`` is a manifest entry's name, or the file name of the ``--weights`` it was made
    with (a manifest entry's file). Its partner shares its pair stem (``NAME-down`` and
    ``NAME-up``), else its scales and use. ``None`` when the manifest knows no such downscaler.
    """
    entries = read_manifest() if entries is None else entries
    family = family.strip().lower()
    mine = [e for e in entries if e.family.lower() == family]
    maker = next((e for e in mine if e.task == "down" and made_by in (e.name, e.file)), None)
    if maker is None:
        return None
    if task == "down":
        return maker
    halves = [e for e in mine if e.task == task and e.serves(scale)]
    for same in (lambda e: e.pair_stem == maker.pair_stem,
                 lambda e: e.use == maker.use and sorted(e.scales) == sorted(maker.scales)):
        match = sorted((e for e in halves if same(e)), key=lambda e: e.name)
        if match:
            return match[0]
    return None


def choose_entry(family: str, scale: float, *, task: str | None = None, use: str = "any",
                 paired_with: str | None = None, entries: list[WeightsEntry] | None = None) -> WeightsEntry:
    """The entry a run of ``family`` at ``scale`` reads: the partner of the downscaler that made the
    thumbnail (``paired_with``) when the manifest knows it, else :func:`find_entry` for ``use``.

    A thumbnail restores with its own pair whatever the ``use``: an encode-only pair decodes its files.
    A downscaler the manifest does not know (another manifest's, a training run's) gets any pair, view first.
    """
    entries = read_manifest() if entries is None else entries
    if paired_with:
        partner = paired_entry(family, scale, task or "up", paired_with, entries)
        if partner is not None:
            return partner
        use = "any"
    return find_entry(family, scale, task=task, entries=entries, use=use)
