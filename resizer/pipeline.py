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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

from . import storage
from .animation import check_method, encode_frames, plays, resize_frames, save_frames
from .batch_output import (SIZE_FIELDS, FolderSelection, check_single_output, check_template, expand, input_fields,
                           is_template, refuse_terminal, template_folder, walk_images)
from .errors import ImageReadError, ImageWriteError, ResizerError, Terminated, UsageError
from .files import remove_stale_temporaries
from .shrink_on_load import shrink_hint, source_size, with_step_reduction
from .geometry import SizeSpec
from .image_io import (DEFAULT_MAX_PIXELS, WRITE_FORMATS, EncodeOptions, Picture, encode_picture, load_picture,
                       output_format, save_encoded, save_picture, source_output_format, writable_format_for)
from .methods import Direction, ResizeRequest, RunOptions, check_linear_light, get_method
from .output_policy import apply_output_policy
from .rate_encode import RateTarget, encode_to_budget
from .resizing import DEFAULT_METHOD, resize_planned

STDIO = "-"


@dataclass
class ResizeJob:
    """One input and where its result goes (``output`` is ``-`` for standard output)."""

    input: str  # a path, or "-" for standard input
    output: str
    display_input: str
    fields: dict[str, str] | None = None  # an ``-o`` template's input fields, when it needs the output size too


@dataclass
class FileResult:
    """What happened to one input; ``to_json`` is the ``--json`` line."""

    input: str
    output: str | None
    status: str  # ok | error | skipped
    method: str | None = None
    input_size: tuple[int, int] | None = None
    output_size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    resized: bool | None = None  # False: written at its own size (--only-shrink, a box it already fits)
    usage_error: bool = False  # the request was wrong for this input (exit 2 when every failure is one)
    device: str | None = None  # where the method ran and in which precision (learned methods: after ``auto``)
    precision: str | None = None
    restore: dict | None = None  # ``up``: the restoration applied first, or why none was
    detail: str | None = field(default=None, repr=False)  # the traceback of an unexpected exception (--debug)
    encoded: dict | None = None  # a rate-targeted encode's choice (:meth:`resizer.rate_encode.RateChoice.to_json`)

    def to_json(self) -> dict:
        record = {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "method": self.method,
            "input_size": list(self.input_size) if self.input_size else None,
            "output_size": list(self.output_size) if self.output_size else None,
            "seconds": round(self.seconds, 4),
        }
        if self.resized is not None:
            record["resized"] = self.resized
        if self.device is not None:
            record["device"], record["precision"] = self.device, self.precision
        if self.encoded is not None:
            record.update(self.encoded)
        if self.restore is not None:
            record["restore"] = self.restore
        if self.error is not None:
            record["error"] = self.error
        if self.warnings:
            record["warnings"] = self.warnings
        return record


@dataclass
class BatchSettings:
    """Everything ``resizer down/up`` needs besides the inputs."""

    direction: Direction
    size: SizeSpec
    method: str | None = None
    output: str | None = None
    format: str | None = None
    quality: int | None = None
    overwrite: bool = False
    skip_existing: bool = False
    strip: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_output_pixels: int | None = DEFAULT_MAX_PIXELS  # outputs larger than this are refused before resizing
    jobs: int | None = None  # None: all cores for methods that allow it
    run: RunOptions = field(default_factory=RunOptions)
    tag: str | None = None  # default output names' tag (``photo_<tag>.png``); None: from the size
    require_pairing: bool = False  # ``up`` only of paired thumbnails (``resizer decode``)
    selection: FolderSelection = field(default_factory=FolderSelection)  # which files folders give
    srgb: bool = False  # convert outputs to sRGB from their ICC profile (:mod:`resizer.output_policy`)
    strip_gps: bool = True  # outputs carry no GPS location (EXIF, XMP)
    encode: EncodeOptions | None = None  # progressive JPEG, chroma subsampling, lossless WebP
    shrink_on_load: bool = True  # big JPEG reductions decode at 1/2..1/8 (:mod:`resizer.shrink_on_load`)
    rate: RateTarget | None = None  # ``encode --max-bytes/--bpp``: search pipeline and quality (:mod:`resizer.rate_encode`)
    restore: bool = False  # ``up``: JPEG inputs restored first (:mod:`resizer.restoration`); the CLI turns it on


# --------------------------------------------------------------------------- planning


def _with_suffix(location: str, fmt: str | None) -> str:
    if fmt is None:
        return location
    suffix = "." + fmt.lower().lstrip(".")
    return storage.with_suffix(location, {".jpeg": ".jpg", ".tiff": ".tif"}.get(suffix, suffix))


def check_format(fmt: str | None) -> None:
    """``--format`` must name an output format (``png``, ``.jpg``, ...): a path or an unknown name is a usage error."""
    if fmt is not None and fmt.lower().lstrip(".") not in WRITE_FORMATS:
        raise UsageError(f"--format {fmt}: unknown output format (known: {', '.join(sorted(WRITE_FORMATS))})")


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)  # False, not OSError, for a name too long for the file system


def _is_folder(location: str) -> bool:
    """A local folder, or a prefix in object storage (:func:`resizer.storage.is_folder`)."""
    return storage.is_folder(location) if storage.is_url(location) else _is_dir(Path(location))


@dataclass
class _Plan:
    """What planning every input shares: the ``-o`` folder or template and the size tag."""

    settings: BatchSettings
    tag: str
    out_dir: str | None  # a local folder or a prefix
    template: str | None
    used: set[str]
    several_folders: bool


def plan_jobs(inputs: Sequence[str], settings: BatchSettings) -> tuple[list[ResizeJob], list[FileResult]]:
    """Expand files, folders, prefixes (URLs, :mod:`resizer.storage`) and ``-`` into jobs.

    Problems with an input become error results. Raises ``UsageError`` for mistakes in the
    command line itself (``-`` twice, ``-o FILE`` with several inputs, an unknown
    ``--format``, an ``http(s)://`` output; a missing input when it is the only one is a
    per-file error), and ``ImageWriteError`` for an output bucket that is missing or refuses
    the credentials (before any file is read).
    """
    if not inputs:
        raise UsageError("no input given")
    check_format(settings.format)
    if list(inputs).count(STDIO) > 1:
        raise UsageError("standard input ('-') can be given only once")
    out = settings.output
    folders = {raw: _is_folder(raw) for raw in inputs if raw != STDIO}
    many = len(inputs) > 1 or any(folders.values())
    template = out if is_template(out) else None
    used = check_template(template) if template is not None else set()
    out_dir = _output_folder(out, template, many, len(inputs))
    if out == STDIO and many:
        raise UsageError("-o - (standard output) takes exactly one input file")
    plan = _Plan(settings, settings.tag or settings.size.tag(settings.direction), out_dir, template, used,
                 sum(folders[raw] for raw in inputs if raw != STDIO) > 1)  # a folder named twice counts twice
    jobs: list[ResizeJob] = []
    errors: list[FileResult] = []
    for raw in inputs:
        if raw == STDIO:
            if out_dir is not None or template is not None:
                raise UsageError("standard input needs -o FILE or -o -, not a folder")
            jobs.append(ResizeJob(STDIO, out or STDIO, "<stdin>"))
        elif folders[raw]:
            _plan_folder(raw, plan, jobs, errors)
        else:
            jobs.append(_file_job(raw, plan))
    unique = _one_input_per_output(jobs, errors)
    _check_buckets(unique)
    if any(job.output == STDIO for job in unique):
        refuse_terminal()
    return unique, errors


def _output_folder(out: str | None, template: str | None, many: bool, count: int) -> str | None:
    """The folder or prefix ``-o`` names (None: a file, a template, standard output or no ``-o``)."""
    if out is None or out == STDIO or template is not None:
        return None
    if many:
        check_single_output(out, count)
    if storage.is_url(out):
        return out if many or out.endswith("/") or storage.is_folder(out) else None
    out_path = Path(out)
    if many or out.endswith(("/", os.sep)) or _is_dir(out_path):
        if os.path.exists(out_path) and not _is_dir(out_path):
            raise UsageError(f"-o {out}: not a folder, but several inputs need one")
        return out
    return None


def _plan_folder(raw: str, plan: _Plan, jobs: list[ResizeJob], errors: list[FileResult]) -> None:
    """The jobs of one input folder or prefix: its tree mirrored under the output folder."""
    label = storage.display(raw)
    try:
        images = _folder_images(raw, plan)
    except ImageReadError as exc:  # a prefix that cannot be listed (no bucket, access denied)
        errors.append(FileResult(label, None, "error", error=str(exc)))
        return
    if not images:
        errors.append(FileResult(label, None, "error", error=f"{label}: folder contains no images"))
        return
    where = raw if storage.is_url(raw) else str(Path(raw).resolve())
    if plan.out_dir is not None:
        base = storage.join(plan.out_dir, storage.name(where)) if plan.several_folders else plan.out_dir
    else:
        base = storage.beside(where, f"{storage.name(where)}_{plan.tag}")
    for image, relative in images:
        if plan.template is not None:
            fields = input_fields(PurePosixPath("/", relative), PurePosixPath("/"), plan.tag)
            jobs.append(_templated_job(plan.template, plan.used, image, fields))
            continue
        target = _with_suffix(storage.join(base, relative), plan.settings.format or writable_format_for(image))
        jobs.append(ResizeJob(image, target, storage.display(image)))


def _folder_images(raw: str, plan: _Plan) -> list[tuple[str, PurePosixPath]]:
    """The images of a folder or prefix and their paths inside it, leaving out an output tree inside it."""
    out_dir, template, selection = plan.out_dir, plan.template, plan.settings.selection
    if storage.is_url(raw):
        inside = out_dir if storage.is_url(out_dir) else template.split("{", 1)[0] if storage.is_url(template) else None
        return storage.list_images(raw, selection, exclude=inside)
    if out_dir is not None:
        exclude = None if storage.is_url(out_dir) else Path(out_dir).resolve()
    else:
        exclude = template_folder(template) if template else None
    root = Path(raw)
    return [(str(image), PurePosixPath(image.relative_to(root).as_posix()))
            for image in walk_images(root, exclude, selection)]


def _file_job(raw: str, plan: _Plan) -> ResizeJob:
    """The job of one input file or object named on the command line."""
    label, fmt = storage.display(raw), plan.settings.format or writable_format_for(storage.name(raw))
    if plan.template is not None:
        if storage.is_url(raw):
            return _templated_job(plan.template, plan.used, raw,
                                  input_fields(PurePosixPath(storage.name(raw)), None, plan.tag), label)
        return _templated_job(plan.template, plan.used, str(Path(raw)), input_fields(Path(raw), None, plan.tag))
    out = plan.settings.output
    if plan.out_dir is not None:
        target = _with_suffix(storage.join(plan.out_dir, storage.name(raw)), fmt)
    elif out is not None:
        target = out if storage.is_url(out) else str(Path(out))
    elif storage.is_url(raw):
        named = PurePosixPath(storage.name(raw))
        target = _with_suffix(storage.beside(raw, f"{named.stem}_{plan.tag}{named.suffix}"), fmt)
    else:
        path = Path(raw)
        target = _with_suffix(str(path.with_name(f"{path.stem}_{plan.tag}{path.suffix}")), fmt)
    return ResizeJob(raw, target, label)


def _check_buckets(jobs: list[ResizeJob]) -> None:
    """Every bucket the jobs write into answers before any file is read (:func:`resizer.storage.check_bucket`)."""
    checked: set[tuple[str, str]] = set()
    for job in jobs:
        if storage.is_url(job.output):
            key = storage.bucket_of(job.output)
            if key not in checked:
                checked.add(key)
                storage.check_bucket(job.output)


def _one_input_per_output(jobs: list[ResizeJob], errors: list[FileResult]) -> list[ResizeJob]:
    """Two inputs must never race for one output file: the second becomes an error result."""
    seen: dict[str, str] = {}
    unique: list[ResizeJob] = []
    for job in jobs:
        key = job.output if job.output == STDIO or storage.is_url(job.output) else str(Path(job.output).resolve())
        if key in seen and job.output != STDIO and job.fields is None:
            errors.append(FileResult(job.display_input, job.output, "error",
                                     error=f"{job.display_input}: output {job.output} is also the output of {seen[key]}"))
            continue
        seen[key] = job.display_input
        unique.append(job)
    return unique


def _templated_job(template: str, used: set[str], location: str, fields: dict[str, str],
                   label: str | None = None) -> ResizeJob:
    """A job whose output is ``template`` filled in now, or once the output size is known (``fields``)."""
    label = label or storage.display(location)
    if used & SIZE_FIELDS:
        return ResizeJob(location, template, label, fields=fields)
    return ResizeJob(location, expand(template, fields), label)


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
        if _is_dir(folder):
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
