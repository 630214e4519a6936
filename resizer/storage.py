"""Inputs and outputs in object storage: ``s3://``, ``gs://``, ``az://`` and read-only ``http(s)://``.

The one home of URLs in a batch. A job stays plain data (its input and output are strings,
a path or a URL), and the per-file work reads and writes through :func:`read_bytes`,
:func:`exists` and :func:`put_bytes`, so it runs the same wherever it runs.

- fsspec is imported only when a URL is seen; a URL without its extra installed is a usage
  error naming the extra (``pip install "resizer[s3]"``).
- Folders are prefixes; :func:`list_images` applies the local folder walk's rules (image
  suffixes, ``--include``/``--exclude``, hidden names only with ``--hidden``).
- An object appears only when complete: the encoded bytes go up in one ``put`` (S3 makes
  a multipart upload visible only when it completes). Without ``overwrite`` the put is
  conditional where the store supports it (S3 ``If-None-Match``), so two runs never
  replace each other's object; elsewhere an existence check comes first.
- Credentials come from each store's usual environment and config (boto's chain, gcloud,
  azure identity); messages name the URL (user and password and signed query values
  removed), never a credential.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import ImageReadError, ImageWriteError, ResizerError, UsageError

# scheme -> (the fsspec package behind it, the resizer extra that installs it)
SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"), "abfs": ("adlfs", "azure"), "abfss": ("adlfs", "azure"),
    "http": ("aiohttp", "http"), "https": ("aiohttp", "http"),
}
READ_ONLY = frozenset({"http", "https"})
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_SIGNED_QUERY = re.compile(r"signature|credential|token|sig$|key|password|secret", re.IGNORECASE)


def scheme_of(text: str) -> str | None:
    """The lower-case scheme of a ``scheme://`` URL, else None (a local path, ``-``)."""
    match = _URL.match(text or "")
    return match["scheme"].lower() if match else None


def is_url(text: str | None) -> bool:
    """True for ``scheme://...``: an input or output that goes through fsspec."""
    return text is not None and scheme_of(text) is not None


def display(url: str) -> str:
    """``url`` safe to print: no ``user:password@``, and signed query values (presigned URLs) replaced by ``***``."""
    if not is_url(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = [(k, "***" if _SIGNED_QUERY.search(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path inside it; ``UsageError`` when the store's package is missing."""
    scheme = scheme_of(url)
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in ("s3", "gs", "az", "http", "https"))
        raise UsageError(f"{display(url)}: unsupported URL scheme '{scheme}://' (known: {known})")
    package, extra = SCHEMES[scheme]
    try:
        import fsspec

        return fsspec.core.url_to_fs(url)
    except ImportError:
        raise UsageError(f"{display(url)}: {scheme}:// needs {package}; install it with "
                         f"pip install \"resizer[{extra}]\"") from None
    except ValueError as exc:  # a malformed URL (no bucket, a bad port)
        raise UsageError(f"{display(url)}: not a valid {scheme}:// URL ({_safe(exc)})") from None


def _safe(exc: BaseException) -> str:
    """An exception's message on one line, with any credential value of the environment removed."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for name, value in os.environ.items():
        if len(value) >= 8 and re.search(r"SECRET|TOKEN|PASSWORD|KEY|CREDENTIAL", name, re.IGNORECASE):
            text = text.replace(value, "***")
    text = re.sub(r"(?<=://)[^/@\s]+@", "", text)  # user:password@ in URLs inside the message
    return text if len(text) <= 200 else text[:197] + "..."


def failure(url: str, exc: BaseException, action: str) -> str:
    """One line for a failed ``action`` on ``url`` ("read", "list", "write"); never the store's credentials."""
    label = display(url)
    if isinstance(exc, ResizerError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        what = "no such bucket" if "bucket" in str(exc).lower() else "no such object or prefix"
        return f"{label}: {what}"
    if isinstance(exc, PermissionError):
        return (f"{label}: access denied (cannot {action}; check the credentials of this store in "
                "the environment or its config)")
    if isinstance(exc, FileExistsError):
        return f"{label}: exists (use --overwrite)"
    return f"{label}: cannot {action} ({type(exc).__name__}: {_safe(exc)})"


def is_folder(url: str) -> bool:
    """True for a prefix: ``url`` ends with ``/`` or the store holds objects under it."""
    if url.endswith("/"):
        return True
    fs, path = _filesystem(url)
    try:
        return bool(fs.isdir(path))
    except Exception:  # unreachable, refused: reading it as a file says why
        return False


def list_images(url: str, selection, exclude: str | None = None) -> list[tuple[str, PurePosixPath]]:
    """The image objects under the prefix ``url``, sorted, as ``(url, path inside the prefix)``.

    ``selection`` is the folder walk's :class:`~resizer.batch_output.FolderSelection`;
    objects under the prefix ``exclude`` (an output prefix inside the input) are left out.
    Raises ``ImageReadError`` when the prefix cannot be listed (no bucket, access denied).
    """
    from .image_io import is_image_path

    fs, path = _filesystem(url)
    root = path.rstrip("/")
    try:
        fs.invalidate_cache(root)  # a listing cached earlier in this process may be stale
        found = sorted(fs.find(root, detail=False) if root else [])
    except Exception as exc:  # noqa: BLE001 - the store's own error types
        raise ImageReadError(failure(url, exc, "list")) from None
    base = url.rstrip("/")
    skip = exclude.rstrip("/") + "/" if exclude else None
    images: list[tuple[str, PurePosixPath]] = []
    for item in found:
        relative = item[len(root):].lstrip("/") if item.startswith(root + "/") else ""
        full = f"{base}/{relative}"
        if not relative or (skip and full.startswith(skip)) or not is_image_path(relative):
            continue
        if selection.takes(PurePosixPath(relative)):
            images.append((full, PurePosixPath(relative)))
    return images


def bucket_of(url: str) -> tuple[str, str]:
    """``(scheme, bucket)`` of an object URL (the host for http)."""
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc)


def check_bucket(url: str) -> None:
    """Before any file: ``url`` must be writable (not http) and its bucket must exist and answer.

    ``UsageError`` for a read-only scheme; ``ImageWriteError`` (exit 1, like an output folder
    that cannot be made) for a missing bucket or refused credentials.
    """
    scheme = scheme_of(url)
    if scheme in READ_ONLY:
        raise UsageError(f"{display(url)}: {scheme}:// is read-only; write to s3://, gs://, az:// or a local folder")
    fs, path = _filesystem(url)
    bucket = path.strip("/").split("/", 1)[0]
    label = f"{scheme}://{bucket}/"
    try:
        fs.info(bucket)
    except FileNotFoundError:
        raise ImageWriteError(f"{label}: no such bucket") from None
    except Exception as exc:  # noqa: BLE001 - the store's own error types
        raise ImageWriteError(failure(label, exc, "write")) from None


def read_bytes(url: str) -> bytes:
    """The whole object at ``url``; ``ImageReadError`` naming it when it cannot be read."""
    fs, path = _filesystem(url)
    try:
        return fs.cat_file(path)
    except IsADirectoryError:
        raise ImageReadError(f"{display(url)}: is a prefix (folder), not an image; end it with /") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(failure(url, exc, "read")) from None


def exists(url: str) -> bool:
    """True if an object is stored at ``url``; ``ImageWriteError`` when the store cannot be asked."""
    fs, path = _filesystem(url)
    try:
        if scheme_of(url) == "s3":
            return _s3_object_exists(fs, path)
        fs.invalidate_cache(path)  # ask the store, not a listing cached earlier in this process
        return bool(fs.exists(path))
    except Exception as exc:  # noqa: BLE001
        raise ImageWriteError(failure(url, exc, "write")) from None


def _s3_object_exists(fs: Any, path: str) -> bool:
    """One HEAD request (s3fs's ``exists`` lists the key as a prefix too when it is missing: two requests)."""
    bucket, key, _ = fs.split_path(path)
    try:
        fs.call_s3("head_object", Bucket=bucket, Key=key)
        return True
    except FileNotFoundError:
        return False


def put_bytes(url: str, data: bytes, *, overwrite: bool) -> None:
    """Store ``data`` at ``url`` in one put: the object appears whole or not at all.

    Without ``overwrite`` the put is exclusive where the store can do it (S3's
    ``If-None-Match: *``): an object written meanwhile raises ``ImageWriteError`` whose
    ``__context__`` is a ``FileExistsError`` for ``url`` (the pipeline's lost race).
    """
    scheme = scheme_of(url)
    if scheme in READ_ONLY:
        raise UsageError(f"{display(url)}: {scheme}:// is read-only")
    fs, path = _filesystem(url)
    try:
        if overwrite:
            fs.pipe_file(path, data)
        else:
            _put_exclusively(fs, path, url, data)
    except FileExistsError:  # the one _put_exclusively raised, naming the URL: the lost race stays its context
        raise ImageWriteError(f"{display(url)}: exists (written meanwhile by another process; use --overwrite)") from None
    except Exception as exc:  # noqa: BLE001 - the store's own error types
        raise ImageWriteError(failure(url, exc, "write")) from None


def _put_exclusively(fs: Any, path: str, url: str, data: bytes) -> None:
    """A put that fails with ``FileExistsError(url)`` if the object exists (conditional on S3, checked elsewhere)."""
    try:
        if scheme_of(url) == "s3":
            fs.pipe_file(path, data, mode="create")
            return
        if fs.exists(path):
            raise FileExistsError(path)
        fs.pipe_file(path, data)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "File exists (written meanwhile by another process)", url) from None


# --------------------------------------------------------------------------- names


def join(base: str, relative: str | PurePosixPath) -> str:
    """``relative`` (``/``-separated) under the folder or prefix ``base``."""
    if is_url(base):
        return f"{base.rstrip('/')}/{PurePosixPath(relative).as_posix()}"
    return str(Path(base) / relative)


def name(location: str) -> str:
    """The last part of a path or URL (``photos`` for ``s3://bucket/photos/``), without a query."""
    if not is_url(location):
        return Path(location).name
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]


def beside(location: str, new_name: str) -> str:
    """``new_name`` in the folder or prefix that holds ``location``."""
    if not is_url(location):
        return str(Path(location).resolve().parent / new_name)
    parts = urlsplit(location)
    parent = parts.path.rstrip("/").rsplit("/", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, f"{parent}/{new_name}", "", ""))


def with_suffix(location: str, suffix: str) -> str:
    """``location`` with its last part's suffix replaced (URLs keep their scheme and host)."""
    if not is_url(location):
        return str(Path(location).with_suffix(suffix))
    head, _, last = location.rpartition("/")
    return f"{head}/{PurePosixPath(last).with_suffix(suffix)}"
