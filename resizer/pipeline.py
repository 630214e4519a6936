"""Batch resizing: expand inputs, plan outputs, resize each file, report one result per input.

This is the Python API behind ``resizer down`` and ``resizer up``; the CLI only parses.
A failure on one input never stops the others: it becomes a ``FileResult`` with
``status="error"`` and the reason, whatever raised it (a decoder's ``OverflowError`` or
``NotImplementedError``, a ``MemoryError``); only Ctrl-C, SIGTERM and SIGHUP stop a batch,
and then the file being written is removed. Folders give their regular, visible image
files (:func:`resizer.batch_output.walk_images`); an explicit input must be a regular file
too (a named pipe would block the run forever). Without ``overwrite`` an output name is
created exclusively, so concurrent runs never replace each other's files. Inputs and outputs
may be URLs (``s3://``, ``gs://``, ``az://``, ``http(s)://`` to read): a job keeps them as
strings and :mod:`resizer.storage` reads, checks and puts, so a job runs the same anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import signal
import stat
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import storage
from .animation import check_method, encode_frames, plays, resize_frames, save_frames
from .batch_output import expand
# The batch's data and planning live in batch_plan; they are this module's API too.
from .batch_plan import STDIO, BatchSettings, FileResult, ResizeJob, plan_jobs  # noqa: F401
from .errors import ImageReadError, ImageWriteError, ResizerError, Terminated, UsageError
from .files import remove_stale_temporaries
from .image_io import (Picture, encode_picture, load_picture, output_format, save_encoded, save_picture,
                       source_output_format)
from .methods import ResizeRequest, RunOptions, check_linear_light, get_method
from .output_policy import apply_output_policy
from .rate_encode import encode_to_budget
from .resizing import DEFAULT_METHOD, resize_planned
from .shrink_on_load import shrink_hint, source_size, with_step_reduction


def _format_for(job: ResizeJob, settings: BatchSettings, picture: Picture) -> str | None:
    if settings.format:
        return settings.format
    if job.output == STDIO:
        return source_output_format(picture.metadata.source_format)
    return None  # from the output suffix


def _check_output(job: ResizeJob, settings: BatchSettings, result: FileResult) -> bool:
    """Refuse to replace an existing output (or the input) without ``overwrite``; False: skip this job."""
    if job.output == STDIO or job.input == STDIO:
        return True
    if storage.is_url(job.output) or storage.is_url(job.input):
        exists = storage.exists(job.output) if storage.is_url(job.output) else os.path.exists(job.output)
        same = exists and job.input == job.output
    else:
        out_path = Path(job.output)
        exists = os.path.exists(out_path)  # False, not OSError, for a name too long: the write then says why
        same = exists and os.path.exists(job.input) and os.path.samefile(job.input, out_path)
    if same and not settings.overwrite:
        raise ImageWriteError(f"{job.output}: is the input file (use --overwrite to replace it)")
    if exists and not settings.overwrite:
        if settings.skip_existing:
            result.status, result.error = "skipped", f"{job.output}: exists"
            return False
        raise ImageWriteError(f"{job.output}: exists (use --overwrite)")
    return True


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _read_source(job: ResizeJob, stdin: bytes | None) -> str | bytes:
    """The input's bytes (standard input) or path; a path must name a regular file, which reading cannot block on."""
    if job.input == STDIO:
        return stdin if stdin is not None else sys.stdin.buffer.read()
    if storage.is_url(job.input):
        return storage.read_bytes(job.input)
    try:
        mode = os.stat(job.input).st_mode
    except OSError:
        return job.input  # missing, unreadable: load_picture says which
    for test, kind in _NOT_REGULAR:
        if test(mode):
            raise ImageReadError(f"{job.display_input}: not a regular file ({kind}); pipe data in through '-'")
    return job.input


def _deliver(job: ResizeJob, settings: BatchSettings, data: bytes, stdout) -> None:
    """Encoded bytes to standard output, or to object storage in one put (the object appears whole)."""
    if job.output == STDIO:
        (stdout or sys.stdout.buffer).write(data)
        (stdout or sys.stdout.buffer).flush()
    else:
        storage.put_bytes(job.output, data, overwrite=settings.overwrite)


def _write_output(job: ResizeJob, settings: BatchSettings, resized: Picture, fmt: str | None, stdout) -> None:
    if job.output == STDIO or storage.is_url(job.output):
        if job.output != STDIO:
            output_format(job.output, fmt)  # an unknown suffix: the error names the URL
        data = encode_picture(resized, fmt or (Path(job.output).suffix if job.output != STDIO else "png"),
                              quality=settings.quality, strip=settings.strip, options=settings.encode,
                              label=storage.display(job.output) if job.output != STDIO else "<stdout>")
        _deliver(job, settings, data, stdout)
        return
    # without --overwrite the name is created exclusively: another process may create it meanwhile
    save_picture(resized, job.output, format=fmt, quality=settings.quality, strip=settings.strip,
                 overwrite=settings.overwrite, options=settings.encode)


def _animation_format(job: ResizeJob, settings: BatchSettings, picture: Picture, result: FileResult) -> str | None:
    """The output's Pillow format when an animation stays one (:mod:`resizer.animation`), else None."""
    if picture.metadata.frames <= 1:
        return None
    fmt = output_format(None if job.output == STDIO else job.output, _format_for(job, settings, picture))
    if not plays(picture, fmt):
        result.warnings.append(f"{job.display_input}: {picture.metadata.frames} frames, only the first is used")
        return None
    check_method(get_method(settings.method or DEFAULT_METHOD[settings.direction]), job.display_input)
    return fmt


def _run_options(settings: BatchSettings) -> RunOptions:
    """How every picture of a file is resized: the settings' options, with step reduction where shrink-on-load is on."""
    return with_step_reduction(settings.run, settings.direction, settings.shrink_on_load)


def _write_animation(job: ResizeJob, settings: BatchSettings, source: str | bytes, first: Picture, fmt: str,
                     stdout) -> None:
    def resize(frame: Picture) -> Picture:
        return resize_planned(frame, settings.direction, settings.size, settings.method, _run_options(settings), False,
                              settings.max_output_pixels)[0]

    frames, durations, loop = resize_frames(source, first, resize, job.display_input)
    options = dict(quality=settings.quality, strip=settings.strip, lossless=bool(settings.encode and settings.encode.lossless))
    if job.output == STDIO or storage.is_url(job.output):
        buffer = io.BytesIO()
        encode_frames(frames, durations, loop, fmt, buffer, **options)
        _deliver(job, settings, buffer.getvalue(), stdout)
        return
    save_frames(frames, durations, loop, fmt, job.output, overwrite=settings.overwrite, **options)


def process_job(job: ResizeJob, settings: BatchSettings, stdin: bytes | None = None,
                stdout=None) -> FileResult:
    """Resize one input; never raises, except ``KeyboardInterrupt`` and ``SystemExit``.

    Any failure, ``ResizerError`` or not, becomes the result's one-line error.
    """
    started = time.perf_counter()
    result = FileResult(job.display_input, job.output, "error")
    try:
        if job.fields is None and not _check_output(job, settings, result):
            return result
        hint = shrink_hint(settings.direction, settings.size, settings.method or DEFAULT_METHOD[settings.direction],
                           settings.shrink_on_load)
        source = _read_source(job, stdin)
        picture = load_picture(source, max_pixels=settings.max_pixels, name=job.display_input, shrink=hint)
        result.input_size = source_size(picture)
        if settings.rate is not None:
            _encode_to_budget(job, settings, picture, result, stdout)
            return result
        animated = _animation_format(job, settings, picture, result)
        used: dict = {}
        resized, method, result.resized = resize_planned(picture, settings.direction, settings.size, settings.method,
                                                         _run_options(settings), settings.require_pairing,
                                                         settings.max_output_pixels, used, settings.restore)
        result.method, result.device, result.precision = method.name, used.get("device"), used.get("precision")
        result.restore = used.get("restore")
        resized, notes = apply_output_policy(resized, srgb=settings.srgb, strip=settings.strip,
                                             strip_gps=settings.strip_gps, label=job.display_input)
        result.warnings.extend(notes)
        result.output_size = (resized.width, resized.height)
        if job.fields is not None:  # an -o template with {width}/{height}/{method}
            job = dataclasses.replace(job, output=expand(job.output, {**job.fields, "width": resized.width,
                                                                       "height": resized.height, "method": method.name}))
            result.output = job.output
            if not _check_output(job, settings, result):
                return result
        if animated is not None:
            _write_animation(job, settings, source, resized, animated, stdout)
        else:
            _write_output(job, settings, resized, _format_for(job, settings, picture), stdout)
        result.status = "ok"
    except UsageError as exc:
        result.error = str(exc) if job.display_input in str(exc) else f"{job.display_input}: {exc}"
        result.usage_error = True
    except ResizerError as exc:
        if _lost_race(exc, job) and not settings.overwrite:
            if settings.skip_existing:
                result.status, result.error = "skipped", f"{job.output}: exists"
                return result
            result.error = f"{job.output}: exists (written meanwhile by another process; use --overwrite)"
            return result
        message = str(exc)
        prefix = job.display_input
        result.error = message if message.startswith((prefix, job.output)) else f"{prefix}: {message}"
    except Exception as exc:  # a decoder's, encoder's or method's own failure: this file's error, not the batch's
        result.error = _unexpected_error(job, exc)
        result.detail = traceback.format_exc()
    finally:
        result.seconds = time.perf_counter() - started
    return result


def _encode_to_budget(job: ResizeJob, settings: BatchSettings, picture: Picture, result: FileResult, stdout) -> None:
    """``encode --max-bytes/--bpp``: the output policy, the search, and the exact bytes it measured written."""
    picture, notes = apply_output_policy(picture, srgb=settings.srgb, strip=settings.strip,
                                         strip_gps=settings.strip_gps, label=job.display_input)
    result.warnings.extend(notes)
    if picture.metadata.frames > 1:
        result.warnings.append(f"{job.display_input}: {picture.metadata.frames} frames, only the first is used")
    choice = encode_to_budget(picture, settings.rate, run=settings.run, strip=settings.strip, options=settings.encode,
                              name=job.display_input)
    result.method = settings.rate.method if choice.scale > 1 else None
    result.output_size, result.resized, result.encoded = choice.size, choice.scale > 1, choice.to_json()
    if job.fields is not None:  # an -o template with {width}/{height}/{method}
        job = dataclasses.replace(job, output=expand(job.output, {**job.fields, "width": choice.size[0],
                                                                   "height": choice.size[1],
                                                                   "method": result.method or "none"}))
        result.output = job.output
        if not _check_output(job, settings, result):
            return
    if job.output == STDIO:
        (stdout or sys.stdout.buffer).write(choice.data)
        (stdout or sys.stdout.buffer).flush()
    else:
        save_encoded(choice.data, job.output, overwrite=settings.overwrite)
    result.status = "ok"


def _lost_race(exc: ResizerError, job: ResizeJob) -> bool:
    """True if the write failed because another process created the output name after the checks."""
    cause = exc.__context__
    target = job.output if storage.is_url(job.output) else str(Path(job.output))
    return (job.output != STDIO and isinstance(cause, FileExistsError)
            and os.fspath(cause.filename or "") == target)


def _unexpected_error(job: ResizeJob, exc: Exception) -> str:
    """One line naming the file for an exception that is no ``ResizerError``."""
    if isinstance(exc, MemoryError):
        reason = "out of memory"
    elif isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        name = os.fspath(exc.filename) if exc.filename else job.output
        reason = f"file name too long for the file system: {name}"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror + (f": {os.fspath(exc.filename)}" if exc.filename else "")
    else:
        text = " ".join(str(exc).split())
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    reason = " ".join(reason.split())
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return f"{job.display_input}: cannot process ({reason})"


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise ``Terminated`` (a ``KeyboardInterrupt``).

    Only in the main thread, and only for signals whose handler is the default one: an
    application's own handler (the console script's), or ``nohup``'s ignored SIGHUP, stays.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def interrupt(signum, frame) -> None:
        received.append(signum)
        if len(received) == 1:  # a second signal must not break the cleanup of the first
            raise Terminated(signum)

    installed = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            installed[signum] = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


def remove_batch_temporaries(jobs: list[ResizeJob]) -> None:
    """Remove the ``.part`` files that killed runs (SIGKILL, power loss) left where this batch writes."""
    folders = {Path(job.output).parent for job in jobs if job.output != STDIO and not storage.is_url(job.output)}
    for folder in folders:
        if os.path.isdir(folder):  # False, not OSError, for a name too long
            remove_stale_temporaries(folder, ".part")


def run_batch(inputs: Sequence[str], settings: BatchSettings,
              on_result: Callable[[FileResult], None] | None = None, executor=None) -> list[FileResult]:
    """Plan and process every input; returns results in input order.

    ``on_result`` is called as each input finishes (progress bars, JSON lines). SIGTERM
    and SIGHUP stop the batch like Ctrl-C (``Terminated``, a ``KeyboardInterrupt``).
    Planning stays here; ``executor`` runs the jobs: None in this process (threads where the method
    allows), or a context manager for the batch whose ``run(jobs, settings)`` yields one
    :func:`process_job` result per job in job order (:class:`resizer.distributed.RayExecutor`).
    """
    with _terminate_as_interrupt(), executor or contextlib.nullcontext():
        settings.size.check_direction(settings.direction)
        jobs, planning_errors = plan_jobs(inputs, settings)
        if jobs:
            settings = with_weights_resolved(settings)
        results: list[FileResult] = []
        for failed in planning_errors:
            results.append(failed)
            if on_result:
                on_result(failed)
        if jobs:
            # A wrong method name, or a scale the method cannot do, is a usage error: fail before any file.
            method = get_method(settings.method or DEFAULT_METHOD[settings.direction])
            check_linear_light(method, settings.run)
            if settings.size.scale is not None:
                method.validate(ResizeRequest(settings.direction, (1, 1), settings.size.scale), settings.run)
            remove_batch_temporaries(jobs)
        for result in (executor.run if executor is not None else _process_all)(jobs, settings):
            results.append(result)
            if on_result:
                on_result(result)
    return results


def with_weights_resolved(settings: BatchSettings) -> BatchSettings:
    """A hub ``--weights`` fetched once for the whole batch, and the method a bare ``--weights`` file implies."""
    if not settings.run.weights:
        return settings
    from .weights.hub import fetch_reference_once
    from .weights.infer import infer_method

    weights = fetch_reference_once(settings.run.weights)
    method = settings.method or infer_method(weights)
    return dataclasses.replace(settings, method=method, run=dataclasses.replace(settings.run, weights=weights))


def _process_all(jobs: list[ResizeJob], settings: BatchSettings) -> Iterator[FileResult]:
    method = get_method(settings.method or DEFAULT_METHOD[settings.direction])
    workers = settings.jobs or method.default_jobs()
    workers = max(1, min(workers, len(jobs)))
    if workers == 1 or any(job.input == STDIO for job in jobs):
        for job in jobs:
            yield process_job(job, settings)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(lambda job: process_job(job, settings), jobs)
