"""Learned resampling around image codecs: ``resizer encode`` / ``resizer decode`` and rate-distortion.

``encode`` is a paired downscale (DSN by default) written in an ordinary codec (JPEG, WebP,
AVIF, JPEG 2000) with the pairing metadata of :mod:`resizer.pairing`; ``decode`` reads it
and restores the original size with the paired upscaler. Both are batches of the
pipeline (:mod:`resizer.pipeline`), so files, folders, ``--json`` and the safety rules
are those of ``down``/``up``.

:func:`rate_distortion` measures what that buys: bits per pixel of the original and PSNR/
SSIM on luma (the benchmark protocol's crop and shave) for the plain codec, for MATLAB
bicubic around it, and for the learned pair around it, at each quality (and, with
``rate_targeted``, for ``encode --max-bytes`` given the plain file's bytes as its budget); the
gain of a pipeline is its PSNR minus the plain codec's PSNR interpolated at the same bits per pixel.
:func:`summarize` condenses each curve against the plain codec's (and the learned pair's
against the bicubic pipeline's) into the Bjontegaard deltas codec comparisons use: the mean
PSNR gain over the common rate range, and the mean change in bits at equal PSNR. The bytes
counted are the whole file as ``encode`` writes it, metadata included.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ResizerError, UsageError
from .image_io import WRITE_FORMATS, Picture, encode_picture, load_picture, to_8bit
from .methods import ResizeRequest, RunOptions, get_method
from .geometry import SizeSpec
from .pipeline import BatchSettings
from .rate_encode import RateTarget, candidates, choose, decoded_result, for_codec, prepare

__all__ = ["CODECS", "RatePoint", "RateSummary", "bjontegaard", "codec_format", "decode_settings", "encode_settings",
           "gain_at_equal_rate", "rate_distortion", "summarize"]

# codec name -> the output format key of resizer.image_io
CODECS: dict[str, str] = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "jpeg2000": "jp2"}
DEFAULT_CODEC = "jpeg"
DEFAULT_PAIR = "dsn"
PLAIN, BICUBIC = "plain", "bicubic"


def codec_format(codec: str) -> str:
    """The image format for ``codec``; ``UsageError`` for unknown codecs or ones this Pillow cannot write."""
    key = (codec or "").strip().lower()
    if key not in CODECS:
        raise UsageError(f"unknown codec '{codec}' (known: {', '.join(CODECS)})")
    if CODECS[key] not in WRITE_FORMATS:
        raise UsageError(f"codec '{key}' is not available in this Pillow build")
    return CODECS[key]


def encode_settings(scale: float | None = None, codec: str = DEFAULT_CODEC, quality: int | None = None, *,
                    method: str = DEFAULT_PAIR, max_bytes: int | None = None, bpp: float | None = None,
                    **batch: Any) -> BatchSettings:
    """``resizer encode``: a paired ``down`` at ``scale`` written in ``codec``; outputs tagged ``enc<S>``.

    With ``max_bytes`` or ``bpp`` (a budget per image) the pipeline and quality are searched
    instead (:mod:`resizer.rate_encode`); ``scale`` and ``quality`` then may not be given, and
    outputs are tagged ``enc``. The pair runs for a codec (``RunOptions.use`` ``"encode"``): an
    encode-only pair of the method serves it before one whose thumbnails are for viewing.
    """
    batch["run"] = for_codec(batch.get("run") or RunOptions())
    if max_bytes is not None or bpp is not None:
        if scale is not None or quality is not None:
            raise UsageError("--max-bytes/--bpp choose the scale and quality per image: leave out --scale and --quality")
        target = RateTarget(max_bytes=max_bytes, bpp=bpp, codec=codec.strip().lower(), format=codec_format(codec),
                            method=method)
        candidates(target, batch["run"])  # a wrong pair fails before any file is read
        return BatchSettings(direction="down", size=SizeSpec(), method=method, format=target.format, tag="enc",
                             rate=target, **batch)
    scale = 2.0 if scale is None else scale
    if not float(scale).is_integer():
        raise UsageError(f"--scale must be an integer for encode (the learned pairs are x2, x3, x4), not {scale:g}")
    return BatchSettings(direction="down", size=SizeSpec(scale=scale), method=method, format=codec_format(codec),
                         quality=quality, tag=f"enc{scale:g}", **batch)


def decode_settings(format: str | None = None, **batch: Any) -> BatchSettings:
    """``resizer decode``: ``up`` of files made by ``encode`` (pairing metadata required) to their original size.

    Default output names are tagged ``dec`` and, unless ``format`` or an output file name
    says otherwise, written as PNG (a lossless result; re-encoding would add artefacts).
    """
    from .restoration import ENSEMBLE_PASSES

    run = batch.get("run")
    if run is not None and run.restore_passes not in (None, *ENSEMBLE_PASSES):
        raise UsageError(f"--ensemble is 1, 2, 4 or 8 passes, not {run.restore_passes}")
    output = batch.get("output")
    if format is None and (output is None or output.endswith(("/", "\\")) or Path(output).is_dir()):
        format = "png"
    return BatchSettings(direction="up", size=SizeSpec(), method=None, format=format, tag="dec",
                         require_pairing=True, **batch)


# --------------------------------------------------------------------------- rate-distortion


@dataclass
class RatePoint:
    """One pipeline at one quality on one dataset: means over its images."""

    dataset: str
    pipeline: str  # "plain", "bicubic", the learned pair's name, or "rate" (the rate-targeted encode)
    codec: str
    quality: int
    scale: float
    bpp: float  # bits per pixel of the (cropped) original
    psnr: float
    ssim: float
    images: int
    gain: float | None = None  # PSNR minus the plain codec's at the same bpp (None outside its range)
    seconds: float = 0.0
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "pipeline": self.pipeline, "codec": self.codec, "quality": self.quality,
                "scale": self.scale, "bpp": round(self.bpp, 5), "psnr": round(self.psnr, 4),
                "ssim": round(self.ssim, 5), "gain": None if self.gain is None else round(self.gain, 4),
                "images": self.images, "seconds": round(self.seconds, 3), "per_image": self.per_image}


def gain_at_equal_rate(reference: Sequence[RatePoint], point: RatePoint) -> float | None:
    """``point.psnr`` minus the ``reference`` curve's PSNR linearly interpolated at ``point.bpp``.

    ``None`` when ``point.bpp`` lies outside the reference's range (no extrapolation).
    """
    curve = sorted((p.bpp, p.psnr) for p in reference)
    if len(curve) < 2 or not curve[0][0] <= point.bpp <= curve[-1][0]:
        return None
    bpps, psnrs = zip(*curve)
    return point.psnr - float(np.interp(point.bpp, bpps, psnrs))


def _fit_mean(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    """Mean of a polynomial fit of ``y`` over ``x`` (cubic, or lower with fewer points) on ``[low, high]``."""
    degree = min(3, len(x) - 1)
    integral = np.polyint(np.polyfit(x, y, degree))
    return float((np.polyval(integral, high) - np.polyval(integral, low)) / (high - low))


def bjontegaard(reference: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]],
                ) -> tuple[float | None, float | None]:
    """``(delta PSNR in dB, delta rate in %)`` of ``test`` against ``reference`` (points ``(bpp, psnr)``).

    Bjontegaard's method (VCEG-M33): PSNR fitted over log rate, averaged over the rates both
    curves cover; log rate fitted over PSNR, averaged over the PSNRs both cover. A negative
    rate delta means fewer bits for the same PSNR. Each delta is ``None`` where the curves
    share no such range (or either has fewer than two points).
    """
    ref = np.asarray(sorted(reference), dtype=np.float64).reshape(-1, 2)
    new = np.asarray(sorted(test), dtype=np.float64).reshape(-1, 2)
    if len(ref) < 2 or len(new) < 2:
        return None, None
    ref_rate, new_rate = np.log10(ref[:, 0]), np.log10(new[:, 0])
    low, high = max(ref_rate.min(), new_rate.min()), min(ref_rate.max(), new_rate.max())
    p_low, p_high = max(ref[:, 1].min(), new[:, 1].min()), min(ref[:, 1].max(), new[:, 1].max())
    delta_psnr = delta_rate = None
    if high > low:
        delta_psnr = _fit_mean(new_rate, new[:, 1], low, high) - _fit_mean(ref_rate, ref[:, 1], low, high)
    if p_high > p_low:
        delta_log_rate = _fit_mean(new[:, 1], new_rate, p_low, p_high) - _fit_mean(ref[:, 1], ref_rate, p_low, p_high)
        delta_rate = (10.0 ** delta_log_rate - 1.0) * 100.0
    return delta_psnr, delta_rate


@dataclass(frozen=True)
class RateSummary:
    """One pipeline's curve against another's (the plain codec, or bicubic around it) on one dataset."""

    dataset: str
    pipeline: str
    reference: str  # "plain" or "bicubic"
    codec: str
    scale: float
    bd_psnr: float | None  # mean PSNR gain at equal rate, dB
    bd_rate: float | None  # mean bit-rate change at equal PSNR, %
    max_bpp: float | None  # only points at or below this rate were used
    points: int
    min_gain: float | None  # against the plain codec: the smallest per-point gain (points in its range)

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None, n: int) -> float | None:
            return None if v is None else round(v, n)

        return {"summary": True, "dataset": self.dataset, "pipeline": self.pipeline, "reference": self.reference,
                "codec": self.codec,
                "scale": self.scale, "bd_psnr": r(self.bd_psnr, 4), "bd_rate": r(self.bd_rate, 2),
                "max_bpp": self.max_bpp, "points": self.points, "min_gain": r(self.min_gain, 4)}


def summarize(points: Sequence[RatePoint], max_bpp: float | None = None) -> list[RateSummary]:
    """Bjontegaard deltas of every pipeline against the plain codec, and of the learned pair against
    the bicubic pipeline, per dataset; with the smallest per-point gain over the plain codec.

    ``max_bpp`` restricts the curves to points at or below that rate (a target such as
    "better at or below 0.6 bpp").
    """
    summaries = []
    kept = [p for p in points if max_bpp is None or p.bpp <= max_bpp]
    for dataset in dict.fromkeys(p.dataset for p in points):
        def curve(pipeline: str) -> list[RatePoint]:
            return [p for p in kept if p.dataset == dataset and p.pipeline == pipeline]

        pipelines = [n for n in dict.fromkeys(p.pipeline for p in points if p.dataset == dataset) if n != PLAIN]
        pairs = [(n, PLAIN) for n in pipelines] + [(n, BICUBIC) for n in pipelines if n != BICUBIC]
        for pipeline, reference in pairs:
            mine = curve(pipeline)
            deltas = bjontegaard([(p.bpp, p.psnr) for p in curve(reference)], [(p.bpp, p.psnr) for p in mine])
            gains = [p.gain for p in mine if p.gain is not None] if reference == PLAIN else []
            first = next(p for p in points if p.dataset == dataset and p.pipeline == pipeline)
            summaries.append(RateSummary(dataset, pipeline, reference, first.codec, first.scale, *deltas,
                                         max_bpp, len(mine), min(gains) if gains else None))
    return summaries


def _read_reference(path: Path) -> Picture:
    """A benchmark file as the protocol scores it: 8-bit (``to_8bit``), alpha dropped."""
    picture = load_picture(path)
    pixels = picture.pixels[:, :, :-1] if picture.has_alpha else picture.pixels
    return Picture(np.ascontiguousarray(to_8bit(pixels)), picture.metadata)


def _codec_round_trip(picture: Picture, fmt: str, quality: int) -> tuple[Picture, int]:
    data = encode_picture(picture, fmt, quality=quality)
    return load_picture(data), len(data)


RATE = "rate"  # the rate-targeted encode (:mod:`resizer.rate_encode`) at each plain point's file size


def rate_distortion(datasets: Sequence[Path], scale: float, codec: str = DEFAULT_CODEC,
                    qualities: Sequence[int] = (20, 40, 60, 80, 95), pair: str = DEFAULT_PAIR,
                    options: RunOptions = RunOptions(),
                    progress: Callable[[int, int, str], None] | None = None,
                    rate_targeted: bool = False) -> list[RatePoint]:
    """Rate-distortion points of the plain codec, bicubic + codec and ``pair`` + codec (see the module docstring).

    ``rate_targeted`` adds the ``rate`` pipeline: ``encode --max-bytes`` with, as each image's
    budget at each quality, the bytes of the plain codec's file at that quality.
    """
    from .evaluation import list_dataset

    fmt = codec_format(codec)
    options = for_codec(options)  # the pair as 'resizer encode' runs it
    qualities = [int(q) for q in qualities]
    if not qualities or any(not 1 <= q <= 100 for q in qualities):
        raise UsageError("--quality takes values from 1 to 100")
    if not (math.isfinite(scale) and float(scale).is_integer() and scale > 1):
        raise UsageError(f"codec evaluation runs at an integer scale > 1, not {scale:g}")
    learned, baseline = get_method(pair), get_method("matlab-bicubic")
    if not {"down", "up"} <= learned.directions:
        raise UsageError(f"method '{pair}' is not a down/up pair")
    learned.validate(ResizeRequest("down", (64, 64), scale), options)
    learned.validate(ResizeRequest("up", (128, 128), scale), options)
    target = RateTarget(max_bytes=1, codec=codec.strip().lower(), format=fmt, method=pair)
    searched = candidates(target, options) if rate_targeted else None
    listings = [(Path(d), list_dataset(Path(d))) for d in datasets]
    if not listings:
        raise UsageError("give at least one dataset folder")
    total = sum(len(files) for _, files in listings) * len(qualities)
    done = 0
    points: list[RatePoint] = []
    for folder, files in listings:
        dataset = folder.resolve().name
        rows: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        started = time.perf_counter()
        for path in files:
            for key, values in _image_points(path, scale, fmt, qualities, (pair, learned), baseline, options,
                                             searched, target).items():
                rows.setdefault(key, []).append(values)
            done += len(qualities)
            if progress is not None:
                progress(done, total, f"{dataset} {path.name}")
        seconds = time.perf_counter() - started
        # a point is every image's (a budget the rate-targeted encode could not meet leaves that point out)
        rows = {key: values for key, values in rows.items() if len(values) == len(files)}
        for (name, quality), values in rows.items():
            bpp, p, s = (float(np.mean(column)) for column in zip(*values))
            points.append(RatePoint(dataset, name, codec, quality, float(scale), bpp, p, s, len(values),
                                    seconds=seconds / len(rows),
                                    per_image=[{"name": f.name, "bpp": round(v[0], 5), "psnr": round(v[1], 4)}
                                               for f, v in zip(files, values)]))
    for dataset in dict.fromkeys(p.dataset for p in points):
        plain = [p for p in points if p.dataset == dataset and p.pipeline == PLAIN]
        for point in points:
            if point.dataset == dataset and point.pipeline != PLAIN:
                point.gain = gain_at_equal_rate(plain, point)
    order = {PLAIN: 0, BICUBIC: 1, RATE: 3}
    return sorted(points, key=lambda p: (p.dataset, order.get(p.pipeline, 2), p.quality))


def _image_points(path: Path, scale: float, fmt: str, qualities: Sequence[int], pair: tuple[str, Any], baseline: Any,
                  options: RunOptions, searched: list | None, target: RateTarget
                  ) -> dict[tuple[str, int], tuple[float, float, float]]:
    """One image's (bpp, PSNR, SSIM) per pipeline and quality, on the protocol's crop and shave."""
    from .color import luma
    from .evaluation import protocol_sizes
    from .metrics import psnr, shave, ssim

    full = _read_reference(path)
    (hr_w, hr_h), (lr_w, lr_h) = protocol_sizes(full.width, full.height, scale)
    hr = Picture(np.ascontiguousarray(full.pixels[:hr_h, :hr_w]))
    border = math.ceil(scale)
    reference = shave(luma(hr.pixels), border)
    down_request, up_request = ResizeRequest("down", (lr_w, lr_h), scale), ResizeRequest("up", (hr_w, hr_h), scale)
    methods = (pair, (BICUBIC, baseline))
    # The learned thumbnail carries its pairing metadata, as 'resizer encode' stores it.
    thumbs = {name: method.resize(hr, down_request, options) for name, method in methods}
    prepared = prepare(hr, searched, options) if searched is not None else None
    rows = {}
    for quality in qualities:
        decoded, size = _codec_round_trip(hr, fmt, quality)
        outputs = {PLAIN: (decoded, size)}
        for name, method in methods:
            small, size = _codec_round_trip(thumbs[name], fmt, quality)
            outputs[name] = (method.resize(small, up_request, options), size)
        if prepared is not None:
            try:
                choice = choose(hr, prepared, dataclasses.replace(target, max_bytes=outputs[PLAIN][1]), run=options,
                                name=path.name)
                outputs[RATE] = (decoded_result(choice.data, options), len(choice.data))
            except ResizerError:
                pass  # the plain file is smaller than any file with resizer's metadata (tiny images, XMP)
        for name, (picture, size) in outputs.items():
            result = shave(luma(picture.pixels), border)
            rows[(name, quality)] = (8.0 * size / (hr_w * hr_h), psnr(reference, result), ssim(reference, result))
    return rows
