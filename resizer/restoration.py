"""Learned restoration of codec artefacts at scale 1: when it runs, and the JPEG round trip it learns from.

A restoration family (``ModelFamily.restores``, e.g. ``dejpeg``) runs on the luma of a
decoded file before anything else. It is applied only to JPEG inputs whose quality,
estimated from their quantization tables (:mod:`resizer.jpeg_quality`), is at or below
:data:`MAX_RESTORED_QUALITY`: lossless files have nothing to remove, and above that
quality the network was measured to stop helping. :func:`jpeg_round_trip` is the one
codec path training, evaluation and the measurements share (Pillow's JPEG encoder with
its defaults, 4:2:0 chroma, as ``encode`` and ordinary web files use).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .image_io import Picture
    from .methods import RunOptions

__all__ = ["DEFAULT_RESTORER", "DECODE_ENSEMBLE", "ENSEMBLE_PASSES", "decode_passes", "MAX_RESTORED_QUALITY", "RestorePlan", "SCORED_QUALITIES",
           "jpeg_round_trip", "plan_restoration", "restore_picture"]

DEFAULT_RESTORER = "dejpeg"
# The JPEG qualities a restoration family is scored at (manifest, ``eval --restore``'s default).
SCORED_QUALITIES: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Above this estimated quality restoration is skipped. The blind network's gain (dejpeg fine-tuned on
# qualities 10-70, `resizer eval --restore`) on Set5 / Set14: q60 +0.90 / +0.93, q62 +0.73 / +0.88,
# q65 +0.43 / +0.81, q68 +0.02 / +0.73, q70 -0.43 / +0.63 dB; 65 keeps a margin on the smoother set.
MAX_RESTORED_QUALITY = 65
# ``decode --ensemble N`` restores with the mean of N flipped/transposed passes (1, 2, 4 or 8): on 5
# Set5/Set14 images as JPEG at quality 10, 25 and 45 the 8 passes added +0.005 to +0.15 dB (mean +0.06)
# over one, for 4x the time (9.8 s against 2.5 s for a 0.79 MP q30 JPEG, 2 cores); the default is one
# pass, as in ``up``, and the encoder measures what that default decodes.
ENSEMBLE_PASSES: tuple[int, ...] = (1, 2, 4, 8)
DECODE_ENSEMBLE = 1


def decode_passes(run: "RunOptions | None") -> int:
    """How many passes decode's restoration averages (``RunOptions.restore_passes``, else the default)."""
    return (run.restore_passes if run is not None else None) or DECODE_ENSEMBLE


def jpeg_round_trip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """``(H, W, C)`` uint8 (C = 1 or 3) through Pillow's JPEG at ``quality`` and back, same shape."""
    grey = pixels.shape[2] == 1
    image = Image.fromarray(pixels[:, :, 0] if grey else pixels, "L" if grey else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L" if grey else "RGB"))
    return decoded[:, :, None] if grey else decoded


@dataclass(frozen=True)
class RestorePlan:
    """What restoration does to one input: ``method`` (None: skipped) and why, for the JSON row."""

    method: str | None
    quality: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "quality": self.quality, "reason": self.reason}


def plan_restoration(source_format: str | None, quality: int | None, *, enabled: bool = True,
                     method: str = DEFAULT_RESTORER, max_quality: int = MAX_RESTORED_QUALITY) -> RestorePlan:
    """Restore a JPEG of estimated ``quality`` <= ``max_quality``; never a lossless file or a disabled run."""
    if not enabled:
        return RestorePlan(None, quality, "disabled")
    if (source_format or "").upper() not in ("JPEG", "MPO") or quality is None:
        return RestorePlan(None, None, "not a lossy JPEG")
    if quality > max_quality:
        return RestorePlan(None, quality, f"quality above {max_quality}")
    return RestorePlan(method, quality, "jpeg artefacts")


def restore_picture(picture: "Picture", method: str = DEFAULT_RESTORER,
                    options: "RunOptions | None" = None, ensemble: int = 1) -> "Picture":
    """``picture`` restored at its own size by restoration family ``method``; its JPEG quality is forgotten.

    The result is no longer the decoded file, so a second ``up`` does not restore it again.
    ``ensemble`` > 1 averages that many passes over the picture flipped and transposed
    (:func:`_geometric_mean_pass`), each undone before the mean: the network is not exactly
    equivariant, and its errors partly cancel.
    """
    import dataclasses

    from .methods import ResizeRequest, RunOptions, get_method

    restorer = get_method(method)
    request = ResizeRequest("up", (picture.width, picture.height), 1.0)
    options = options or RunOptions()
    restorer.validate(request, options)
    if ensemble > 1:
        restored = _geometric_mean_pass(lambda p: restorer.resize(p, ResizeRequest("up", (p.width, p.height), 1.0),
                                                                  options), picture, ensemble)
    else:
        restored = restorer.resize(picture, request, options)
    restored.metadata = dataclasses.replace(restored.metadata, jpeg_quality=None)
    return restored


def _geometric_mean_pass(restore: Any, picture: "Picture", passes: int) -> "Picture":
    """The rounded mean of ``restore`` over the first ``passes`` of the 8 flips/transposes of ``picture``."""
    import copy

    if passes not in (2, 4, 8):
        raise ValueError(f"an ensemble is 1, 2, 4 or 8 passes, not {passes}")

    def turned(pixels: np.ndarray, k: int, undo: bool = False) -> np.ndarray:
        steps = [(4, lambda a: a.transpose(1, 0, 2)), (2, lambda a: a[::-1]), (1, lambda a: a[:, ::-1])]
        for bit, step in (steps if undo else steps[::-1]):
            if k & bit:
                pixels = step(pixels)
        return pixels

    total = None
    first = None
    for k in range(passes):
        source = copy.copy(picture)
        source.pixels = np.ascontiguousarray(turned(picture.pixels, k))
        result = restore(source)
        first = result if first is None else first
        back = turned(result.pixels, k, undo=True).astype(np.float64)
        total = back if total is None else total + back
    dtype = first.pixels.dtype
    mean = total / passes
    if np.issubdtype(dtype, np.integer):
        mean = np.clip(np.floor(mean + 0.5), 0, np.iinfo(dtype).max)
    mean = mean.astype(dtype)
    out = copy.copy(first)
    out.pixels = mean
    return out
