"""Batch inputs and outputs: which files a folder gives, ``-o`` templates, the end-of-batch summary.

- Folders give their regular image files; hidden files and folders (a leading dot: macOS
  ``._IMG.JPG`` forks, ``.thumbnails/``) only with ``hidden``; ``include``/``exclude`` are
  shell globs (``fnmatch``) matched against a file's path inside the folder and against its name.
- ``-o`` with a ``{field}`` is a template, expanded for each input: ``{stem}`` (``IMG_1``),
  ``{name}`` (``IMG_1.jpg``), ``{ext}`` (``jpg``), ``{dir}`` (the folder inside an input folder,
  ``.`` for files named on the command line and the folder's top level), ``{tag}`` (the size tag: ``fit320x320``),
  ``{width}`` and ``{height}`` (the output's size), ``{method}``.
- ``-o FILE`` with several inputs is a usage error (it used to become a folder named ``FILE``).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import string
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from .errors import UsageError
from .image_io import is_image_path
from .storage import is_url

TEMPLATE_FIELDS: tuple[str, ...] = ("stem", "name", "ext", "dir", "tag", "width", "height", "method")
SIZE_FIELDS = frozenset({"width", "height", "method"})  # known once the file is read and planned


@dataclass(frozen=True)
class FolderSelection:
    """Which files of an input folder are taken (``--include``, ``--exclude``, ``--hidden``)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False

    def takes(self, relative: PurePosixPath) -> bool:
        """True if the file at ``relative`` (inside its folder) is selected."""
        text, name = relative.as_posix(), relative.name
        if not self.hidden and any(part.startswith(".") for part in relative.parts):
            return False
        if self.include and not any(_matches(text, name, p) for p in self.include):
            return False
        return not any(_matches(text, name, p) for p in self.exclude)


def _matches(text: str, name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern) or fnmatch.fnmatchcase(name, pattern)


def walk_images(folder: Path, exclude: Path | None, selection: FolderSelection) -> list[Path]:
    """Image files under ``folder``, recursively and sorted, skipping the output tree ``exclude``.

    Only regular files count: a named pipe called ``x.png`` would block the run.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if (selection.hidden or not d.startswith("."))
                         and (exclude is None or (root_path / d).resolve() != exclude))
        for name in sorted(files):
            path = root_path / name
            if is_image_path(path) and path.is_file() and selection.takes(PurePosixPath(path.relative_to(folder).as_posix())):
                found.append(path)
    return found


def is_template(output: str | None) -> bool:
    """True if ``-o`` names fields to fill in (``web/{stem}_{width}.webp``)."""
    return output is not None and "{" in output


def check_template(template: str) -> set[str]:
    """The fields ``template`` uses; ``UsageError`` for unknown fields or broken braces."""
    try:
        used = {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template)
                if field is not None}
    except ValueError as exc:
        raise UsageError(f"-o {template}: not a valid template ({exc}); use {{stem}}, {{width}}, ...") from None
    unknown = sorted(used - set(TEMPLATE_FIELDS))
    if unknown or "" in used:
        raise UsageError(f"-o {template}: unknown field {{{(unknown or [''])[0]}}} "
                         f"(fields: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})")
    return used


def input_fields(path: Path, folder: Path | None, tag: str) -> dict[str, str]:
    """The template fields an input gives before it is read."""
    inside = "" if folder is None else path.parent.relative_to(folder).as_posix()
    return {"stem": path.stem, "name": path.name, "ext": path.suffix.lstrip("."), "dir": inside or ".", "tag": tag}


def expand(template: str, fields: dict[str, str | int]) -> str:
    """``template`` with ``fields`` filled in (every field it uses must be there); URLs keep their ``scheme://``."""
    if not template:
        return template
    text = template.format(**fields)
    if is_url(text):
        head, _, rest = text.partition("://")
        return f"{head}://{posixpath.normpath(rest)}"
    return os.path.normpath(text)


def template_folder(template: str) -> Path | None:
    """The fixed folder a template writes under (``web`` for ``web/{stem}.webp``): excluded from inputs."""
    fixed = template.split("{", 1)[0]
    if is_url(fixed):
        return None  # a prefix in object storage: no local input folder holds it
    folder = Path(fixed).parent if not fixed.endswith(("/", os.sep)) else Path(fixed)
    return folder.resolve() if str(folder) not in ("", ".") else None


def check_single_output(output: str, inputs: int) -> None:
    """``-o photo.png`` with several inputs: a usage error, not a folder named ``photo.png``."""
    if not output.endswith(("/", os.sep)) and not os.path.isdir(output) and is_image_path(output):
        raise UsageError(f"-o {output}: one output file for {inputs} inputs; give a folder (-o {Path(output).stem}/) "
                         "or a template (-o 'out/{stem}_{width}.webp')")


def refuse_terminal(stream=None) -> None:
    """``-o -`` into a terminal: a usage error, never image bytes on the screen."""
    stream = stream if stream is not None else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal:
        raise UsageError("-o -: standard output is a terminal; redirect it (> out.png) or pipe it")


def summary_line(statuses: Iterable[str], seconds: float) -> str:
    """``12 written, 1 skipped, 0 failed in 3.2 s``: the end of a batch, on standard error."""
    counts = {"ok": 0, "skipped": 0, "error": 0}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return f"{counts['ok']} written, {counts['skipped']} skipped, {counts['error']} failed in {seconds:.1f} s"
