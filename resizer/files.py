"""Atomic writes: a reader sees the old file or the whole new one, never half of it.

One mechanism for images, weights, manifests, run folders and reports: write into a
temporary file in the target's folder, flush it, then rename it over the target. On
any failure, Ctrl-C included, the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


def default_mode(path: Path) -> int:
    """The mode a new file would get (umask applied), or the existing file's own."""
    import stat

    try:
        return stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o666 & ~_UMASK
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed over ``path`` when the block ends without error.

    For writers that want a file name (safetensors, savers of other libraries). ``mode``
    defaults to :func:`default_mode`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode(path) if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *, suffix: str = ".tmp",
                 mode: int | None = None, fsync: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path, suffix=suffix, mode=mode) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, **options) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write` for the options)."""
    atomic_write(path, lambda handle: handle.write(data), **options)


def atomic_write_text(path: str | os.PathLike[str], text: str, **options) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), **options)
