"""Which files are images and which formats resizer writes: the one image-file rule.

``IMAGE_SUFFIXES`` is the single set of suffixes that picks images out of folders (the
pipeline, the benchmark and training all ask :func:`is_image_path` / :func:`is_image_file`);
``WRITE_FORMATS`` are the names accepted by ``--format`` and as output suffixes.
"""

from __future__ import annotations

from pathlib import Path

from PIL import features

from ..errors import ImageWriteError

_WRITE_FORMATS: dict[str, str] = {
    "png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "jfif": "JPEG", "webp": "WEBP",
    "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP", "gif": "GIF", "ppm": "PPM", "pgm": "PPM", "pnm": "PPM",
}
if features.check("avif"):
    _WRITE_FORMATS["avif"] = "AVIF"
if features.check("jpg_2000"):
    _WRITE_FORMATS.update({"jp2": "JPEG2000", "j2k": "JPEG2000"})
WRITE_FORMATS: frozenset[str] = frozenset(_WRITE_FORMATS)  # names accepted by ``format=`` / suffixes

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {f".{name}" for name in _WRITE_FORMATS} | {".pbm", ".dib", ".tga", ".apng"}
)



def is_image_path(path: str | Path) -> bool:
    """True if the suffix is one resizer reads (used to pick files from folders)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_image_file(path: str | Path) -> bool:
    """True for a regular, non-hidden file with an image suffix: what a dataset or training folder counts.

    Hidden files are skipped so that editors' and resizer's own temporary files
    (``.photo.png.part``) and macOS ``._photo.png`` forks are never read as images.
    """
    path = Path(path)
    return not path.name.startswith(".") and is_image_path(path) and path.is_file()


def output_format(path: str | Path | None, format: str | None = None) -> str:
    """The Pillow format name for ``format`` (e.g. "jpg") or else ``path``'s suffix; raises ``ImageWriteError``."""
    key = (format or (Path(path).suffix if path is not None else "")).lower().lstrip(".")
    if key not in _WRITE_FORMATS:
        label = str(path) if path is not None else "<stdout>"
        known = ", ".join(sorted(_WRITE_FORMATS))
        what = f"format '{format}'" if format else f"suffix '{Path(label).suffix}'"
        raise ImageWriteError(f"{label}: unknown output {what} (known: {known})")
    return _WRITE_FORMATS[key]
