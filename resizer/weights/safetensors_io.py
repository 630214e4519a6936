"""Weight files on disk: safetensors only, written atomically, read with every check first.

This module owns the file format: writing a state dict with the metadata resizer needs
to use a file alone (``format``, ``arch``, ``config``, ``scales``), reading and
sanity-checking the header without torch (its size limit, truncation, pickles), sha256
of files, and loading tensors into a network. A pickle can run code when loaded, so a
``.pt``/``.pth`` checkpoint is refused with a message; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from ..files import atomic_path

if TYPE_CHECKING:
    from torch import nn

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_PICKLE_HINT = (
    "looks like a pickled PyTorch checkpoint; resizer only loads safetensors (convert it with "
    "resizer.weights.save_weights after torch.load(..., weights_only=True), and only if you trust its source)"
)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type): messages stay one line."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of ``path``, memoised on (real path, size, mtime) so repeated loads hash once."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(real)
    return _SHA_MEMO[key]


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
    used with ``--weights`` alone; ``scales`` (optional) lets ``load`` refuse a wrong scale.
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
    with atomic_path(path, mode=0o644) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return sha256_file(path), path.stat().st_size


def _read_raw_header(path: Path) -> tuple[bytes, int, int]:
    """The JSON header's bytes, its length and the file size; refuses what is no safetensors file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(9)
            header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
            plausible = head[8:9] == b"{" and 2 <= header_len <= MAX_HEADER_BYTES
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
            return handle.read(header_len), header_len, size
    except FileNotFoundError:
        raise ModelError(f"{path}: no such weights file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a weights file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and sanity-check the safetensors header without torch; ``ModelError`` on anything odd.

    The tensors it describes must end exactly at the end of the file (no truncation).
    """
    path = Path(path)
    raw, header_len, size = _read_raw_header(path)
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
    metadata = read_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def metadata_config(path: str | os.PathLike[str], metadata: dict[str, str]) -> dict[str, Any] | None:
    """The architecture config ``save_weights`` stored in ``metadata`` (``None`` if it stored none)."""
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


def _check_tensors(path: Path, header: dict[str, Any], model: "nn.Module") -> None:
    """Refuse a file whose tensor names or shapes are not the model's, naming the first few."""
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
    header = read_header(path)
    metadata = header.get("__metadata__") or {}
    if expected_sha256 is not None:
        actual = cached_sha256(path)
        if actual != expected_sha256:
            raise ModelError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected_sha256[:12]}…; "
                "the file is corrupt or not the one the manifest lists"
            )
    if isinstance(model_or_arch, str):
        from ..models import create_model

        arch = model_or_arch
        saved_arch = metadata.get("arch")
        if metadata.get("format") == "resizer" and saved_arch and saved_arch != arch:
            raise ModelError(f"{path}: weights of architecture '{saved_arch}', not '{arch}'")
        if config is None:
            config = metadata_config(path, metadata)
        model = create_model(arch, config)
    else:
        model = model_or_arch
    _check_tensors(path, header, model)
    try:
        tensors = load_file(path, device="cpu")
        model.load_state_dict(tensors, strict=True)
    except (SafetensorError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the tensors ({first_line(exc)})") from None
    return model
