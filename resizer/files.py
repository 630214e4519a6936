"""Atomic writes: a reader sees the old file or the whole new one, never half of it.

One mechanism for images, weights, manifests, run folders and reports: write into a
temporary file in the target's folder, flush it, then rename it over the target. On
any failure, Ctrl-C included, the temporary file is removed and the target is untouched.

Without ``replace`` the target is created exclusively, even against other processes:
the temporary file is hard-linked to the target name (``FileExistsError`` if it
appeared meanwhile), so two writers never silently replace each other's file.
Temporary names carry the writer's host and process id
(``.NAME.<host>-<pid>.<random><suffix>``), so that :func:`remove_stale_temporaries`
can tell the leftovers of a killed process from a live writer's file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)

_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_NAME_BYTES = 120  # of the target's name kept in the temporary name (names are limited to 255 bytes)
STALE_AGE_S = 24 * 3600  # a temporary file this old is a leftover whoever made it


def default_mode(path: Path) -> int:
    """The mode a new file would get (umask applied), or the existing file's own."""
    import stat

    try:
        return stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o666 & ~_UMASK
    except OSError:
        return 0o666 & ~_UMASK


def _temp_prefix(name: str) -> str:
    short = name
    while len(os.fsencode(short)) > _NAME_BYTES:
        short = short[:-1]
    return f".{short}.{_HOST}-{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp", mode: int | None = None,
                replace: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path``; moved to ``path`` when the block ends without error.

    For writers that want a file name (safetensors, savers of other libraries). ``mode``
    defaults to :func:`default_mode`. ``replace=False`` creates ``path`` exclusively and
    raises ``FileExistsError`` if it exists by then.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode(path) if mode is None else mode)
        if replace:
            os.replace(tmp, path)
        else:
            _publish_exclusively(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _publish_exclusively(tmp: str, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that name exists; raises ``FileExistsError`` if it does."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "File exists (written meanwhile by another process)", str(path)) from None
    except OSError:
        # No hard links here (FAT, some network file systems): reserve the name with an
        # exclusive create, then rename the finished file over the reservation.
        _reserve_then_replace(tmp, path)
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _reserve_then_replace(tmp: str, path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "File exists (written meanwhile by another process)", str(path)) from None
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it: never judge by pid there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str], suffix: str = ".part",
                             max_age_s: float = STALE_AGE_S) -> list[Path]:
    """Remove the temporary files (``suffix``) that killed writers left in ``folder``; returns them.

    A temporary file is stale when the process that made it, on this host, is gone, or
    when it is older than ``max_age_s`` (whoever made it: another host's writer cannot be
    asked). Files of other programs (other names) are never touched.
    """
    pattern = re.compile(r"^\..+\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.[a-z0-9_]{8}" + re.escape(suffix) + "$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid = int(match["pid"])
        dead = match["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid)
        if dead or age > max_age_s:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *, suffix: str = ".tmp",
                 mode: int | None = None, fsync: bool = False, replace: bool = True) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path, suffix=suffix, mode=mode, replace=replace) as tmp:
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
