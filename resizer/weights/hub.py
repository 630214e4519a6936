"""The Hugging Face hub: where manifest files that are not bundled come from, and ``hf://`` references.

This module owns fetching: a manifest entry's file is used from beside the manifest
("bundled"), else from the Hugging Face cache, else downloaded into it, and it is always
checked against the entry's sha256 and size. ``--weights hf://OWNER/REPO/PATH.safetensors[@REVISION]``
fetches any file the same way. ``HF_HUB_OFFLINE`` (read at every call) keeps it off the
network; huggingface_hub's ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_ENDPOINT`` apply.
huggingface_hub is imported only when a file is looked up, not when this module is.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from ..errors import ModelError, UsageError
from .manifest import DEFAULT_REVISION, WeightsEntry, get_entry, manifest_path
from .safetensors_io import cached_sha256, first_line

HUB_PREFIX = "hf://"
HUB_TIMEOUT_S = 10.0  # each request to the hub; a run asks once per --weights reference
Location = Literal["bundled", "cached", "remote"]
_REFERENCE_SYNTAX = f"{HUB_PREFIX}OWNER/REPO/FILE.safetensors[@REVISION]"


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads it once, at import)."""
    from huggingface_hub import constants

    return _is_true(os.environ.get("HF_HUB_OFFLINE")) or bool(constants.HF_HUB_OFFLINE)


def _check_file(entry: WeightsEntry, path: Path, origin: str) -> Path:
    actual_size = path.stat().st_size
    actual = cached_sha256(path)
    if actual != entry.sha256 or actual_size != entry.size:
        raise ModelError(
            f"{path}: {origin} weights '{entry.name}' have sha256 {actual[:12]}… ({actual_size} bytes), "
            f"the manifest says {entry.sha256[:12]}… ({entry.size} bytes); refusing to use them"
        )
    return path


def bundled_file(entry: WeightsEntry) -> Path:
    """Where ``entry``'s file lies when it is bundled: beside the active manifest."""
    return manifest_path().parent / entry.file


_UNREACHABLE: dict[tuple[str, str, str, str], ModelError] = {}  # (endpoint, repo, file, revision): why


def _hub_download(repo: str, filename: str, revision: str, *, hint: str) -> Path:
    """The file from the HF cache or the hub; an unreachable hub is decided once per process.

    One bounded request without retries first (``HUB_TIMEOUT_S``): when the hub cannot be
    reached, a copy already cached for the revision is used, else a ``ModelError`` says so,
    and every later call for the file repeats that error at once instead of asking again
    (a batch of 1,000 inputs fails once, not 1,000 times after the library's retries).
    """
    from huggingface_hub import constants, try_to_load_from_cache

    key = (constants.ENDPOINT, repo, filename, revision)
    if key in _UNREACHABLE:
        raise _UNREACHABLE[key]
    with _quiet_hub():
        reason = None if offline() else _hub_unreachable(repo, filename, revision)
        if reason is None:
            return _download_now(repo, filename, revision, hint=hint)
        cached = try_to_load_from_cache(repo, filename, revision=revision)
        if isinstance(cached, str):
            return Path(cached)
    _UNREACHABLE[key] = ModelError(f"{repo}/{filename}@{revision}: {reason}: {hint}")
    raise _UNREACHABLE[key]


def _download_now(repo: str, filename: str, revision: str, *, hint: str) -> Path:
    """``hf_hub_download`` into the HF cache, its errors turned into one-line ``ModelError``s."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hf_errors

    where = f"{repo}/{filename}@{revision}"
    is_offline = offline()
    try:
        return Path(
            hf_hub_download(
                repo_id=repo,
                filename=filename,
                revision=revision,
                local_files_only=is_offline,
                library_name="resizer",
                etag_timeout=HUB_TIMEOUT_S,
            )
        )
    except hf_errors.LocalEntryNotFoundError as exc:
        if is_offline:
            raise ModelError(f"{where} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {hint}") from None
        reason = first_line(exc.__cause__ or exc)
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
        raise ModelError(f"{where}: download failed ({first_line(exc)}): {hint}") from None
    except Exception as exc:  # httpx transport errors (proxy, protocol) are not OSErrors
        if type(exc).__module__.split(".")[0] not in {"httpx", "httpx2", "httpcore", "huggingface_hub"}:
            raise
        raise ModelError(f"{where}: download failed ({type(exc).__name__}: {first_line(exc)}): {hint}") from None


def _pull_hint(entry: WeightsEntry) -> str:
    return f'run "resizer models pull {entry.name}" while online, or pass --weights FILE'


def _verified_cached_copy(entry: WeightsEntry) -> Path | None:
    """The HF cache's copy of ``entry``'s file if its sha256 matches (usable offline), else ``None``."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.repo, entry.file, revision=entry.revision)
    if isinstance(cached, str) and cached_sha256(Path(cached)) == entry.sha256:
        return Path(cached)
    return None


def model_location(entry: WeightsEntry) -> Location:
    """Where the file of ``entry`` is now: shipped with resizer, in the HF cache, or only on the hub.

    "cached" means usable offline: a cached copy whose sha256 differs counts as "remote".
    """
    if bundled_file(entry).is_file():
        return "bundled"
    return "cached" if _verified_cached_copy(entry) is not None else "remote"


def resolve_weights_file(entry: WeightsEntry) -> Path:
    """A local, sha256-verified path to ``entry``'s file: bundled, else cached, else downloaded.

    A cached copy whose sha256 matches is used without asking the hub (the hash pins the
    content). A download that does not match is refused but left in the HF cache.
    """
    local = bundled_file(entry)
    if local.is_file():
        return _check_file(entry, local, "bundled")
    cached = _verified_cached_copy(entry)
    if cached is not None:
        return cached
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


def is_hub_reference(spec: str) -> bool:
    """Whether a ``--weights`` value names a hub file (``hf://...``) rather than a local one."""
    return spec.startswith(HUB_PREFIX)


def parse_hub_reference(spec: str) -> tuple[str, str, str]:
    """Split ``hf://OWNER/REPO/PATH/FILE.safetensors[@REVISION]`` into (repo, path, revision)."""
    if not is_hub_reference(spec):
        raise UsageError(f"not a hub reference: {spec!r} (expected {_REFERENCE_SYNTAX})")
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
        raise UsageError(f"bad hub reference {spec!r} (expected {_REFERENCE_SYNTAX})")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def resolve_user_weights(spec: str) -> Path:
    """The local path for ``--weights``: a file, or ``hf://OWNER/REPO/FILE.safetensors[@REVISION]``
    downloaded into (or found in) the Hugging Face cache."""
    if is_hub_reference(spec):
        repo, filename, revision = parse_hub_reference(spec)
        hint = "run the command once while online, or pass a local --weights FILE"
        return _hub_download(repo, filename, revision, hint=hint)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(f"{spec}: no such weights file (hub references look like {_REFERENCE_SYNTAX})")
    if path.is_dir() and not ((path / "latest.json").is_file() or (path / "state.json").is_file()):
        raise ModelError(f"{spec}: is a folder, not a weights file (nor a 'resizer train' run or checkpoint)")
    return path


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """huggingface_hub's retry and warning lines stay out of the output (its errors become ours)."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _hub_unreachable(repo: str, filename: str, revision: str) -> str | None:
    """Why the hub cannot be reached for this file (one request, no retries, bounded), or ``None``."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub import errors as hf_errors

    try:
        get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision), timeout=HUB_TIMEOUT_S,
                             library_name="resizer", retry_on_errors=False)
    except hf_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int) and status >= 500:  # the hub is down: retrying per file would not help
            return f"{constants.ENDPOINT} failed (HTTP {status})"
        return None  # the hub answered: the download says what is wrong with the file
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, timeouts, proxies
        return f"{constants.ENDPOINT} unreachable ({type(exc).__name__}: {first_line(exc)})"
    return None


def fetch_reference_once(spec: str) -> str:
    """``--weights`` with a hub reference fetched now: the local path a whole batch then uses.

    Asked once per run, before any input is read, so that an unreachable hub fails the run
    with one line (see :func:`_hub_download`). Other specs are returned as they are.
    """
    if not is_hub_reference(spec):
        return spec
    return str(resolve_user_weights(spec))
