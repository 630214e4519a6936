"""Metadata carried from input to output: EXIF, ICC, DPI, XMP, PNG text, and resizer's own keys.

``Metadata.text`` holds the ``resizer:<name>`` keys resizer writes itself (pairing data of
learned down/up methods). They go to PNG text chunks, and to JPEG/WebP/AVIF/TIFF/JPEG 2000
as a compact XMP block in the ``resizer`` namespace; both are read back. A JPEG may carry them
in a comment segment instead (``resizer:key=value`` lines, :func:`text_comment`: some 25 bytes
where XMP takes 250, which ``resizer encode --max-bytes`` spends on the image). ``strip=True``
drops ICC, EXIF, DPI, XMP and foreign PNG text but keeps resizer's own ``text``.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree

from PIL import Image

from .orientation import EXIF_PREFIX, ORIENTATION_TAG, reset_exif_orientation, reset_xmp_orientation
from .picture import Metadata

RESIZER_XMP_NS = "http://ns.resizer.invalid/1.0/"
_TEXT_KEY = re.compile(r"^resizer:([A-Za-z_][A-Za-z0-9_.-]*)$")
_TIFF_EXIF_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)  # description, make, model, software, date, artist, copyright


def read_metadata(image: Image.Image, icc: bytes | None, orientation: int, source_format: str | None,
                  frames: int) -> Metadata:
    """The ``Metadata`` of a decoded Pillow image whose pixels were turned upright from ``orientation``."""
    info = image.info
    metadata = Metadata(icc_profile=icc or None, source_format=source_format, frames=frames)
    dpi = info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(float(v) > 0 for v in dpi):
        metadata.dpi = (float(dpi[0]), float(dpi[1]))
    metadata.exif = _read_exif(image, orientation)
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if not xmp and source_format == "JPEG2000" and b"<x:xmpmeta" in bytes(info.get("comment") or b""):
        xmp = info["comment"]  # resizer writes its XMP packet into the codestream comment
    if xmp:
        xmp = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
        if orientation != 1:
            xmp = reset_xmp_orientation(xmp)
        metadata.xmp, metadata.text = split_xmp(xmp)
    if source_format == "JPEG" and not metadata.text:
        metadata.text = read_text_comment(info.get("comment"))
    if source_format == "PNG":
        for key, value in (getattr(image, "text", None) or {}).items():
            if key.startswith("resizer:"):
                metadata.text[key] = str(value)
            elif key != "XML:com.adobe.xmp" and not key.startswith("Raw profile type"):
                metadata.png_text[key] = str(value)
    return metadata


def _read_exif(image: Image.Image, orientation: int) -> bytes | None:
    raw = image.info.get("exif")
    try:
        if raw:
            raw = bytes(raw)
            if not raw.startswith(EXIF_PREFIX):
                raw = EXIF_PREFIX + raw  # WebP stores the TIFF block bare
            return reset_exif_orientation(raw) if orientation != 1 else raw
        exif = image.getexif()
        if not len(exif):
            return None
        if image.format == "TIFF":  # IFD0 of a TIFF is its own structure: keep only the descriptive tags
            clean = Image.Exif()
            for tag in _TIFF_EXIF_TAGS:
                if tag in exif:
                    clean[tag] = exif[tag]
            for pointer in (0x8769, 0x8825):  # Exif and GPS sub-IFDs
                sub = exif.get_ifd(pointer)
                if sub:
                    clean[pointer] = dict(sub)
            exif = clean
            if not len(exif):
                return None
        elif ORIENTATION_TAG in exif:  # e.g. PNG "Raw profile type exif"
            exif[ORIENTATION_TAG] = 1
        return exif.tobytes()
    except Exception:  # unreadable EXIF: drop it rather than refuse the picture
        return None


def split_xmp(xmp: bytes) -> tuple[bytes | None, dict[str, str]]:
    """(XMP without resizer's block, resizer's keys). The block is rewritten from ``text`` on save."""
    text: dict[str, str] = {}
    try:
        root = ElementTree.fromstring(xmp.strip(b"\x00 \r\n\t"))
    except ElementTree.ParseError:
        return xmp, text
    prefix = "{" + RESIZER_XMP_NS + "}"
    for element in root.iter():
        for key, value in element.attrib.items():
            if key.startswith(prefix):
                text["resizer:" + key[len(prefix):]] = value
        if isinstance(element.tag, str) and element.tag.startswith(prefix):
            text["resizer:" + element.tag[len(prefix):]] = element.text or ""
    if not text:
        return xmp, text
    rest = _RESIZER_BLOCK.sub(b"", xmp)
    if b"<rdf:Description" not in rest:  # nothing but our own block: no XMP to carry
        return None, text
    return rest, text


# resizer's block: the compact form (``.../>``, attributes) or the element form of older files.
_RESIZER_BLOCK = re.compile(
    rb"\s*<rdf:Description[^>]*xmlns:resizer=\"" + re.escape(RESIZER_XMP_NS.encode())
    + rb"\"(?:[^>]*?/>|[^>]*>.*?</rdf:Description>)",
    re.DOTALL,
)


def check_text(text: dict[str, str]) -> None:
    """Refuse keys outside the ``resizer:<name>`` form: they could not be read back from XMP."""
    for key in text:
        if not _TEXT_KEY.match(key):
            raise ValueError(f"metadata.text key {key!r} must look like 'resizer:name'")


def xmp_with_text(xmp: bytes | None, text: dict[str, str]) -> bytes | None:
    """``xmp`` with a resizer block holding ``text`` (a fresh packet if there is no usable XMP).

    The block is written compactly (keys as attributes; a fresh packet has no ``xpacket``
    wrapper, which XMP makes optional): its bytes count in every coded thumbnail, where
    ``resizer encode`` competes with the plain codec bit for bit.
    """
    if not text:
        return xmp
    attributes = "".join(f' resizer:{_TEXT_KEY.match(k).group(1)}="{_attribute(v)}"'
                         for k, v in text.items())
    block = f'<rdf:Description rdf:about="" xmlns:resizer="{RESIZER_XMP_NS}"{attributes}/>'.encode()
    if xmp and b"</rdf:RDF>" in xmp:
        at = xmp.rindex(b"</rdf:RDF>")
        return xmp[:at] + block + xmp[at:]
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            + block + b'</rdf:RDF></x:xmpmeta>')


def text_comment(text: dict[str, str]) -> bytes | None:
    """resizer's keys as a JPEG comment (``resizer:key=value`` lines); None if a value cannot be written so."""
    check_text(text)
    if not text or any("\n" in v or "\r" in v for v in text.values()):
        return None
    return "\n".join(f"{k}={v}" for k, v in text.items()).encode("utf-8")


def read_text_comment(comment: bytes | str | None) -> dict[str, str]:
    """The keys of a :func:`text_comment` (any other comment gives none)."""
    raw = comment.encode("utf-8", "replace") if isinstance(comment, str) else bytes(comment or b"")
    if not raw.startswith(b"resizer:"):
        return {}
    text = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if not sep or not _TEXT_KEY.match(key):
            return {}  # not resizer's: read nothing rather than half
        text[key] = value
    return text


def _attribute(value: str) -> str:
    """``value`` escaped for a double-quoted XML attribute (``xml.sax.saxutils`` would import urllib and http)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


GPS_IFD = 0x8825
_XMP_GPS_ATTRIBUTE = re.compile(rb'\s+exif:GPS\w+="[^"]*"')
_XMP_GPS_ELEMENT = re.compile(rb"<exif:(GPS\w+)\b[^>]*?(?:/>|>.*?</exif:\1>)", re.S)


def without_gps(exif: bytes | None, xmp: bytes | None) -> tuple[bytes | None, bytes | None]:
    """EXIF without its GPS IFD and XMP without ``exif:GPS*`` properties: no location in outputs.

    Blocks without GPS come back byte for byte; EXIF with GPS is rewritten by Pillow.
    """
    if exif and exif.startswith(EXIF_PREFIX):
        try:
            parsed = Image.Exif()
            parsed.load(exif)
            if GPS_IFD in parsed:
                del parsed[GPS_IFD]
                exif = parsed.tobytes()
        except Exception:  # unreadable EXIF: drop it rather than risk leaking a location
            exif = None
    if xmp and b"GPS" in xmp:
        xmp = _XMP_GPS_ELEMENT.sub(b"", _XMP_GPS_ATTRIBUTE.sub(b"", xmp))
    return exif, xmp
