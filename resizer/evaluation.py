"""The benchmark protocol behind the papers' tables: the one implementation of it.

``evaluate`` runs it for any pair of down/up methods (``resizer eval``, the scores in the
manifest); ``evaluate_network`` runs the same steps on a network held in memory (training's
validation), without a weights file or a method adapter.

Per image: crop the HR image so the scale divides it, make the LR image with the
``down`` method (rounded to 8 bits, as an image file would be), bring it back to the HR
size with the ``up`` method, and score PSNR/SSIM on the luma channel after shaving
``ceil(scale)`` pixels from every border. With ``matlab-bicubic`` both ways this
reproduces the bicubic rows of the SR papers (see ``../shared/datasets/README.md``).
"""

from __future__ import annotations

import dataclasses

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from .errors import ImageReadError, ResizerError, UsageError
from .image_io import Picture, is_image_path, load_picture, save_picture, to_8bit
from .methods import Method, ResizeRequest, RunOptions, get_method
from .color import luma
from .metrics import psnr, shave, ssim

if TYPE_CHECKING:
    import torch

    from .models import ModelFamily

__all__ = ["EvalResult", "ImageScore", "RestoreResult", "evaluate", "evaluate_network", "evaluate_restoration", "make_lr", "protocol_sizes", "list_dataset"]

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
    """``((hr_w, hr_h), (lr_w, lr_h))`` with HR/LR exactly ``scale`` on both axes.

    Write ``scale = p/q`` in lowest terms (1.5 = 3/2, 2.7 = 27/10): HR is cropped at the
    right/bottom to a multiple of ``p`` and LR is ``HR * q/p``. For integer scales this is
    the usual modcrop. Any other crop leaves a ratio such as 320/213 = 1.5023, and an
    upscaler that maps pixels by the scale (ASDN, MATLAB's imresize given a scale) is then
    up to half a pixel off at the far edge (``../shared/datasets/README.md``, step 3).
    """
    ratio = scale_fraction(scale)
    p, q = ratio.numerator, ratio.denominator
    hr_w, hr_h = width - width % p, height - height % p  # 0 for an image too small: refused by the caller
    return (hr_w, hr_h), (hr_w * q // p, hr_h * q // p)


def scale_fraction(scale: float) -> Fraction:
    """``scale`` as the fraction ``p/q`` it was written as (2.7 -> 27/10), denominators up to 1000."""
    return Fraction(repr(float(scale))).limit_denominator(1000)


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
    return Picture(np.ascontiguousarray(to_8bit(pixels)), picture.metadata)


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


def _protocol_crop(name: str, hr_full: Picture, scale: float) -> tuple[Picture, tuple[int, int], tuple[int, int], int]:
    """``(hr, (hr_w, hr_h), (lr_w, lr_h), border)``: the HR reference cropped as the protocol says."""
    (hr_w, hr_h), (lr_w, lr_h) = protocol_sizes(hr_full.width, hr_full.height, scale)
    border = math.ceil(scale)
    if lr_w < 1 or lr_h < 1 or min(hr_w, hr_h) - 2 * border < _SSIM_WINDOW:
        raise ResizerError(f"{name}: {hr_full.width}x{hr_full.height} is too small to evaluate at x{scale:g}")
    hr = Picture(np.ascontiguousarray(hr_full.pixels[:hr_h, :hr_w]), hr_full.metadata)
    return hr, (hr_w, hr_h), (lr_w, lr_h), border


def _score_image(name: str, hr_full: Picture, scale: float, down: Method, up: Method,
                 options: RunOptions) -> tuple[ImageScore, Picture, Picture]:
    hr, (hr_w, hr_h), (lr_w, lr_h), border = _protocol_crop(name, hr_full, scale)

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
    return Picture(to_8bit(picture.pixels), picture.metadata)


def _read_datasets(listings: list[tuple[Path, list[Path]]]) -> Iterator[tuple[str, list[tuple[str, Picture]]]]:
    """``(dataset name, [(file name, picture)])`` per folder: each image read once, for every scale."""
    for folder, files in listings:
        yield folder.resolve().name or str(folder), [(path.name, _read(path)) for path in files]


def evaluate(datasets: Sequence[Path], scales: Sequence[float], down: str = "matlab-bicubic",
             up: str = "matlab-bicubic", options: RunOptions = RunOptions(), save_dir: Path | None = None,
             progress: ProgressCallback | None = None) -> Iterator[EvalResult]:
    """Run the benchmark protocol; yield one ``EvalResult`` per (dataset, scale), in order.

    Everything that can be checked cheaply (scales, method names, folders, that each
    folder has images) is checked before any image is processed, so a typo fails at
    once. ``progress(done, total, label)`` is called after every image.
    """
    checked_scales = _check_scales(scales)
    if options.weights:  # a hub reference is fetched (or fails) once, not once per image
        from .weights.hub import fetch_reference_once

        options = dataclasses.replace(options, weights=fetch_reference_once(options.weights))
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

    for dataset, pictures in _read_datasets(listings):
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


# --------------------------------------------------------------------------- a network in memory


def make_lr(hr: "torch.Tensor", scale: float) -> "torch.Tensor":
    """The protocol's LR of ``hr`` (``(B, C, H, W)`` in [0, 1]): MATLAB bicubic, quantised to 1/255.

    Training makes its patches' LR images with it too: the LR images seen at evaluation are
    uint8, and a model trained on unrounded LR loses ~0.1 dB on the benchmark.
    """
    import torch

    from .ops import imresize

    # HR sides are ``round(lr * scale)`` (halves up: the protocol's crop, the patch sampler),
    # and for scale > 1 ``round(hr / scale)`` recovers the LR side exactly.
    lr_h, lr_w = (int(math.floor(side / scale + 0.5)) for side in hr.shape[-2:])
    lr = imresize(hr, scale=1.0 / scale, size=(lr_h, lr_w))
    return torch.floor(lr * 255.0 + 0.5).clamp_(0, 255).div_(255.0)


NetworkRun = Callable[["torch.Tensor", float], "torch.Tensor"]


def evaluate_network(network: Any, family: "ModelFamily", datasets: Sequence[Path], scales: Sequence[float],
                     device: "torch.device | str" = "cpu") -> list[EvalResult]:
    """The protocol on ``network`` as it is in memory (training's validation): one result per (dataset, scale).

    The LR is :func:`make_lr` of the cropped HR (a pair makes its own thumbnail, stored as
    8 bits); the network's output is rounded to 8 bits and its luma scored, shaved, by the
    same PSNR/SSIM as :func:`evaluate`. A luma family's Y output is scored as it is (not
    recombined with bicubic chroma as the ``--method`` adapter does), so these numbers are
    for choosing between checkpoints; the manifest's come from :func:`evaluate`.
    """
    import torch

    run = _network_run(network, family, torch.device(device))
    checked = _check_scales(scales)
    listings = [(Path(folder), list_dataset(Path(folder))) for folder in datasets]
    was_training = network.training
    network.eval()
    results = []
    try:
        with torch.no_grad():
            for dataset, pictures in _read_datasets(listings):
                for scale in checked:
                    started = time.perf_counter()
                    rows = [_score_network_image(name, picture, scale, run) for name, picture in pictures]
                    results.append(EvalResult(
                        dataset=dataset, scale=scale, down=family.name if family.is_pair else _BASELINE,
                        up=family.name, psnr=float(np.mean([r.psnr for r in rows])),
                        ssim=float(np.mean([r.ssim for r in rows])), images=rows,
                        seconds=time.perf_counter() - started))
    finally:
        network.train(was_training)
    return results


def _score_network_image(name: str, hr_full: Picture, scale: float, run: NetworkRun) -> ImageScore:
    import torch

    hr, hr_size, lr_size, border = _protocol_crop(name, hr_full, scale)
    tensor = torch.from_numpy(hr.pixels.transpose(2, 0, 1).astype(np.float64) / 255.0)[None]
    levels = run(tensor, scale)  # (1, C, H, W) float64 in 0..255, C = 3 (RGB) or 1 (luma, grey)
    reference = shave(luma(hr.pixels), border)
    result = shave(luma(levels[0].permute(1, 2, 0).numpy()), border)
    return ImageScore(name, psnr(reference, result), ssim(reference, result), hr_size, lr_size)


def _levels(x: "torch.Tensor") -> "torch.Tensor":
    """A network's output in [0, 1] as 8-bit levels (float64 on the CPU), as a stored image has them."""
    import torch

    return torch.floor(x.double().cpu().clamp(0, 1) * 255.0 + 0.5)


def _network_run(network: Any, family: "ModelFamily", device: "torch.device") -> NetworkRun:
    """HR tensor -> 8-bit output levels, for the family's kind and colour (chosen once, not per image)."""
    import torch

    from .color import rgb_to_ycbcr

    def round_trip(hr: "torch.Tensor", scale: float) -> "torch.Tensor":
        rgb = hr if hr.shape[1] == 3 else hr.repeat(1, 3, 1, 1)
        _, sr = network.round_trip(rgb.to(device=device, dtype=torch.float32), scale)
        levels = _levels(sr)
        return levels if hr.shape[1] == 3 else levels.mean(dim=1, keepdim=True)

    def upscale(hr: "torch.Tensor", scale: float) -> "torch.Tensor":
        lr = make_lr(hr, scale)
        if family.color == "y":
            inp = lr[:, :1] if lr.shape[1] == 1 else rgb_to_ycbcr(lr)[:, :1]
        else:
            inp = lr if lr.shape[1] == 3 else lr.repeat(1, 3, 1, 1)
        levels = _levels(network(inp.to(device=device, dtype=torch.float32), float(scale)))
        return levels if family.color == "y" or hr.shape[1] == 3 else levels[:, :1]

    return round_trip if family.is_pair else upscale



# --------------------------------------------------------------------------- restoration of codec artefacts


@dataclass(frozen=True)
class RestoreResult:
    """A restoration method on one dataset at one JPEG quality: mean luma PSNR/SSIM of the decoded files and
    of their restorations against the originals (no crop, no shave: the size does not change)."""

    dataset: str
    quality: int
    method: str
    psnr: float
    ssim: float
    decoded_psnr: float
    decoded_ssim: float
    images: int
    seconds: float = 0.0

    @property
    def gain(self) -> float:
        """dB the restoration adds to the decoded file."""
        return self.psnr - self.decoded_psnr

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "codec": "jpeg", "quality": self.quality, "method": self.method,
                "psnr": _finite(self.psnr), "ssim": self.ssim, "decoded_psnr": _finite(self.decoded_psnr),
                "decoded_ssim": self.decoded_ssim, "gain": _finite(self.gain), "images": self.images,
                "seconds": round(self.seconds, 3)}


def evaluate_restoration(datasets: Sequence[Path], qualities: Sequence[int], method: str = "dejpeg",
                         options: RunOptions = RunOptions(),
                         progress: ProgressCallback | None = None) -> Iterator[RestoreResult]:
    """Each original through Pillow's JPEG at each quality, restored by ``method`` at scale 1, scored on luma.

    The baseline is the decoded file itself; ``gain`` is what the restoration adds to it.
    """
    from .restoration import jpeg_round_trip, restore_picture

    checked = [int(q) for q in qualities]
    if not checked or any(not 1 <= q <= 100 for q in checked):
        raise UsageError(f"JPEG qualities must be 1..100, not {', '.join(map(str, qualities)) or 'none'}")
    get_method(method).validate(ResizeRequest("up", (64, 64), 1.0), options)
    listings = [(Path(d), list_dataset(Path(d))) for d in datasets]
    if not listings:
        raise UsageError("give at least one dataset folder")
    total, done = sum(len(files) for _, files in listings) * len(checked), 0
    for dataset, pictures in _read_datasets(listings):
        for quality in checked:
            started, rows = time.perf_counter(), []
            for name, picture in pictures:
                decoded = Picture(jpeg_round_trip(picture.pixels, quality),
                                  dataclasses.replace(picture.metadata, source_format="JPEG", jpeg_quality=quality))
                restored = _as_uint8(restore_picture(decoded, method, options))
                reference = luma(picture.pixels)
                rows.append((psnr(reference, luma(restored.pixels)), ssim(reference, luma(restored.pixels)),
                             psnr(reference, luma(decoded.pixels)), ssim(reference, luma(decoded.pixels))))
                done += 1
                if progress is not None:
                    progress(done, total, f"{dataset} q{quality} {name}")
            means = np.mean(np.array(rows, dtype=np.float64), axis=0)
            yield RestoreResult(dataset, quality, get_method(method).name, float(means[0]), float(means[1]),
                                float(means[2]), float(means[3]), len(rows), time.perf_counter() - started)
