"""The benchmark protocol behind the papers' tables, for any pair of down/up methods.

Per image: crop the HR image so the scale divides it, make the LR image with the
``down`` method (rounded to 8 bits, as an image file would be), bring it back to the HR
size with the ``up`` method, and score PSNR/SSIM on the luma channel after shaving
``ceil(scale)`` pixels from every border. With ``matlab-bicubic`` both ways this
reproduces the bicubic rows of the SR papers (see ``../shared/datasets/README.md``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import ImageReadError, ResizerError, UsageError
from .image_io import Picture, is_image_path, load_picture, save_picture
from .methods import Method, ResizeRequest, RunOptions, get_method
from .color import luma
from .metrics import psnr, shave, ssim

__all__ = ["EvalResult", "ImageScore", "evaluate", "protocol_sizes", "list_dataset"]

_SSIM_WINDOW = 11
_BASELINE = "matlab-bicubic"  # the papers' LR maker and their baseline upscaler

ProgressCallback = Callable[[int, int, str], None]  # (images done, images in total, what was just done)


@dataclass(frozen=True)
class ImageScore:
    """One image's row: sizes are (width, height); ``hr_size`` is after the protocol's crop."""

    name: str
    psnr: float
    ssim: float
    hr_size: tuple[int, int]
    lr_size: tuple[int, int]
    bicubic_psnr: float | None = None  # MATLAB-bicubic up of the same LR (when ``up`` is another method)
    lr_psnr: float | None = None  # the LR against the MATLAB-bicubic LR (when ``down`` is another method)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "psnr": _finite(self.psnr), "ssim": self.ssim,
                "hr_size": list(self.hr_size), "lr_size": list(self.lr_size),
                **_optional(bicubic_psnr=self.bicubic_psnr, lr_psnr=self.lr_psnr)}


@dataclass(frozen=True)
class EvalResult:
    """The scores of one (dataset, scale): means over the images, and the images' rows."""

    dataset: str
    scale: float
    down: str
    up: str
    psnr: float
    ssim: float
    images: list[ImageScore] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bicubic_psnr(self) -> float | None:
        """Mean PSNR of MATLAB-bicubic upscaling from the same LR images: the baseline the ``up`` method beats."""
        return _mean([i.bicubic_psnr for i in self.images])

    @property
    def lr_psnr(self) -> float | None:
        """Mean PSNR of the LR images against MATLAB-bicubic ones: how ordinary a learned thumbnail stays."""
        return _mean([i.lr_psnr for i in self.images])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; an infinite PSNR (identical images) becomes ``null``."""
        return {"dataset": self.dataset, "scale": self.scale, "down": self.down, "up": self.up,
                "psnr": _finite(self.psnr), "ssim": self.ssim,
                **_optional(bicubic_psnr=self.bicubic_psnr, lr_psnr=self.lr_psnr),
                "images": [i.to_json() for i in self.images], "seconds": round(self.seconds, 3)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _optional(**values: float | None) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in values.items() if v is not None}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def protocol_sizes(width: int, height: int, scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((hr_w, hr_h), (lr_w, lr_h))``: LR is ``floor(side / s)``, HR is cropped to ``round(LR * s)``.

    For integer scales this is the usual modcrop; for non-integer ones it is the crop
    that makes the LR size an exact ``1/s`` of the HR reference.
    """
    lr_w, lr_h = math.floor(width / scale + 1e-9), math.floor(height / scale + 1e-9)
    hr_w, hr_h = math.floor(lr_w * scale + 0.5), math.floor(lr_h * scale + 0.5)
    return (min(hr_w, width), min(hr_h, height)), (lr_w, lr_h)


def _is_image(path: Path) -> bool:
    return not path.name.startswith(".") and path.is_file() and is_image_path(path)


def list_dataset(folder: Path) -> list[Path]:
    """The image files of a dataset folder (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.exists():
        raise UsageError(f"dataset folder not found: {folder}")
    if not folder.is_dir():
        raise UsageError(f"not a folder: {folder}")
    images = sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)
    if not images:
        raise UsageError(f"no images in dataset folder {folder}")
    return images


def _read(path: Path) -> Picture:
    """``load_picture``, with errors that name the file."""
    try:
        picture = load_picture(path)
    except ImageReadError as exc:
        if str(path.name) in str(exc):
            raise
        raise ImageReadError(f"{path}: {exc}") from exc
    return _benchmark_pixels(picture)


def _benchmark_pixels(picture: Picture) -> Picture:
    """8-bit, without alpha: the protocol scores colour (or grey) only, on the 8-bit scale."""
    pixels = picture.pixels
    if picture.has_alpha:
        pixels = pixels[:, :, :-1]
    if pixels.dtype == np.uint16:
        pixels = np.floor(pixels.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    return Picture(np.ascontiguousarray(pixels), picture.metadata)


def _save(picture: Picture, path: Path) -> None:
    save_picture(picture, path, format="PNG", overwrite=True)


def _check_scales(scales: Sequence[float]) -> list[float]:
    if not scales:
        raise UsageError("give at least one scale")
    checked = []
    for scale in scales:
        value = float(scale)
        if not math.isfinite(value) or value <= 1:
            raise UsageError(f"scale must be greater than 1, got {scale:g}")
        checked.append(value)
    return checked


def _scale_label(scale: float) -> str:
    return f"x{scale:g}"


def _score_image(name: str, hr_full: Picture, scale: float, down: Method, up: Method,
                 options: RunOptions) -> tuple[ImageScore, Picture, Picture]:
    (hr_w, hr_h), (lr_w, lr_h) = protocol_sizes(hr_full.width, hr_full.height, scale)
    border = math.ceil(scale)
    if lr_w < 1 or lr_h < 1 or min(hr_w, hr_h) - 2 * border < _SSIM_WINDOW:
        raise ResizerError(f"{name}: {hr_full.width}x{hr_full.height} is too small to evaluate at x{scale:g}")
    hr = Picture(np.ascontiguousarray(hr_full.pixels[:hr_h, :hr_w]), hr_full.metadata)

    down_request = ResizeRequest("down", (lr_w, lr_h), scale)
    down.validate(down_request, options)
    lr = _as_uint8(down.resize(hr, down_request, options))
    _check_size(name, down, lr, (lr_w, lr_h))
    up_request = ResizeRequest("up", (hr_w, hr_h), scale)
    up.validate(up_request, options)
    sr = _as_uint8(up.resize(lr, up_request, options))
    _check_size(name, up, sr, (hr_w, hr_h))

    reference, result = shave(luma(hr.pixels), border), shave(luma(sr.pixels), border)
    baseline = get_method(_BASELINE)
    bicubic_psnr = lr_psnr = None
    if up.name != _BASELINE:
        plain = _as_uint8(baseline.resize(lr, up_request, options))
        bicubic_psnr = psnr(reference, shave(luma(plain.pixels), border))
    if down.name != _BASELINE:
        plain_lr = _as_uint8(baseline.resize(hr, down_request, options))
        lr_psnr = psnr(luma(plain_lr.pixels), luma(lr.pixels))
    score = ImageScore(name, psnr(reference, result), ssim(reference, result), (hr_w, hr_h), (lr_w, lr_h),
                       bicubic_psnr, lr_psnr)
    return score, lr, sr


def _check_size(name: str, method: Method, picture: Picture, size: tuple[int, int]) -> None:
    if (picture.width, picture.height) != size:
        raise ResizerError(f"{name}: method '{method.name}' returned {picture.width}x{picture.height}, "
                           f"expected {size[0]}x{size[1]}")


def _as_uint8(picture: Picture) -> Picture:
    """The LR and SR images are 8-bit images, as if written to and read from PNG files."""
    if picture.pixels.dtype == np.uint8:
        return picture
    pixels = np.floor(picture.pixels.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    return Picture(pixels, picture.metadata)


def evaluate(datasets: Sequence[Path], scales: Sequence[float], down: str = "matlab-bicubic",
             up: str = "matlab-bicubic", options: RunOptions = RunOptions(), save_dir: Path | None = None,
             progress: ProgressCallback | None = None) -> Iterator[EvalResult]:
    """Run the benchmark protocol; yield one ``EvalResult`` per (dataset, scale), in order.

    Everything that can be checked cheaply (scales, method names, folders, that each
    folder has images) is checked before any image is processed, so a typo fails at
    once. ``progress(done, total, label)`` is called after every image.
    """
    checked_scales = _check_scales(scales)
    down_method, up_method = get_method(down), get_method(up)
    for scale in checked_scales:  # a method that cannot serve a scale at all says so now
        down_method.validate(ResizeRequest("down", (64, 64), scale), options)
        up_method.validate(ResizeRequest("up", (math.ceil(64 * scale), math.ceil(64 * scale)), scale), options)
    folders = [Path(d) for d in datasets]
    if not folders:
        raise UsageError("give at least one dataset folder")
    listings = [(folder, list_dataset(folder)) for folder in folders]
    total = sum(len(files) for _, files in listings) * len(checked_scales)
    done = 0

    for folder, files in listings:
        dataset = folder.resolve().name or str(folder)
        pictures = [(path.name, _read(path)) for path in files]  # read once, used for every scale
        for scale in checked_scales:
            started = time.perf_counter()
            rows: list[ImageScore] = []
            for name, picture in pictures:
                score, lr, sr = _score_image(name, picture, scale, down_method, up_method, options)
                rows.append(score)
                if save_dir is not None:
                    target = Path(save_dir) / dataset / _scale_label(scale)
                    stem = Path(name).stem
                    _save(lr, target / f"{stem}_lr.png")
                    _save(sr, target / f"{stem}_sr.png")
                done += 1
                if progress is not None:
                    progress(done, total, f"{dataset} {_scale_label(scale)} {name}")
            yield EvalResult(
                dataset=dataset, scale=scale, down=down_method.name, up=up_method.name,
                psnr=float(np.mean([r.psnr for r in rows])), ssim=float(np.mean([r.ssim for r in rows])),
                images=rows, seconds=time.perf_counter() - started,
            )
