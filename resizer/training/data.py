"""Training data: the images of the ``--data`` folders in memory, and the patch sampler.

The 291-image set is ~100 MB as uint8, so every image is decoded once (with the project's
image I/O); a batch is a handful of numpy crops, far cheaper than one training step, so no
DataLoader workers are needed on 2 cores. A batch is a pure function of ``(seed, step)``:
resuming needs no RNG state and prefetch threads cannot change the stream.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..color import luma_uint8
from ..errors import ImageReadError, ResizerError, UsageError
from ..image_io import is_image_path, load_picture, to_8bit

__all__ = ["PatchSampler", "list_images", "load_training_images"]


def list_images(folder: Path) -> list[Path]:
    """The image files of a training (or ``--val``) folder, sorted; ``UsageError`` if there are none."""
    if not folder.is_dir():
        raise UsageError(f"data folder '{folder}' does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
    if not files:
        raise UsageError(f"data folder '{folder}' contains no images")
    return files


def _read_image(path: Path) -> np.ndarray:
    """Decode to ``(H, W, C)`` uint8 with C = 1 (grey) or 3 (RGB): alpha dropped, 16-bit rounded to 8."""
    try:
        picture = load_picture(path)
    except ImageReadError as exc:
        raise ResizerError(f"cannot read training image '{path}': {exc}") from exc
    pixels = picture.pixels[:, :, :-1] if picture.has_alpha else picture.pixels
    return np.ascontiguousarray(to_8bit(pixels))


def load_training_images(folders: Iterable[str | Path], color: str) -> list[np.ndarray]:
    """Every image of ``folders`` as ``(H, W, C)`` uint8: luma (C=1) for ``color="y"``, else RGB.

    Grey images are used as luma as they are (the benchmark protocol scores them raw)
    and replicated to three channels for RGB models.
    """
    images = []
    for folder in folders:
        for path in list_images(Path(folder)):
            arr = _read_image(path)
            if color == "y":
                arr = arr if arr.shape[2] == 1 else luma_uint8(arr)
            elif arr.shape[2] == 1:
                arr = np.repeat(arr, 3, axis=2)
            images.append(np.ascontiguousarray(arr))
    return images


def _patch_sizes(patch: int, scale: float) -> tuple[int, int]:
    """``(hr, lr)`` patch sides for ``scale``: lr = floor(patch / scale), hr = lr * scale, halves up.

    Halves round up as the models size their outputs (``resizer.geometry.upscaled_size``).
    """
    lr = int(math.floor(patch / scale + 1e-9))
    return int(math.floor(lr * scale + 0.5)), lr


class PatchSampler:
    """Random HR patches with the 8 flips/rotations; batch ``k`` depends only on ``(seed, k)``.

    One scale per batch (multi-scale VDSR): every sample of a batch shares a shape.
    """

    def __init__(self, images: Sequence[np.ndarray], patch: int, scales: Sequence[float], batch: int, seed: int):
        self.patch, self.scales, self.batch, self.seed = patch, tuple(scales), batch, seed
        self.images = [im for im in images if min(im.shape[0], im.shape[1]) >= patch]
        if not self.images:
            raise UsageError(f"no training image is at least {patch}x{patch} pixels (lower --patch)")
        # Crops are drawn in proportion to image area, so every pixel is equally likely.
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.prob = area / area.sum()

    def batch_at(self, step: int) -> tuple[np.ndarray, float]:
        """``(hr, scale)``: ``hr`` is ``(B, C, P, P)`` uint8, P depending on the scale."""
        rng = np.random.default_rng([self.seed, step])
        scale = self.scales[int(rng.integers(len(self.scales)))]
        size, _ = _patch_sizes(self.patch, scale)
        picks = rng.choice(len(self.images), size=self.batch, p=self.prob)
        out = []
        for index in picks:
            im = self.images[int(index)]
            y = int(rng.integers(im.shape[0] - size + 1))
            x = int(rng.integers(im.shape[1] - size + 1))
            crop = im[y:y + size, x:x + size]
            aug = int(rng.integers(8))
            crop = np.rot90(crop, aug & 3)
            if aug & 4:
                crop = crop[:, ::-1]
            out.append(crop.transpose(2, 0, 1))
        return np.ascontiguousarray(np.stack(out)), scale
