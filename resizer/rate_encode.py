"""Rate-targeted encoding (``resizer encode --max-bytes N`` / ``--bpp B``): the best decoded quality in a budget.

The encoder has the original, so it decodes what it would write and measures it. Each
candidate pipeline (:class:`Candidate`) says what gets coded: the picture itself at full
size (the codec alone), or a learned pair's thumbnail at x2, x3, x4 with its pairing
metadata. What ``resizer decode`` makes of the coded file is measured through decode's own
code path (:func:`decoded_result`), so the PSNR reported is the PSNR a round trip gets.

Per candidate, a bisection over the codec quality finds the highest quality whose whole file
(metadata included) fits the budget; file size is monotone in quality only roughly, so every
answer is a file actually encoded and measured, and a few qualities past the first one that
misses are tried too. The downscale runs once per image and candidate (:func:`prepare`), the
upscaler once per candidate at the quality the budget allows; the candidate with the highest
luma PSNR (:func:`resizer.metrics.psnr` on :func:`resizer.color.luma`, whole image) wins.

A pipeline is one :class:`Candidate` in :func:`candidates`, whose ``coded`` picture records in
``resizer:pipeline`` what ``decode`` must apply. For JPEG, the codec alone is also tried as a
plain JPEG without any resizer key (:class:`PlainJpeg`): ``decode`` restores such a file with the
learned restoration network (``dejpeg``, up to quality 65) and keeps it as decoded above, and
it spends no bytes on metadata.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ModelError, ResizerError, UsageError
from .geometry import SizeSpec
from .image_io import EncodeOptions, Picture, encode_picture, load_picture, to_8bit
from .methods import ResizeRequest, RunOptions, get_method
from .pairing import CODEC_ONLY, ENCODE_KEYS, PAIRING_KEYS, PIPELINE_KEY, RESTORE_KEY
from .resizing import resize_planned

__all__ = ["RateTarget", "Candidate", "CodecAlone", "PlainCodec", "PlainJpeg", "LearnedPair", "BicubicThumbnail",
           "RateChoice", "Prepared", "candidates", "prepare", "choose", "encode_to_budget", "decoded_result", "for_codec",
           "highest_fitting_quality"]

LOWEST_QUALITY, HIGHEST_QUALITY = 1, 100
PAIR_SCALES = (2, 3, 4)
PROBE_ABOVE = 3  # qualities tried past the bisection's first miss (sizes are not strictly monotone)
# Pairing keys a rate-targeted thumbnail leaves out: ``decode`` reads the method, the model (which pair
# made it: an encode-only one), the scale and the original size, not the version (some 15 bytes of a
# budget, 1 % of a 1.5 kB file). Empty: write them all.
UNREAD_PAIRING_KEYS: tuple[str, ...] = ("resizer:version",)


@dataclass(frozen=True)
class RateTarget:
    """A byte budget per image (``max_bytes``, or ``bpp`` bits per pixel of the original) and what may spend it."""

    max_bytes: int | None = None
    bpp: float | None = None
    codec: str = "jpeg"  # the codec's name (``resizer.codec.CODECS``) and its image format key
    format: str = "jpg"
    method: str = "dsn"  # the learned pair of the downscaled candidates
    scales: tuple[int, ...] = PAIR_SCALES

    def __post_init__(self) -> None:
        if (self.max_bytes is None) == (self.bpp is None):
            raise UsageError("give one of --max-bytes and --bpp")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise UsageError(f"--max-bytes must be at least 1, not {self.max_bytes}")
        if self.bpp is not None and not (math.isfinite(self.bpp) and self.bpp > 0):
            raise UsageError(f"--bpp must be a number above 0, not {self.bpp:g}")

    def budget(self, width: int, height: int) -> int:
        """The most bytes a ``width`` x ``height`` original's file may take."""
        if self.max_bytes is not None:
            return int(self.max_bytes)
        return int(math.floor(self.bpp * width * height / 8.0 + 1e-9))


class Candidate:
    """One pipeline: what gets coded (``coded``, run once per image); ``decode`` makes the rest.

    ``made_from`` names the expensive part (a downscale): candidates that share it (a pair with
    and without restoration first) differ only in their keys, and :func:`prepare` runs it once.
    """

    name: str = ""
    scale: int = 1

    @property
    def made_from(self) -> str:
        return self.name

    def make(self, picture: Picture, run: RunOptions) -> Picture:
        """The picture before its keys (the full-size picture, or a thumbnail)."""
        return picture

    def label(self, made: Picture, original: Picture) -> Picture:
        """``made`` with the metadata ``decode`` reads (a fresh metadata object: ``made`` may be shared)."""
        raise NotImplementedError

    def coded(self, picture: Picture, run: RunOptions) -> Picture:
        """The picture the codec compresses, with the metadata ``decode`` reads."""
        return self.label(self.make(picture, run), picture)


class CodecAlone(Candidate):
    """The codec at full size; ``decode`` keeps the decoded pixels."""

    name = CODEC_ONLY

    def label(self, made: Picture, original: Picture) -> Picture:
        return _recorded(_without_resizer_keys(made), CODEC_ONLY)


class PlainCodec(Candidate):
    """The codec at full size with no resizer key: ``decode`` keeps a plain WebP, AVIF or JPEG 2000 as decoded."""

    name = "plain"

    def label(self, made: Picture, original: Picture) -> Picture:
        return _without_resizer_keys(made)


class PlainJpeg(PlainCodec):
    """The codec at full size with no resizer key: ``decode`` treats it as any plain JPEG (restored, or as decoded)."""

    name = "jpeg-restore"


@dataclass
class LearnedPair(Candidate):
    """A learned pair's downscale at ``scale``; ``decode`` runs its partner upscaler (the pairing metadata).

    With ``restorer`` (``dejpeg``), ``decode`` first restores the decoded thumbnail with it
    (``resizer:restore``): the pair's upscaler was trained through JPEG, but at low qualities
    the restoration network still removes artefacts it leaves (measured: up to +0.45 dB).
    """

    method: str
    scale: int
    restorer: str | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        pair = f"{self.method}-x{self.scale}"
        return f"{self.restorer}-{pair}" if self.restorer else pair

    @property
    def made_from(self) -> str:
        return f"{self.method}-x{self.scale}"

    def make(self, picture: Picture, run: RunOptions) -> Picture:
        return resize_planned(picture, "down", SizeSpec(scale=self.scale), self.method, for_codec(run), False,
                              None)[0]

    def label(self, made: Picture, original: Picture) -> Picture:
        return _recorded(_without_unread_keys(made), self.name, self.restorer)


@dataclass
class BicubicThumbnail(Candidate):
    """A MATLAB-bicubic thumbnail; ``decode`` restores it (``restorer``) and enlarges it with ``upscaler``.

    The pairing keys name the upscaler (``asdn``, the bundled arbitrary-scale one) and the
    original size, so ``decode`` needs nothing new beyond ``resizer:restore``.
    """

    scale: int = 2
    upscaler: str = "asdn"
    restorer: str = "dejpeg"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.restorer}-{self.upscaler}-x{self.scale}"

    @property
    def made_from(self) -> str:
        return f"bicubic-x{self.scale}"

    def make(self, picture: Picture, run: RunOptions) -> Picture:
        return resize_planned(_without_resizer_keys(picture), "down", SizeSpec(scale=self.scale), "matlab-bicubic",
                              run, False, None)[0]

    def label(self, made: Picture, original: Picture) -> Picture:
        from . import __version__
        from .pairing import Pairing

        made = copy.copy(made)
        pairing = Pairing(self.upscaler, "matlab-bicubic", __version__, float(self.scale), (original.width, original.height))
        text = {**made.metadata.text, **pairing.to_text()}
        del text["resizer:model"]  # no learned downscaler made it: decode runs the upscaler's own entry
        made.metadata = dataclasses.replace(made.metadata, text=text)
        return _recorded(_without_unread_keys(made), self.name, self.restorer)


def for_codec(run: RunOptions) -> RunOptions:
    """``run`` for a thumbnail only the codec sees: a method's encode-only pair first (``WeightsEntry.use``)."""
    return dataclasses.replace(run, use="encode")


def _without_resizer_keys(picture: Picture) -> Picture:
    """A copy of a full-size ``picture`` without pairing or encode keys it carried in (a thumbnail's, say):

    kept, they would make ``decode`` take the file for a thumbnail resized since it was made.
    """
    picture = copy.copy(picture)
    text = {k: v for k, v in picture.metadata.text.items() if k not in ENCODE_KEYS + PAIRING_KEYS}
    picture.metadata = dataclasses.replace(picture.metadata, text=text)
    return picture


def _without_unread_keys(picture: Picture) -> Picture:
    """A copy of a thumbnail without the pairing keys ``decode`` does not read (:data:`UNREAD_PAIRING_KEYS`)."""
    picture = copy.copy(picture)
    text = {k: v for k, v in picture.metadata.text.items() if k not in UNREAD_PAIRING_KEYS}
    picture.metadata = dataclasses.replace(picture.metadata, text=text)
    return picture


def _recorded(picture: Picture, pipeline: str, restorer: str | None = None) -> Picture:
    """``picture`` with a fresh metadata object whose text names ``pipeline`` (stale encode keys dropped)."""
    text = {k: v for k, v in picture.metadata.text.items() if k not in ENCODE_KEYS}
    text[PIPELINE_KEY] = pipeline
    if restorer:
        text[RESTORE_KEY] = restorer
    picture.metadata = dataclasses.replace(picture.metadata, text=text)
    return picture


def candidates(target: RateTarget, run: RunOptions) -> list[Candidate]:
    """The pipelines to search: the codec alone, then ``target.method`` at each scale it has weights for.

    A wrong method is a ``UsageError``, before any file is read; scales without weights are left
    out (and the first reason raised when no scale has them).
    """
    if run.weights:
        raise UsageError("--weights goes with --scale: a byte budget searches the bundled pairs at x2, x3, x4")
    from .learned import PairedMethod

    run = for_codec(run)
    method = get_method(target.method)
    if not isinstance(method, PairedMethod):
        raise UsageError(f"method '{target.method}' is not a learned down/up pair (dsn or car)")
    jpeg = target.codec == "jpeg"
    restorer = _restorer(run) if jpeg else None
    found: list[Candidate] = [CodecAlone(), PlainJpeg()] if jpeg else [PlainCodec()]
    problems: list[ResizerError] = []
    for scale in target.scales:
        try:
            for direction in ("down", "up"):
                method.validate(ResizeRequest(direction, (64, 64), float(scale)), run)
        except (ModelError, UsageError) as exc:  # no weights at this scale (or a device that cannot run any)
            problems.append(exc)
            continue
        found.append(LearnedPair(method.name, int(scale)))
        if restorer:
            found.append(LearnedPair(method.name, int(scale), restorer))
    if not any(isinstance(c, LearnedPair) for c in found) and problems:
        raise problems[0]
    if restorer and 2 in target.scales and _usable("asdn", 2.0, run):
        found.append(BicubicThumbnail(2, "asdn", restorer))
    return found


def _usable(name: str, scale: float, run: RunOptions) -> bool:
    """True if method ``name`` can upscale by ``scale`` here (its weights are installed)."""
    try:
        get_method(name).validate(ResizeRequest("up", (64, 64), scale), run)
    except (ModelError, UsageError):
        return False
    return True


def _restorer(run: RunOptions) -> str | None:
    """The JPEG restoration family the restored candidates use, or None without its weights."""
    from .restoration import DEFAULT_RESTORER

    return DEFAULT_RESTORER if _usable(DEFAULT_RESTORER, 1.0, run) else None


def decoded_result(data: bytes, run: RunOptions) -> Picture:
    """What ``resizer decode`` makes of a file ``encode`` wrote (its code path: pairing, or the pixels as decoded)."""
    picture = load_picture(data, max_pixels=None, name="<encoded>")
    return resize_planned(picture, "up", SizeSpec(), None, run, True, None)[0]


def highest_fitting_quality(encode: Callable[[int], bytes], budget: int, lowest: int = LOWEST_QUALITY,
                            highest: int = HIGHEST_QUALITY) -> tuple[int, bytes] | None:
    """The highest quality whose encoding (``encode(q)``) is at most ``budget`` bytes, with those bytes.

    ``None`` when even ``lowest`` is too big. Bisection assumes size grows with quality;
    it only ever returns a quality whose bytes were measured to fit, and tries
    ``PROBE_ABOVE`` qualities past the first miss in case a step goes the other way.
    """
    sizes: dict[int, bytes] = {}

    def fits(quality: int) -> bool:
        if quality not in sizes:
            sizes[quality] = encode(quality)
        return len(sizes[quality]) <= budget

    if not fits(lowest):
        return None
    if fits(highest):
        return highest, sizes[highest]
    low, high = lowest, highest  # invariant: low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    for quality in range(high + 1, min(highest, high + PROBE_ABOVE) + 1):
        if fits(quality):
            low = quality
    return low, sizes[low]


@dataclass
class RateChoice:
    """The file one image gets: its bytes, the pipeline and quality chosen, and the PSNR measured on its decode."""

    data: bytes
    pipeline: str
    scale: int
    codec: str
    quality: int
    budget: int
    pixels: int  # of the original, for bits per pixel
    psnr: float
    size: tuple[int, int]  # (width, height) of the coded picture
    # every candidate's best fit; its "psnr" is the ranking one (decode with one restoration pass)
    tried: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bpp(self) -> float:
        return 8.0 * len(self.data) / self.pixels

    def to_json(self) -> dict[str, Any]:
        return {"bytes": len(self.data), "budget": self.budget, "bpp": round(self.bpp, 5),
                "pipeline": self.pipeline, "scale": self.scale, "codec": self.codec, "quality": self.quality,
                "psnr": None if math.isinf(self.psnr) else round(self.psnr, 4)}


@dataclass
class Prepared:
    """One candidate's coded picture for one image, with its encodings and measured PSNRs cached by quality."""

    candidate: Candidate
    coded: Picture
    encodings: dict[int, bytes] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    lumas: dict[int, np.ndarray] | None = None  # the decoded luma by quality, when a caller keeps it (benchmarks)


@dataclass
class _Context:
    reference: np.ndarray  # luma of the original, 8-bit scale
    fmt: str
    strip: bool
    options: EncodeOptions | None
    run: RunOptions
    smaller_scans: bool  # JPEG: also try progressive scans at each quality and keep the smaller file


def prepare(picture: Picture, pipelines: Sequence[Candidate], run: RunOptions) -> list[Prepared]:
    """Each candidate's coded picture (the downscales run here, once per image and ``made_from``)."""
    made: dict[str, Picture] = {}
    prepared = []
    for candidate in pipelines:
        if candidate.made_from not in made:
            made[candidate.made_from] = candidate.make(picture, run)
        prepared.append(Prepared(candidate, candidate.label(made[candidate.made_from], picture)))
    return prepared


def _luma(picture: Picture) -> np.ndarray:
    from .color import luma

    return luma(to_8bit(picture.pixels) if picture.bit_depth == 16 else picture.pixels)


def _encode(entry: Prepared, quality: int, context: _Context) -> bytes:
    if quality not in entry.encodings:
        data = encode_picture(entry.coded, context.fmt, quality=quality, strip=context.strip, options=context.options)
        if context.smaller_scans:  # the same coefficients, so the same pixels: only the entropy coding differs
            options = dataclasses.replace(context.options or EncodeOptions(), progressive=True)
            progressive = encode_picture(entry.coded, context.fmt, quality=quality, strip=context.strip,
                                         options=options)
            data = progressive if len(progressive) < len(data) else data
        entry.encodings[quality] = data
    return entry.encodings[quality]


def _score(entry: Prepared, quality: int, context: _Context) -> float:
    """The candidate's ranking PSNR: ``decode``'s result with one restoration pass (8 would take 8 times as long)."""
    from .metrics import psnr

    if quality not in entry.scores:
        result = _luma(decoded_result(entry.encodings[quality], dataclasses.replace(context.run, restore_passes=1)))
        entry.scores[quality] = psnr(context.reference, result)
        if entry.lumas is not None:
            entry.lumas[quality] = result
    return entry.scores[quality]


def choose(original: Picture, prepared: Sequence[Prepared], target: RateTarget, *, run: RunOptions = RunOptions(),
           strip: bool = False, options: EncodeOptions | None = None, name: str = "<image>",
           smaller_scans: bool = True) -> RateChoice:
    """The best candidate under ``target``'s budget for ``original``; ``ResizerError`` naming ``name`` if none fits.

    ``smaller_scans``: for JPEG without ``--progressive``, each quality is also coded with
    progressive scans and the smaller file kept (the same pixels in up to 4 % fewer bytes).
    Candidates are ranked on ``decode``'s result with one restoration pass; the winner's PSNR
    is then measured as ``decode`` makes it (:data:`resizer.restoration.DECODE_ENSEMBLE` passes),
    which keeps the search's time near a single pass's.
    """
    # resizer's keys as a JPEG comment, not XMP: some 220 bytes more for the image
    options = dataclasses.replace(options or EncodeOptions(), compact_text=True)
    scans = smaller_scans and target.codec == "jpeg" and not options.progressive
    context = _Context(_luma(original), target.format, strip, options, run, scans)
    budget = target.budget(original.width, original.height)
    best: RateChoice | None = None
    tried: dict[str, dict[str, Any]] = {}
    smallest: tuple[int, str] | None = None
    restoring = {e.candidate.name for e in prepared if _restores(e.candidate, target)}
    for entry in prepared:
        fit = highest_fitting_quality(lambda q: _encode(entry, q, context), budget)
        lowest = len(entry.encodings[LOWEST_QUALITY])
        if smallest is None or lowest < smallest[0]:
            smallest = (lowest, entry.candidate.name)
        if fit is None:
            continue
        quality, data = fit
        score = _score(entry, quality, context)
        tried[entry.candidate.name] = {"quality": quality, "bytes": len(data), "psnr": round(score, 4)}
        if best is None or score > best.psnr or (score == best.psnr and len(data) < len(best.data)):
            best = RateChoice(data, entry.candidate.name, entry.candidate.scale, target.codec, quality, budget,
                              original.width * original.height, score, (entry.coded.width, entry.coded.height))
    if best is None:
        raise ResizerError(f"{name}: no file fits in {budget} bytes: the smallest, {smallest[1]} at quality "
                           f"{LOWEST_QUALITY}, takes {smallest[0]}; raise --max-bytes/--bpp")
    from .restoration import decode_passes

    if best.pipeline in restoring and decode_passes(run) != 1:  # the winner's PSNR as decode makes it, every pass
        from .metrics import psnr

        best.psnr = psnr(context.reference, _luma(decoded_result(best.data, run)))
    best.tried = tried
    return best


def _restores(candidate: Candidate, target: RateTarget) -> bool:
    """True if ``decode`` may run a restoration on this candidate's file (its PSNR then depends on the passes)."""
    return isinstance(candidate, PlainJpeg) or bool(getattr(candidate, "restorer", None))


def encode_to_budget(picture: Picture, target: RateTarget, *, run: RunOptions = RunOptions(), strip: bool = False,
                     options: EncodeOptions | None = None, name: str = "<image>") -> RateChoice:
    """:func:`prepare` then :func:`choose`: one image's rate-targeted file."""
    return choose(picture, prepare(picture, candidates(target, run), run), target, run=run, strip=strip,
                  options=options, name=name)
