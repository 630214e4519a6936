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
_WRITE_FORMATS.update({"heic": "HEIF", "heif": "HEIF"})  # through pillow-heif (extra 'heif'), loaded when used
if features.check("avif"):
    _WRITE_FORMATS["avif"] = "AVIF"
if features.check("jpg_2000"):
    _WRITE_FORMATS.update({"jp2": "JPEG2000", "j2k": "JPEG2000"})
WRITE_FORMATS: frozenset[str] = frozenset(_WRITE_FORMATS)  # names accepted by ``format=`` / suffixes

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {f".{name}" for name in _WRITE_FORMATS} | {".pbm", ".dib", ".tga", ".apng"}
)
DEFAULT_WRITE_FORMAT = "png"  # for inputs whose own format resizer cannot write (TGA, PBM, DIB, PSD, DCX...)


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


def writable_format_for(path: str | Path) -> str | None:
    """``None`` when ``path``'s suffix is a format resizer writes (keep the name), else ``"png"``.

    Default output names follow their input (``photo.jpg`` -> ``photo_down2.jpg``); an input
    in a format that cannot be written (``.tga``, ``.pbm``, ``.dib``, ``.psd``, no suffix...)
    gets a PNG output instead (``photo.tga`` -> ``photo_down2.png``), which holds every
    picture losslessly (alpha and 16 bits included).
    """
    return None if Path(path).suffix.lower().lstrip(".") in _WRITE_FORMATS else DEFAULT_WRITE_FORMAT


def source_output_format(source_format: str | None) -> str:
    """The ``format=`` name that writes a picture in its source's format (Pillow's ``image.format``,
    e.g. "JPEG", "JPEG2000", "TGA"), or ``"png"`` where that format cannot be written (standard output)."""
    key = (source_format or "").lower()
    key = {"jpeg2000": "jp2", "mpo": "jpeg"}.get(key, key)
    return key if key in _WRITE_FORMATS else DEFAULT_WRITE_FORMAT
