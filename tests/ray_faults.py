"""A Ray worker-process setup hook for tests/test_ray_executor.py: kill the worker once, at a chosen moment.

``RESIZER_TEST_KILL=NAME:STAGE:MARKER[;NAME:STAGE:MARKER...]`` (set through the run's
``runtime_env``): the first worker to reach STAGE for the input named NAME creates MARKER
(exclusively: only once per run, whichever worker) and SIGKILLs its own process. STAGE is ``writing`` (the temporary
``.part`` file holds encoded bytes, the output name does not exist yet) or ``written`` (the
output is complete, its result not yet sent back). MARKER then holds the output's inode.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _first(marker: str, text: str) -> bool:
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.write(fd, text.encode())
    os.close(fd)
    return True


def install() -> None:
    """Wrap the per-file work of this worker process (called by Ray when the process starts)."""
    for spec in filter(None, os.environ.get("RESIZER_TEST_KILL", "").split(";")):
        name, stage, marker = spec.split(":", 2)
        {"written": _kill_after_writing, "writing": _kill_while_writing}[stage](name, marker)


def _kill_after_writing(name: str, marker: str) -> None:
    from resizer import pipeline

    process_job = pipeline.process_job

    def killed_after_writing(job, settings, *args, **kwargs):
        result = process_job(job, settings, *args, **kwargs)
        if Path(job.input).name == name and result.status == "ok" and _first(marker, str(os.stat(job.output).st_ino)):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    pipeline.process_job = killed_after_writing


def _kill_while_writing(name: str, marker: str) -> None:
    from resizer.image_io import write

    encode = write._encode_into

    def killed_while_writing(picture, fmt, handle, **options):
        encode(picture, fmt, handle, **options)
        handle.flush()
        if os.path.basename(getattr(handle, "name", "")).startswith(f".{name}.") and _first(marker, "writing"):
            os.kill(os.getpid(), signal.SIGKILL)

    write._encode_into = killed_while_writing
