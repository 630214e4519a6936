"""A batch as plain data, and its planning: settings, jobs (one input, one output), results.

:func:`plan_jobs` turns the command line's inputs (files, folders, object-storage prefixes,
``-``) and ``-o`` (a file, a folder, a template) into :class:`ResizeJob` values on the driver;
:mod:`resizer.pipeline` runs them, here or on a cluster (:mod:`resizer.distributed`). Jobs are
strings and small dicts, so they pickle and travel. Problems with one input become an error
:class:`FileResult`; mistakes in the command line itself are ``UsageError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from . import storage
from .batch_output import (SIZE_FIELDS, FolderSelection, check_single_output, check_template, expand, input_fields,
                           is_template, refuse_terminal, template_folder, walk_images)
from .errors import ImageReadError, UsageError
from .geometry import SizeSpec
from .image_io import DEFAULT_MAX_PIXELS, WRITE_FORMATS, EncodeOptions, writable_format_for
from .methods import Direction, RunOptions
from .rate_encode import RateTarget

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
    # ``up``: JPEG inputs restored first (:mod:`resizer.restoration`); None: for learned methods only (the CLI's default)
    restore: bool | None = False


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


