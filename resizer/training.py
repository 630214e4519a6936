"""Training of the learned upscalers (issue 4): ``train(TrainConfig(...)) -> TrainResult``.

Design choices, and why:

- **Data in memory, patches made in the main process.** The 291-image set is ~100 MB as
  uint8, so every image is decoded once; a batch is a handful of numpy crops, which is
  far cheaper than one training step, so no DataLoader workers are needed on 2 cores.
- **A batch is a pure function of ``(seed, step)``.** Each step draws its scale, crops and
  flips/rotations from ``numpy.random.default_rng([seed, step])``. Resuming therefore
  needs no RNG state, prefetch threads cannot change the stream, and a resumed run is
  bit-identical to an uninterrupted one (the learning rate is also a function of step).
- **LR made on the fly** with ``ops.imresize`` (MATLAB bicubic, as the benchmark protocol)
  and rounded to 1/255 levels, because the LR images seen at evaluation are uint8: a
  model trained on unrounded LR loses ~0.1 dB on the benchmark.
- **One scale per batch** (multi-scale VDSR): every sample of a batch shares a shape.
- **Checkpoints are safetensors + JSON only** (model, Adam moments, step, GradScaler,
  history); nothing is pickled, so a run folder can be shared and resumed safely.
  Each checkpoint is written to a temporary folder and renamed, then ``latest.json`` is
  replaced atomically, so a kill at any moment leaves a usable checkpoint.
- **Device-agnostic:** fp32 on CPU; on CUDA ``torch.autocast`` in bf16 (or fp16 with a
  ``GradScaler``) when ``precision`` is ``auto``/``bf16``/``fp16``.
- **Stopping:** SIGINT/SIGTERM finish the current step, write a checkpoint and return
  (``TrainResult.stopped``); ``resume=True`` continues from it exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .errors import ModelError, ResizerError, UsageError

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "load_training_images",
    "PatchSampler",
    "learning_rate",
    "validate",
    "hardware_string",
    "default_bench_dirs",
]

_IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_LOSSES = ("l1", "l2")
_SCHEDULES = ("cosine", "step")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_CHECKPOINT_KEEP = 2  # older checkpoints are deleted; a run folder stays small

ProgressFn = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json`` in the run folder.

    ``patch`` is the HR patch side; for each scale it is rounded down to a multiple that
    gives an integer LR side. ``schedule`` is ``cosine`` (from ``lr`` to ``lr * min_lr``
    over ``steps``, after ``warmup`` linear steps) or ``step`` (multiply by ``gamma`` every
    ``decay_every`` steps; independent of ``steps``, so a run can be extended freely).
    """

    arch: str
    scales: Sequence[float]
    data: Sequence[str]
    steps: int
    val: Sequence[str] = ()
    batch: int = 16
    patch: int = 48
    lr: float = 1e-3
    loss: str | None = None  # l1 or l2 (default); a down/up pair trains on its joint objective instead
    schedule: str = "cosine"
    min_lr: float = 0.01
    warmup: int = 0
    decay_every: int = 0  # step schedule; 0 = steps // 3
    gamma: float = 0.1
    clip: float = 0.0  # max gradient norm; 0 = no clipping
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    workers: int = 0  # threads preparing batches ahead; 0 = in the training loop
    val_every: int = 0  # 0 = validate only at the end
    checkpoint_every: int = 1000
    stop_at: int | None = None  # checkpoint and stop at this step (time-boxed sessions); resume later
    log_every: int = 100  # steps per logged loss average (and "step" progress event)
    out: str | None = None
    resume: bool = False
    init: str | None = None
    export: str | None = None
    manifest: str | None = None  # manifest for --export; None = the package's weights/manifest.json
    bench: Sequence[str] = ()  # folders scored into the manifest; default $RESIZER_DATASETS/bench/{set5,set14}
    eval_scales: Sequence[float] = ()  # scales validated and scored into the manifest; () = the training scales
    model_config: dict[str, Any] = field(default_factory=dict)  # a pair: {"down": {...}, "up": {...}}
    loss_weights: dict[str, float] = field(default_factory=dict)  # a pair's joint-loss terms
    codec: str | None = None  # a pair: this share of batches goes through the codec (upscaler only)
    codec_quality: tuple[int, int] = (20, 95)  # qualities drawn uniformly per patch
    codec_share: float = 0.5
    codec_joint: bool = False  # JPEG: train the downscaler through the codec too (differentiable approximation)
    codec_rate: float = 0.0  # with codec_joint: weight of the approximation's bits-per-pixel proxy
    license: str = "MIT"
    command: str | None = None  # how to reproduce; None = rebuilt from this config

    # Fields that change the trajectory: a resumed run must agree on them.
    _TRAJECTORY = ("arch", "scales", "batch", "patch", "lr", "loss", "schedule", "min_lr", "warmup",
                   "decay_every", "gamma", "clip", "seed", "model_config", "loss_weights", "codec", "codec_quality",
                   "codec_share", "codec_joint", "codec_rate")

    def normalized(self) -> "TrainConfig":
        """A copy with tuples/strings normalized (so it round-trips through JSON)."""
        return dataclasses.replace(
            self,
            scales=tuple(float(s) for s in self.scales),
            data=tuple(str(d) for d in self.data),
            val=tuple(str(v) for v in self.val),
            bench=tuple(str(b) for b in self.bench),
            eval_scales=tuple(float(s) for s in self.eval_scales),
            loss=self.loss.lower() if self.loss else (None if _is_pair(self.arch) else "l2"),
            schedule=self.schedule.lower(),
            precision=self.precision.lower(),
            model_config=dict(self.model_config or {}),
            loss_weights=dict(self.loss_weights or {}),
            codec_quality=(int(self.codec_quality[0]), int(self.codec_quality[1])),
            codec=self.codec.lower() if self.codec else None,
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self.normalized())
        data["scales"] = list(data["scales"])
        data["eval_scales"] = list(data["eval_scales"])
        data["codec_quality"] = list(data["codec_quality"])
        return data

    @property
    def scored_scales(self) -> tuple[float, ...]:
        """The scales validated and recorded in the manifest (``eval_scales``, else the training scales)."""
        return tuple(self.eval_scales) or tuple(self.scales)

    def to_command(self, segments: Sequence[dict[str, int]] = ()) -> str:
        """The ``resizer train`` command line(s) that reproduce this run from scratch.

        ``segments`` (from the checkpoints) lists ``{"steps", "until"}`` when the run was
        resumed with another ``--steps``; the commands are then chained with ``&&``, each
        earlier one stopped with ``--stop-at`` where the run was actually stopped.
        """
        c = self.normalized()
        if len(segments) > 1:
            cmds = []
            for i, seg in enumerate(segments):
                last = i == len(segments) - 1
                part = dataclasses.replace(c, steps=int(seg["steps"]), export=c.export if last else None)
                cmd = part.to_command()
                if i > 0:
                    cmd += " --resume"
                if not last:
                    cmd += f" --stop-at {int(seg['until'])}"
                cmds.append(cmd)
            return " && ".join(cmds)
        parts = ["resizer", "train", c.arch]
        for s in c.scales:
            parts += ["--scale", _fmt_scale(s)]
        for d in c.data:
            parts += ["--data", _portable_path(d)]
        for v in c.val:
            parts += ["--val", _portable_path(v)]
        for s in c.eval_scales:
            parts += ["--eval-scale", _fmt_scale(s)]
        parts += ["--steps", str(c.steps), "--batch", str(c.batch), "--patch", str(c.patch),
                  "--lr", f"{c.lr:g}"] + (["--loss", c.loss] if c.loss else []) + ["--schedule", c.schedule]
        if c.schedule == "cosine":
            parts += ["--min-lr", f"{c.min_lr:g}"]
        else:
            parts += ["--decay-every", str(c.decay_every), "--gamma", f"{c.gamma:g}"]
        if c.warmup:
            parts += ["--warmup", str(c.warmup)]
        if c.clip:
            parts += ["--clip", f"{c.clip:g}"]
        parts += ["--seed", str(c.seed)]
        if c.model_config:
            parts += ["--config", json.dumps(c.model_config, sort_keys=True, separators=(",", ":"))]
        if c.codec:
            parts += ["--codec", c.codec, "--codec-quality", f"{c.codec_quality[0]}-{c.codec_quality[1]}",
                      "--codec-share", f"{c.codec_share:g}"]
            if c.codec_joint:
                parts += ["--codec-joint"] + (["--codec-rate", f"{c.codec_rate:g}"] if c.codec_rate else [])
        for key, value in sorted(c.loss_weights.items()):
            parts += ["--loss-weight", f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"]
        if c.init:
            parts += ["--init", _portable_path(c.init)]
        if c.export:
            parts += ["--export", c.export]
        return " ".join(_quote(p) for p in parts)


@dataclass
class TrainResult:
    """What a run did. ``history`` holds the logged steps and validations (also in log.jsonl)."""

    run_dir: Path
    step: int
    steps: int
    loss_first: float | None
    loss_last: float | None
    history: list[dict[str, Any]]
    wall_time_s: float
    steps_per_s: float
    stopped: bool = False  # by SIGINT/SIGTERM (``step < steps`` also after --stop-at)
    val: dict[str, float] = field(default_factory=dict)  # "set5/x3" -> PSNR (last validation)
    export: dict[str, Any] | None = None  # the manifest entry written by --export


def _fmt_scale(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else f"{s:g}"


def _quote(arg: str) -> str:
    """``shlex.quote``, but ``$RESIZER_DATASETS/...`` in double quotes so the shell expands it."""
    prefix = "$RESIZER_DATASETS/"
    if arg.startswith(prefix) and not any(ch in arg[len(prefix):] for ch in '"$`\\'):
        return f'"{arg}"'
    return shlex.quote(arg)


def _datasets_root() -> Path | None:
    env = os.environ.get("RESIZER_DATASETS")
    return Path(env) if env else None


def _portable_path(path: str) -> str:
    """Write dataset paths as ``$RESIZER_DATASETS/...`` so recorded commands work elsewhere."""
    root = _datasets_root()
    p = Path(path)
    if root is not None:
        try:
            return "$RESIZER_DATASETS/" + p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def default_bench_dirs() -> list[Path]:
    """``$RESIZER_DATASETS/bench/set5`` and ``set14`` (those that exist)."""
    root = _datasets_root()
    if root is None:
        return []
    return [d for d in (root / "bench" / "set5", root / "bench" / "set14") if d.is_dir()]


# --------------------------------------------------------------------------- data


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"data folder '{folder}' does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"data folder '{folder}' contains no images")
    return files


def _read_image(path: Path) -> np.ndarray:
    """Decode to ``(H, W, C)`` uint8 with C = 1 (grey) or 3 (RGB); 16-bit is reduced to 8."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("L", "I;16", "I;16B", "I", "LA", "1", "P") and im.mode != "P":
                if im.mode.startswith("I"):
                    arr = np.asarray(im).astype(np.float64)
                    arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
                else:
                    arr = np.asarray(im.convert("L"))
                return arr[:, :, None].copy()
            return np.asarray(im.convert("RGB")).copy()
    except (OSError, ValueError) as exc:
        raise ResizerError(f"cannot read training image '{path}': {exc}") from exc


def _luma_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of a uint8 RGB array, rounded to uint8 (as MATLAB returns it)."""
    x = rgb.astype(np.float64) / 255.0
    y = 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)[:, :, None]


def load_training_images(folders: Iterable[str | Path], color: str) -> list[np.ndarray]:
    """Every image of ``folders`` as ``(H, W, C)`` uint8: luma (C=1) for ``color="y"``, else RGB.

    Grey images are used as luma as they are (the benchmark protocol scores them raw)
    and replicated to three channels for RGB models.
    """
    images = []
    for folder in folders:
        for path in _list_images(Path(folder)):
            arr = _read_image(path)
            if color == "y":
                arr = arr if arr.shape[2] == 1 else _luma_uint8(arr)
            elif arr.shape[2] == 1:
                arr = np.repeat(arr, 3, axis=2)
            images.append(np.ascontiguousarray(arr))
    return images


def _patch_sizes(patch: int, scale: float) -> tuple[int, int]:
    """``(hr, lr)`` patch sides for ``scale``: lr = floor(patch / scale), hr = lr * scale, halves up.

    Halves round up as the models size their outputs (``models.base.upscaled_size``).
    """
    lr = int(math.floor(patch / scale + 1e-9))
    return int(math.floor(lr * scale + 0.5)), lr


class PatchSampler:
    """Random HR patches with the 8 flips/rotations; batch ``k`` depends only on ``(seed, k)``."""

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


def make_lr(hr: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB-bicubic downscale of ``hr`` in [0, 1], quantised to 1/255 like a uint8 LR image."""
    from .ops import imresize

    # The patch sampler made each HR side ``round(lr * scale)`` (halves up), and for scale > 1
    # ``round(hr / scale)`` recovers that LR side exactly.
    lr_h, lr_w = (int(math.floor(side / scale + 0.5)) for side in hr.shape[-2:])
    lr = imresize(hr, scale=1.0 / scale, size=(lr_h, lr_w))
    return torch.floor(lr * 255.0 + 0.5).clamp_(0, 255).div_(255.0)


# --------------------------------------------------------------------------- schedule


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate at ``step`` (0-based): a pure function, so resuming needs no state."""
    base = config.lr
    if config.warmup and step < config.warmup:
        return base * (step + 1) / config.warmup
    if config.schedule == "step":
        every = config.decay_every or max(config.steps // 3, 1)
        return base * config.gamma ** (step // every)
    span = max(config.steps - config.warmup, 1)
    t = min(max(step - config.warmup, 0) / span, 1.0)
    low = base * config.min_lr
    return low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * t))


# --------------------------------------------------------------------------- validation


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(g ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of two ``(H, W)`` float64 images in [0, 255] (Wang et al.; 11x11 Gaussian, sigma 1.5)."""
    import torch.nn.functional as F

    w = _gaussian_window()
    a, b = a[None, None], b[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    saa = F.conv2d(a * a, w) - mu_a ** 2
    sbb = F.conv2d(b * b, w) - mu_b ** 2
    sab = F.conv2d(a * b, w) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return float(ssim.mean())


def _y255(x: torch.Tensor) -> torch.Tensor:
    """``(1, C, H, W)`` in [0, 1] -> luma ``(H, W)`` in [0, 255] (raw values for grey)."""
    from .color import rgb_to_ycbcr

    if x.shape[1] == 1:
        return x[0, 0] * 255.0
    return rgb_to_ycbcr(x)[0, 0] * 255.0


@torch.no_grad()
def validate(model: torch.nn.Module, folders: Sequence[str | Path], scales: Sequence[float],
             device: torch.device | str = "cpu", ssim: bool = False) -> dict[str, dict[str, float]]:
    """Score ``model`` with the benchmark protocol, in memory (for model selection while training).

    modcrop; LR = MATLAB bicubic of the RGB HR, rounded to uint8; super-resolve
    (luma only for ``color == "y"`` models, as ``evaluate()`` does); round; score the luma
    with ``s`` pixels shaved. Returns ``{"set5/x3": {"psnr": .., "ssim": ..}}``; the
    numbers recorded in the manifest come from ``resizer.evaluation.evaluate`` instead.
    """
    from .ops import imresize
    from .color import rgb_to_ycbcr

    device = torch.device(device)
    color = getattr(model, "color", "y")
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, float]] = {}
    try:
        for folder in folders:
            folder = Path(folder)
            files = _list_images(folder)
            images = [_read_image(p) for p in files]
            for scale in scales:
                psnrs, ssims = [], []
                for im in images:
                    (w, h), (lr_w, lr_h) = _protocol_sizes(im.shape[1], im.shape[0], float(scale))
                    hr = torch.from_numpy(im[:h, :w].transpose(2, 0, 1).astype(np.float64) / 255.0)[None]
                    if hasattr(model, "round_trip"):  # a down/up pair: its own thumbnail, restored
                        rgb = hr if hr.shape[1] == 3 else hr.repeat(1, 3, 1, 1)
                        _, sr = model.round_trip(rgb.to(device=device, dtype=torch.float32), float(scale))
                        sr = torch.floor(sr.double().cpu().clamp(0, 1) * 255.0 + 0.5) / 255.0
                        sr_y = _y255(sr if hr.shape[1] == 3 else sr.mean(dim=1, keepdim=True))
                    else:
                        lr = imresize(hr, scale=1.0 / scale, size=(lr_h, lr_w))
                        lr = torch.floor(lr * 255.0 + 0.5).clamp_(0, 255) / 255.0
                        if color == "y":
                            inp = lr[:, :1] if lr.shape[1] == 1 else rgb_to_ycbcr(lr)[:, :1]
                        else:
                            inp = lr if lr.shape[1] == 3 else lr.repeat(1, 3, 1, 1)
                        sr = model(inp.to(device=device, dtype=torch.float32), float(scale)).double().cpu()
                        sr = torch.floor(sr.clamp(0, 1) * 255.0 + 0.5) / 255.0
                        sr_y = sr[0, 0] * 255.0 if color == "y" else _y255(sr if hr.shape[1] == 3 else sr[:, :1])
                    shave = int(math.ceil(scale))
                    a = sr_y[shave:-shave, shave:-shave]
                    b = _y255(hr)[shave:-shave, shave:-shave]
                    psnrs.append(10 * math.log10(255.0 ** 2 / max(float(((a - b) ** 2).mean()), 1e-12)))
                    if ssim:
                        ssims.append(_ssim(a, b))
                key = f"{folder.name}/x{_fmt_scale(scale)}"
                out[key] = {"psnr": float(np.mean(psnrs))}
                if ssim:
                    out[key]["ssim"] = float(np.mean(ssims))
    finally:
        model.train(was_training)
    return out


# --------------------------------------------------------------------------- hardware / device


def _protocol_sizes(width: int, height: int, scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """The benchmark crop (``evaluation.protocol_sizes``: modcrop, or its non-integer form)."""
    from .evaluation import protocol_sizes

    return protocol_sizes(width, height, scale)


def _resolve_device(name: str) -> torch.device:
    if name in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"unknown device '{name}'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device '{name}' requested but CUDA is not available")
    return device


def _autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """None = fp32. ``auto`` is bf16 on CUDA GPUs that support it, fp16 on older ones, fp32 elsewhere."""
    if precision == "fp32" or device.type != "cuda":
        if precision in ("bf16", "fp16") and device.type == "cpu":
            raise UsageError("--precision bf16/fp16 is for GPUs; the CPU trains in fp32")
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def hardware_string(device: torch.device | str = "cpu") -> str:
    """E.g. ``"AMD EPYC, 2 cores, 1 torch thread"`` or ``"NVIDIA H100 80GB HBM3"``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} cores, {threads} torch thread{'s' if threads != 1 else ''}"


# --------------------------------------------------------------------------- checkpoints


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _optimizer_to_safetensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_safetensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
                     scaler: Any, extra: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:08d}"
    tmp = ckpt_root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = _optimizer_to_safetensors(opt)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    state = {"step": step, "optimizer": opt_meta, **extra}
    if scaler is not None:
        state["grad_scaler"] = {k: (float(v) if torch.is_tensor(v) else v) for k, v in scaler.state_dict().items()}
    (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(run_dir / "latest.json", json.dumps({"step": step, "checkpoint": final.name}) + "\n")
    # keep the newest few
    old = sorted(p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for stale in old[:-_CHECKPOINT_KEEP]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _load_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    latest = run_dir / "latest.json"
    if not latest.is_file():
        raise UsageError(f"--resume: no checkpoint in '{run_dir}' (latest.json missing)")
    info = json.loads(latest.read_text(encoding="utf-8"))
    ckpt = run_dir / "checkpoints" / info["checkpoint"]
    state_path = ckpt / "state.json"
    if not state_path.is_file():
        raise ModelError(f"checkpoint '{ckpt}' is incomplete")
    return ckpt, json.loads(state_path.read_text(encoding="utf-8"))


def _codec_batch(c: TrainConfig, step: int) -> bool:
    """Whether batch ``step`` goes through the codec: a pure function of ``(seed, step)``, like the patches."""
    return bool(np.random.default_rng([c.seed, step, 1]).random() < c.codec_share)


def _codec_qualities(c: TrainConfig, step: int, count: int) -> list[int]:
    low, high = c.codec_quality
    return [int(q) for q in np.random.default_rng([c.seed, step, 2]).integers(low, high + 1, size=count)]


def _init_from(model: torch.nn.Module, path: str) -> None:
    """Load a weights file (safetensors only, checked by the weights API) into ``model``.

    A down/up pair takes the common prefix of its two files: ``--init weights/dsn-x2``
    loads ``dsn-x2-down.safetensors`` and ``dsn-x2-up.safetensors``.
    """
    from .weights import load_weights_into

    if hasattr(model, "round_trip"):
        for part in ("down", "up"):
            _init_from(getattr(model, part), f"{path}-{part}.safetensors")
        return
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--init: weights file '{p}' not found")
    if p.suffix != ".safetensors":
        raise UsageError(f"--init: '{p}' is not a .safetensors file (pickled weights are not loaded)")
    load_weights_into(model, p)


# --------------------------------------------------------------------------- training


def _build_pair(pair: tuple[Any, Any], c: TrainConfig) -> torch.nn.Module:
    """The down and up networks of a pair, built for the run's one scale."""
    from .models import ResamplingPair

    unknown = sorted(set(c.model_config) - {"down", "up"})
    if unknown:
        raise UsageError(f"--config for the pair '{c.arch}' takes {{\"down\": {{...}}, \"up\": {{...}}}}, "
                         f"not {', '.join(map(repr, unknown))}")
    scale = c.scales[0]
    if not float(scale).is_integer():
        raise UsageError(f"'{c.arch}' pairs are trained at integer scales, not x{_fmt_scale(scale)}")
    nets = []
    for architecture, part in zip(pair, ("down", "up")):
        config = {**dict(c.model_config.get(part) or {}), "scale": int(scale)}
        try:
            nets.append(architecture.build(config))
        except ValueError as exc:
            raise UsageError(f"'{architecture.name}': {exc}") from None
    return ResamplingPair(*nets)


def _pair_loss_weights(model: torch.nn.Module, c: TrainConfig) -> Any:
    try:
        return model.down.pair_loss_weights(**c.loss_weights)
    except TypeError as exc:
        raise UsageError(f"--loss-weight: {exc}") from None


def _check_scales(arch: Any, model: torch.nn.Module, scales: Sequence[float]) -> None:
    if not scales:
        raise UsageError("give at least one --scale")
    supports = getattr(model, "supports_scale", None)
    for s in scales:
        if not (s > 1 and math.isfinite(s)):
            raise UsageError(f"--scale must be greater than 1, got {_fmt_scale(s)}")
        if supports is not None and not supports(float(s)):
            raise UsageError(f"architecture '{arch.name}' does not support scale x{_fmt_scale(s)}")


def _validate_config(c: TrainConfig) -> None:
    if c.steps < 0:
        raise UsageError("--steps must be >= 0")
    if c.log_every < 1:
        raise UsageError("--log-every must be >= 1")
    if c.batch < 1:
        raise UsageError("--batch must be >= 1")
    if c.loss is not None and c.loss not in _LOSSES:
        raise UsageError(f"unknown loss '{c.loss}' (use l1 or l2)")
    if c.schedule not in _SCHEDULES:
        raise UsageError(f"unknown schedule '{c.schedule}' (use cosine or step)")
    if c.precision not in _PRECISIONS:
        raise UsageError(f"unknown precision '{c.precision}' (use auto, fp32, bf16 or fp16)")
    if not c.lr > 0:
        raise UsageError("--lr must be positive")
    if not c.data:
        raise UsageError("give at least one --data folder")
    low, high = c.codec_quality
    if not 1 <= low <= high <= 100:
        raise UsageError(f"--codec-quality must be LOW-HIGH within 1..100, not {low}-{high}")
    if not 0 <= c.codec_share <= 1:
        raise UsageError(f"--codec-share must be between 0 and 1, not {c.codec_share:g}")
    if c.codec_joint and (c.codec or "").lower() != "jpeg":
        raise UsageError("--codec-joint trains through a differentiable JPEG: it needs --codec jpeg")
    if c.codec_rate and not c.codec_joint:
        raise UsageError("--codec-rate weighs the rate of --codec-joint batches: add --codec-joint")
    if not (math.isfinite(c.codec_rate) and c.codec_rate >= 0):
        raise UsageError(f"--codec-rate must be a number >= 0, not {c.codec_rate:g}")
    for s in c.scales:
        if c.patch < math.ceil(s) * 4:
            raise UsageError(f"--patch {c.patch} is too small for scale x{_fmt_scale(s)}")
    if c.export is not None and not c.export.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"--export name '{c.export}' may use letters, digits, '-', '_' and '.' only")


def _emit(progress: ProgressFn | None, event: dict[str, Any]) -> None:
    if progress is not None:
        progress(event)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(config: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train ``config.arch`` on random patches of ``config.data``; see the module docstring.

    ``progress`` receives event dicts: ``{"event": "start"|"step"|"val"|"checkpoint"|
    "export"|"done", "step": .., ...}``. Raises ``UsageError`` for bad requests
    (unknown arch, empty folder, unsupported scale) before any work is done.
    """
    from .models import create_model, get_architecture, pair_architectures

    c = config.normalized()
    _validate_config(c)
    pair = pair_architectures(c.arch)
    if pair and c.loss:  # normalized() leaves a pair's loss unset unless one was asked for
        raise UsageError(f"--loss: '{c.arch}' is a down/up pair trained on its joint objective "
                         f"(L1 of the round trip plus its --loss-weight terms), not l1/l2")
    arch = get_architecture(pair[1].name if pair else c.arch)
    if arch.task != "up":
        raise UsageError(f"architecture '{c.arch}' is a downscaler: train its pair by the family name "
                         f"('resizer train {arch.family}')")
    if pair and len(c.scales) != 1:
        raise UsageError(f"'{c.arch}' is a down/up pair trained for one --scale at a time")
    if not pair and "scale" in arch.default_config and "scale" not in c.model_config and len(c.scales) == 1:
        # one network per scale (DAIR): built for the scale trained, recorded in the run's config
        c = dataclasses.replace(c, model_config={**c.model_config, "scale": _scale_value(c.scales[0])})
    if c.threads:
        torch.set_num_threads(int(c.threads))
    device = _resolve_device(c.device)
    amp_dtype = _autocast_dtype(device, c.precision)
    hardware = hardware_string(device)  # now: evaluation may change torch's thread count later

    run_dir = Path(c.out or f"runs/{c.arch}-x{'-'.join(_fmt_scale(s) for s in c.scales)}")
    state: dict[str, Any] = {}
    ckpt_dir: Path | None = None
    if c.resume:
        ckpt_dir, state = _load_checkpoint(run_dir)
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        defaults = TrainConfig(arch=c.arch, scales=c.scales, data=c.data, steps=c.steps).to_json()
        for key in TrainConfig._TRAJECTORY:
            ours = c.to_json()[key]
            theirs = saved.get(key, defaults[key])  # a run saved before the field existed had the default
            if key == "loss" and pair:
                continue  # pairs saved "l2" before they said they ignore it
            if theirs != ours:
                raise UsageError(f"--resume: {key} differs from the run in '{run_dir}' "
                                 f"({theirs!r} there, {ours!r} now)")
        if c.init is None:
            c = dataclasses.replace(c, init=saved.get("init"))
    elif (run_dir / "latest.json").exists():
        raise UsageError(f"run folder '{run_dir}' already has checkpoints: add --resume or choose another --out")

    torch.manual_seed(c.seed)
    codec_format = None
    if pair:
        model = _build_pair(pair, c)
        _check_scales(arch, model.up, c.scales)
        loss_weights = _pair_loss_weights(model, c)
        if c.codec:
            from .codec import codec_format as _format

            codec_format = _format(c.codec)
    elif c.codec:
        raise UsageError("--codec trains the upscaler of a down/up pair (dsn, car), not a single network")
    else:
        model = create_model(c.arch, c.model_config)
        _check_scales(arch, model, c.scales)
    color = getattr(model, "color", "y")
    images = load_training_images(c.data, color)
    sampler = PatchSampler(images, c.patch, c.scales, c.batch, c.seed)
    val_dirs = [Path(v) for v in c.val]
    for v in val_dirs:
        _list_images(v)  # fail early on a bad --val
    if c.init and not c.resume:
        _init_from(model, c.init)
    model.to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step = 0
    segments: list[dict[str, int]] = [{"steps": c.steps}]
    history: list[dict[str, Any]] = []
    prior_wall = 0.0
    if ckpt_dir is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors"), device=str(device)))
        _optimizer_from_safetensors(opt, load_file(str(ckpt_dir / "optimizer.safetensors"), device=str(device)), state["optimizer"])
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        step = int(state["step"])
        history = list(state.get("history", []))
        prior_wall = float(state.get("wall_time_s", 0.0))
        segments = [dict(x) for x in state.get("segments", [])] or [{"steps": int(saved["steps"])}]
        if segments[-1]["steps"] != c.steps:  # the run is extended or shortened: remember where
            segments[-1]["until"] = step
            segments.append({"steps": c.steps})
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(run_dir / "config.json", json.dumps(c.to_json(), indent=1) + "\n")
    log_path = run_dir / "log.jsonl"

    def log(entry: dict[str, Any]) -> None:
        history.append(entry)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    loss_fn = torch.nn.functional.l1_loss if c.loss == "l1" else torch.nn.functional.mse_loss
    start_step = step
    t0 = time.perf_counter()
    window: list[float] = []
    first_window: list[float] = []
    last_val: dict[str, float] = {}
    _emit(progress, {"event": "start", "step": step, "steps": c.steps, "device": str(device),
                     "images": len(sampler.images), "run_dir": str(run_dir), "hardware": hardware})

    def elapsed() -> float:
        return prior_wall + (time.perf_counter() - t0)

    def checkpoint() -> None:
        path = _save_checkpoint(run_dir, step, model, opt, scaler,
                                {"wall_time_s": elapsed(), "history": history, "config": c.to_json(),
                                 "segments": segments})
        _emit(progress, {"event": "checkpoint", "step": step, "path": str(path)})

    def run_validation() -> None:
        nonlocal last_val
        scores = validate(model, val_dirs, c.scored_scales, device)
        last_val = {k: round(v["psnr"], 4) for k, v in scores.items()}
        entry = {"event": "val", "step": step, "psnr": last_val, "wall_time_s": round(elapsed(), 1)}
        log(entry)
        _emit(progress, entry)

    pool = ThreadPoolExecutor(max_workers=c.workers) if c.workers > 0 else None
    pending: dict[int, Any] = {}

    def fetch(k: int) -> tuple[np.ndarray, float]:
        if pool is None:
            return sampler.batch_at(k)
        for ahead in range(k, min(k + 2 * c.workers, end)):
            if ahead not in pending:
                pending[ahead] = pool.submit(sampler.batch_at, ahead)
        return pending.pop(k).result()

    stopped = False
    try:
        with _StopFlag() as stop:
            end = c.steps if c.stop_at is None else min(c.steps, c.stop_at)
            while step < end:
                if stop.requested:
                    stopped = True
                    break
                for group in opt.param_groups:
                    group["lr"] = learning_rate(c, step)
                hr_np, scale = fetch(step)
                hr = torch.from_numpy(hr_np).to(device=device, non_blocking=True).float().div_(255.0)
                if pair and c.codec and _codec_batch(c, step):  # the upscaler learns the codec's artefacts
                    qualities = _codec_qualities(c, step, int(hr.shape[0]))
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        loss, _terms = model.codec_loss(hr, float(scale), codec_format, qualities,
                                                        joint=c.codec_joint, rate=c.codec_rate)
                    loss = loss.float()
                elif pair:  # the pair makes its own thumbnail: HR in, joint objective out
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        loss, _terms = model.loss(hr, loss_weights)
                    loss = loss.float()
                else:
                    lr_img = make_lr(hr, scale)
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        sr = model(lr_img, float(scale))
                    loss = loss_fn(sr.float(), hr)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if c.clip:
                        scaler.unscale_(opt)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    if c.clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
                    opt.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise ResizerError(f"loss became {value} at step {step}; lower --lr or add --clip")
                step += 1
                window.append(value)
                if step - start_step <= c.log_every:
                    first_window.append(value)
                if step % c.log_every == 0 or step == c.steps:
                    done = step - start_step
                    entry = {"event": "step", "step": step, "loss": sum(window) / len(window),
                             "lr": learning_rate(c, step - 1), "steps_per_s": done / max(time.perf_counter() - t0, 1e-9),
                             "wall_time_s": round(elapsed(), 1)}
                    log(entry)
                    _emit(progress, entry)
                    window = []
                if val_dirs and c.val_every and step % c.val_every == 0 and step < c.steps:
                    run_validation()
                if c.checkpoint_every and step % c.checkpoint_every == 0 and step < c.steps:
                    checkpoint()
            if val_dirs and (step == c.steps) and (not history or history[-1].get("event") != "val"
                                                    or history[-1].get("step") != step):
                run_validation()
            if step > start_step or not (run_dir / "latest.json").exists():
                checkpoint()
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    wall = elapsed()
    trained = step - start_step
    steps_per_s = trained / max(time.perf_counter() - t0, 1e-9)
    step_losses = [h["loss"] for h in history if h.get("event") == "step"]
    result = TrainResult(
        run_dir=run_dir, step=step, steps=c.steps,
        loss_first=(sum(first_window) / len(first_window)) if first_window else (step_losses[0] if step_losses else None),
        loss_last=(sum(window) / len(window)) if window else (step_losses[-1] if step_losses else None),
        history=history, wall_time_s=wall, steps_per_s=steps_per_s, stopped=stopped, val=last_val,
    )
    if c.export and step == c.steps:
        exporter = export_pair if pair else export_weights
        result.export = exporter(model, c, wall_time_s=wall, device=device, progress=progress,
                                 segments=segments, hardware=hardware)
    _emit(progress, {"event": "done", "step": step, "stopped": stopped, "wall_time_s": round(wall, 1),
                     "steps_per_s": steps_per_s, "run_dir": str(run_dir)})
    return result


# --------------------------------------------------------------------------- export


def _score(weights_path: Path, family: str, bench: Sequence[Path], scales: Sequence[float],
           model: torch.nn.Module, device: torch.device) -> tuple[dict[str, dict[str, dict[str, float]]], str]:
    """Set5/Set14 PSNR/SSIM per scale: ``evaluate()`` (the official measure) when available.

    Falls back to this module's in-memory protocol (same steps; matches the bicubic rows
    within 0.02 dB) only if ``evaluate`` or the learned method is not available; the
    second value says which produced the numbers.
    """
    scores: dict[str, dict[str, dict[str, float]]] = {}
    try:
        from .evaluation import evaluate
        from .methods import RunOptions, get_method

        get_method(family)  # the learned method must be registered for evaluate() to run it
    except (ImportError, UsageError):
        evaluate = None
    if evaluate is not None:
        results = evaluate([Path(b) for b in bench], list(scales), down="matlab-bicubic", up=family,
                           options=RunOptions(weights=str(weights_path), device=str(device)))
        for r in results:
            scores.setdefault(r.dataset, {})[f"x{_fmt_scale(r.scale)}"] = {
                "psnr": round(float(r.psnr), 4), "ssim": round(float(r.ssim), 5)}
        return scores, "evaluate"
    raw = validate(model, bench, scales, device, ssim=True)
    for key, v in raw.items():
        name, sc = key.split("/")
        scores.setdefault(name, {})[sc] = {"psnr": round(v["psnr"], 4), "ssim": round(v["ssim"], 5)}
    return scores, "training.validate"


def _manifest_default() -> Path:
    from .weights import manifest_path

    return manifest_path()


def export_weights(model: torch.nn.Module, config: TrainConfig, *, wall_time_s: float,
                   device: torch.device | str = "cpu", progress: ProgressFn | None = None,
                   segments: Sequence[dict[str, int]] = (), hardware: str | None = None) -> dict[str, Any]:
    """Write ``NAME.safetensors`` next to the manifest, score it, and upsert its manifest entry.

    The weights go beside the manifest (the package's ``weights/`` by default), so a
    test exporting into a temporary manifest never touches the shipped files.
    """
    from .models import get_architecture
    from . import weights as wapi

    c = config.normalized()
    device = torch.device(device)
    arch = get_architecture(c.arch)
    manifest = Path(c.manifest) if c.manifest else _manifest_default()
    manifest.parent.mkdir(parents=True, exist_ok=True)
    path = manifest.parent / f"{c.export}.safetensors"
    model_cpu_config = {**arch.default_config, **c.model_config}
    model.eval()
    # A network that takes the scale as an input (ASDN) serves every scale: an empty list.
    served = [] if getattr(model, "arbitrary_scale", False) else [float(s) for s in c.scales]
    bench = [Path(b) for b in c.bench] if c.bench else default_bench_dirs()
    scores, scorer = ({}, "none")
    with _restored_on_failure([path]):  # a file the manifest describes is never replaced unscored
        sha256, size = wapi.save_weights(model, path, arch=c.arch, config=model_cpu_config, scales=served)
        if bench:
            scores, scorer = _score(path, arch.family, bench, c.scored_scales, model, device)
    recipe = {
        "data": "+".join(Path(d).name for d in c.data),
        "steps": c.steps,
        "batch": c.batch,
        "patch": c.patch,
        "schedule": _schedule_text(c),
        "seed": c.seed,
        "hardware": hardware or hardware_string(device),
        "wall_time_s": round(wall_time_s, 3),
        "command": c.command or c.to_command(segments),
    }
    recipe = _chained_recipe(recipe, c, segments, c.init, manifest)
    fields = {
        "name": c.export, "arch": c.arch, "family": arch.family, "task": arch.task,
        "config": model_cpu_config, "scales": [_scale_value(s) for s in served], "file": path.name,
        "sha256": sha256, "size": size, "params": sum(p.numel() for p in model.parameters()),
        "license": c.license, "source": "bundled", "recipe": recipe, "scores": scores,
    }
    entry_cls = getattr(wapi, "WeightsEntry")
    if dataclasses.is_dataclass(entry_cls):
        names = {f.name for f in dataclasses.fields(entry_cls)}
        entry = entry_cls(**{k: v for k, v in fields.items() if k in names})
    else:
        entry = entry_cls(**fields)
    wapi.upsert_manifest_entry(entry, manifest_path=manifest)
    fields["scored_by"] = scorer
    _emit(progress, {"event": "export", "name": c.export, "file": str(path), "manifest": str(manifest),
                     "scores": scores, "scored_by": scorer})
    return fields


def export_pair(model: torch.nn.Module, config: TrainConfig, *, wall_time_s: float,
                device: torch.device | str = "cpu", progress: ProgressFn | None = None,
                segments: Sequence[dict[str, int]] = (), hardware: str | None = None) -> dict[str, Any]:
    """Write a trained pair as ``NAME-down`` and ``NAME-up`` (files and manifest entries), then score it.

    The scores are the round trip (the pair's thumbnail, stored as 8 bits, restored by its
    upscaler) measured by ``evaluate()`` against the manifest just written, plus
    ``thumbnail_psnr``: how close the thumbnail stays to the MATLAB-bicubic one. Both
    entries carry the same recipe and scores.
    """
    from .models import pair_architectures
    from . import weights as wapi

    c = config.normalized()
    device = torch.device(device)
    down_arch, up_arch = pair_architectures(c.arch)
    manifest = Path(c.manifest) if c.manifest else _manifest_default()
    manifest.parent.mkdir(parents=True, exist_ok=True)
    scale = float(c.scales[0])
    model.eval()
    recipe = {
        "data": "+".join(Path(d).name for d in c.data), "steps": c.steps, "batch": c.batch, "patch": c.patch,
        "schedule": _schedule_text(c, pair=True) + _loss_weights_text(model, c), "seed": c.seed,
        "hardware": hardware or hardware_string(device), "wall_time_s": round(wall_time_s, 3),
        "command": c.command or c.to_command(segments),
    }
    recipe = _chained_recipe(recipe, c, segments, f"{c.init}-up.safetensors" if c.init else None, manifest)
    # Scoring reads the pair through the manifest, so files and entries go in first; if anything
    # fails, the manifest and both files are put back as they were (nothing unscored is left).
    paths = [manifest.parent / f"{c.export}-{part}.safetensors" for part in ("down", "up")]
    entries = []
    with _restored_on_failure([manifest, *paths]):
        for architecture, net, part, path in ((down_arch, model.down, "down", paths[0]),
                                              (up_arch, model.up, "up", paths[1])):
            config = {**architecture.default_config, **dict(c.model_config.get(part) or {}), "scale": int(scale)}
            sha256, size = wapi.save_weights(net, path, arch=architecture.name, config=config, scales=[scale])
            entries.append(wapi.WeightsEntry(
                name=path.stem, arch=architecture.name, family=architecture.family, task=architecture.task,
                config=config, scales=[scale], file=path.name, sha256=sha256, size=size,
                params=wapi.count_parameters(net), license=c.license, recipe=recipe, scores={}, source="bundled"))
        for entry in entries:
            wapi.upsert_manifest_entry(entry, manifest_path=manifest)
        scores = _score_pair(c, manifest, down_arch.family, scale, device)
    for entry in entries:
        wapi.upsert_manifest_entry(dataclasses.replace(entry, scores=scores), manifest_path=manifest)
    _emit(progress, {"event": "export", "name": c.export, "file": str(manifest.parent / entries[-1].file),
                     "manifest": str(manifest), "scores": scores, "scored_by": "evaluate"})
    return {"entries": [e.name for e in entries], "scores": scores}


def _chained_recipe(recipe: dict[str, Any], c: TrainConfig, segments: Sequence[dict[str, int]],
                    init: str | None, manifest: Path) -> dict[str, Any]:
    """A run that started from a shipped file (``--init weights/NAME...``) continues that file's recipe.

    The earlier recipe's command comes first (it writes the file this run starts from), then
    this run's; steps and wall time add up. Without such an ``--init`` the recipe is unchanged.
    Recorded commands export to the bundled ``weights/``, so this run's ``--init`` is written
    as ``weights/NAME`` wherever the manifest it was trained against lives.
    """
    from . import weights as wapi

    if not init or not manifest.exists():
        return recipe
    path = Path(init)
    if path.resolve().parent != manifest.parent.resolve():
        return recipe
    prior = next((e.recipe for e in wapi.read_manifest(manifest) if e.file == path.name), None)
    if not prior:
        return recipe
    if not c.command:
        recipe = {**recipe, "command": dataclasses.replace(c, init=f"weights/{Path(c.init).name}").to_command(segments)}
    return {**recipe, "steps": int(prior["steps"]) + int(recipe["steps"]),
            "schedule": f"{prior['schedule']}; then {recipe['schedule']}",
            "wall_time_s": round(float(prior["wall_time_s"]) + float(recipe["wall_time_s"]), 3),
            "hardware": recipe["hardware"] if prior["hardware"] == recipe["hardware"]
            else f"{prior['hardware']}; then {recipe['hardware']}",
            "command": f"{prior['command']} && {recipe['command']}"}


@contextlib.contextmanager
def _restored_on_failure(paths: Sequence[Path]) -> Iterator[None]:
    """Put ``paths`` back as they were (or remove them) if the block fails: an export is all or nothing."""
    before = {p: (p.read_bytes() if p.exists() else None) for p in paths}
    try:
        yield
    except BaseException:
        for path, data in before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        raise


def _score_pair(c: TrainConfig, manifest: Path, family: str, scale: float,
                device: torch.device) -> dict[str, dict[str, dict[str, float]]]:
    """Round-trip PSNR/SSIM and ``thumbnail_psnr`` per bench set, by ``evaluate()`` through ``manifest``."""
    from . import weights as wapi
    from .evaluation import evaluate
    from .methods import RunOptions

    bench = [Path(b) for b in c.bench] if c.bench else default_bench_dirs()
    scores: dict[str, dict[str, dict[str, float]]] = {}
    if not bench:
        return scores
    with wapi.manifest_override(manifest):
        for r in evaluate(bench, [scale], down=family, up=family, options=RunOptions(device=str(device))):
            metrics = {"psnr": round(float(r.psnr), 4), "ssim": round(float(r.ssim), 5)}
            if r.lr_psnr is not None:
                metrics["thumbnail_psnr"] = round(float(r.lr_psnr), 4)
            scores.setdefault(r.dataset, {})[f"x{_fmt_scale(r.scale)}"] = metrics
    return scores


def _loss_weights_text(model: torch.nn.Module, c: TrainConfig) -> str:
    weights = model.down.pair_loss_weights(**c.loss_weights)
    if dataclasses.is_dataclass(weights):
        items = dataclasses.asdict(weights).items()
        return "; joint loss: L1 + " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in items)
    return ""


def _is_pair(arch: str) -> bool:
    from .models import pair_architectures

    return bool(pair_architectures(arch))


def _scale_value(s: float) -> int | float:
    return int(s) if float(s).is_integer() else float(s)


def _schedule_text(c: TrainConfig, pair: bool = False) -> str:
    """The optimiser, loss and schedule in words (a pair's loss is its joint objective, said separately)."""
    loss = "" if pair else f"{(c.loss or 'l2').upper()} loss, "
    warm = f", {c.warmup} warmup steps" if c.warmup else ""
    clip = f", grad-norm clip {c.clip:g}" if c.clip else ""
    if c.schedule == "cosine":
        sched = f"cosine {c.lr:g} -> {c.lr * c.min_lr:g}"
    else:
        sched = f"step x{c.gamma:g} every {c.decay_every or max(c.steps // 3, 1)} steps from {c.lr:g}"
    codec = (f", {c.codec_share:g} of batches through {c.codec} at quality {c.codec_quality[0]}-{c.codec_quality[1]}"
             if c.codec else "")
    if c.codec_joint:
        codec += (" (both networks, through a differentiable JPEG" +
                  (f", rate weight {c.codec_rate:g})" if c.codec_rate else ")"))
    elif c.codec:
        codec += " (upscaler only)"
    return f"Adam, {loss}{sched}{warm}{clip}{codec}"
