"""What a run minimises, chosen once from the model family before the loop starts.

- :class:`PixelObjective`: one network; L1/L2 between its upscale of the protocol's LR
  (MATLAB bicubic, rounded to 8 bits) and the HR patch.
- :class:`JointObjective`: a down/up pair; HR in, the pair's joint round-trip loss out
  (the downscaler's ``pair_loss`` and its ``--loss-weight`` terms).
- :class:`CodecObjective`: a pair, with a share of the batches going through a codec, so
  that the upscaler learns its artefacts (and, ``--codec-joint``, the downscaler too).
- :class:`RestoreObjective`: a restoration family at scale 1; every RGB patch goes through
  JPEG at a random ``--codec-quality`` and the network restores the decoded luma.

Each builds its network(s), loads ``--init`` into them, says how they are exported, and
maps a batch to ``(loss, terms)``; the loop only calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import numpy as np
import torch

from ..errors import UsageError
from ..evaluation import make_lr
from ..models import ModelFamily
from .config import TrainConfig, fmt_scale

__all__ = ["CodecObjective", "JointObjective", "Objective", "PixelObjective", "RestoreObjective", "select_objective"]

Terms = dict[str, float]


def _check_scales(name: str, model: torch.nn.Module, scales: Sequence[float]) -> None:
    if not scales:
        raise UsageError("give at least one --scale")
    for s in scales:
        if not (s > 1 and math.isfinite(s)):
            raise UsageError(f"--scale must be greater than 1, got {fmt_scale(s)}")
        if not model.supports_scale(float(s)):
            raise UsageError(f"architecture '{name}' does not support scale x{fmt_scale(s)}")


def _weights_file(path: str | Path) -> Path:
    """An ``--init`` file: safetensors only (pickled weights are never loaded)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--init: weights file '{p}' not found")
    if p.suffix != ".safetensors":
        raise UsageError(f"--init: '{p}' is not a .safetensors file (pickled weights are not loaded)")
    return p


class Objective:
    """The training objective of one run: its network(s) and their loss on a batch.

    ``prepare`` checks the config against the objective (before any work) and may complete
    it; ``build`` makes the network(s) after the seed is set; ``autocast`` is the
    precision context the forward pass runs in (set by the loop).
    """

    def __init__(self, family: ModelFamily, config: TrainConfig) -> None:
        self.family, self.config = family, config
        self.model: torch.nn.Module | None = None
        self.data_color = family.color  # the colour the training images are loaded in
        self.autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext

    @classmethod
    def prepare(cls, c: TrainConfig, family: ModelFamily) -> TrainConfig:
        return c

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def init_from(self, path: str) -> None:
        from ..weights import load_weights_into

        load_weights_into(self.model, _weights_file(path))

    def __call__(self, hr: torch.Tensor, scale: float, step: int) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def export(self, c: TrainConfig, **run: Any) -> dict[str, Any]:
        """Write the trained network and its manifest entry (``--export``); see :mod:`.export`."""
        from .export import export_weights

        return export_weights(self.model, c, **run)


class PixelObjective(Objective):
    """One network: L1 or L2 between its upscale of the protocol's LR and the HR patch."""

    @classmethod
    def prepare(cls, c: TrainConfig, family: ModelFamily) -> TrainConfig:
        if c.codec:
            raise UsageError("--codec trains the upscaler of a down/up pair (dsn, car), not a single network")
        if family.per_scale_config and "scale" not in c.model_config and len(c.scales) == 1:
            # one network per scale (DAIR): built for the scale trained, recorded in the run's config
            scale = c.scales[0]
            value = int(scale) if float(scale).is_integer() else float(scale)
            c = dataclasses.replace(c, model_config={**c.model_config, "scale": value})
        return c

    def build(self) -> torch.nn.Module:
        architecture = self.family.architecture("up")
        self.model = architecture.build(self.config.model_config)
        _check_scales(architecture.name, self.model, self.config.scales)
        self.loss_fn = torch.nn.functional.l1_loss if self.config.loss == "l1" else torch.nn.functional.mse_loss
        return self.model

    def __call__(self, hr: torch.Tensor, scale: float, step: int) -> tuple[torch.Tensor, Terms]:
        lr_img = make_lr(hr, scale)
        with self.autocast():
            sr = self.model(lr_img, float(scale))
        return self.loss_fn(sr.float(), hr), {}


class JointObjective(Objective):
    """A down/up pair trained together on the downscaler's joint round-trip loss."""

    @classmethod
    def prepare(cls, c: TrainConfig, family: ModelFamily) -> TrainConfig:
        if c.loss:  # normalized() leaves a pair's loss unset unless one was asked for
            raise UsageError(f"--loss: '{c.arch}' is a down/up pair trained on its joint objective "
                             f"(L1 of the round trip plus its --loss-weight terms), not l1/l2")
        if len(c.scales) != 1:
            raise UsageError(f"'{c.arch}' is a down/up pair trained for one --scale at a time")
        return c

    def build(self) -> torch.nn.Module:
        from ..models import ResamplingPair

        c = self.config
        unknown = sorted(set(c.model_config) - {"down", "up"})
        if unknown:
            raise UsageError(f"--config for the pair '{c.arch}' takes {{\"down\": {{...}}, \"up\": {{...}}}}, "
                             f"not {', '.join(map(repr, unknown))}")
        scale = c.scales[0]
        if not float(scale).is_integer():
            raise UsageError(f"'{c.arch}' pairs are trained at integer scales, not x{fmt_scale(scale)}")
        nets = []
        for part in ("down", "up"):
            architecture = self.family.architecture(part)
            try:
                nets.append(architecture.build({**dict(c.model_config.get(part) or {}), "scale": int(scale)}))
            except ValueError as exc:
                raise UsageError(f"'{architecture.name}': {exc}") from None
        self.model = ResamplingPair(*nets)
        _check_scales(self.family.architecture("up").name, self.model.up, c.scales)
        try:
            self.weights = self.model.down.pair_loss_weights(**c.loss_weights)
        except TypeError as exc:
            raise UsageError(f"--loss-weight: {exc}") from None
        return self.model

    def init_from(self, path: str) -> None:
        """The common prefix of the pair's two files: ``weights/dsn-x2`` loads ``dsn-x2-down`` and ``-up``."""
        from ..weights import load_weights_into

        for part in ("down", "up"):
            load_weights_into(getattr(self.model, part), _weights_file(f"{path}-{part}.safetensors"))

    def export(self, c: TrainConfig, **run: Any) -> dict[str, Any]:
        from .export import export_pair

        return export_pair(self.model, c, **run)

    def __call__(self, hr: torch.Tensor, scale: float, step: int) -> tuple[torch.Tensor, Terms]:
        with self.autocast():  # the pair makes its own thumbnail: HR in, joint objective out
            loss, terms = self.model.loss(hr, self.weights)
        return loss.float(), terms


class CodecObjective(JointObjective):
    """A pair whose batches go through the codec with probability ``codec_share`` (a function of seed and step)."""

    def build(self) -> torch.nn.Module:
        from ..codec import codec_format

        model = super().build()
        self.codec_format = codec_format(self.config.codec)
        return model

    def __call__(self, hr: torch.Tensor, scale: float, step: int) -> tuple[torch.Tensor, Terms]:
        c = self.config
        if not np.random.default_rng([c.seed, step, 1]).random() < c.codec_share:
            return super().__call__(hr, scale, step)
        low, high = c.codec_quality  # the upscaler learns the codec's artefacts
        qualities = [int(q) for q in np.random.default_rng([c.seed, step, 2]).integers(low, high + 1, size=int(hr.shape[0]))]
        with self.autocast():
            loss, terms = self.model.codec_loss(hr, float(scale), self.codec_format, qualities,
                                                joint=c.codec_joint, rate=c.codec_rate)
        return loss.float(), terms


class RestoreObjective(Objective):
    """A restoration network: L1/L2 between its restoration of the JPEG-decoded luma and the original's.

    The patches are loaded in RGB and compressed in colour (4:2:0, as files are), one quality
    per patch drawn from ``--codec-quality`` by ``(seed, step)``; the luma of the decoded patch
    is the input, the luma of the original the target (the protocol's MATLAB BT.601 Y).
    """

    def __init__(self, family: ModelFamily, config: TrainConfig) -> None:
        super().__init__(family, config)
        self.data_color = "rgb"

    @classmethod
    def prepare(cls, c: TrainConfig, family: ModelFamily) -> TrainConfig:
        if tuple(float(s) for s in c.scales) != (1.0,):
            raise UsageError(f"'{c.arch}' restores codec artefacts at --scale 1 only")
        if (c.codec or family.restores) != family.restores:
            raise UsageError(f"'{c.arch}' restores {family.restores}, not --codec {c.codec}")
        return dataclasses.replace(c, codec=family.restores)

    def build(self) -> torch.nn.Module:
        self.model = self.family.architecture("up").build(self.config.model_config)
        self.loss_fn = torch.nn.functional.l1_loss if self.config.loss == "l1" else torch.nn.functional.mse_loss
        return self.model

    def __call__(self, hr: torch.Tensor, scale: float, step: int) -> tuple[torch.Tensor, Terms]:
        from ..color import rgb_to_ycbcr
        from ..restoration import jpeg_round_trip

        low, high = self.config.codec_quality
        qualities = np.random.default_rng([self.config.seed, step, 3]).integers(low, high + 1, size=int(hr.shape[0]))
        patches = (hr.detach().cpu() * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        decoded = np.stack([jpeg_round_trip(np.ascontiguousarray(p), int(q)) for p, q in zip(patches, qualities)])
        lossy = torch.from_numpy(decoded).permute(0, 3, 1, 2).to(device=hr.device, dtype=torch.float32).div_(255.0)
        target, source = rgb_to_ycbcr(hr)[:, :1], rgb_to_ycbcr(lossy)[:, :1]
        with self.autocast():
            restored = self.model(source, 1.0)
        return self.loss_fn(restored.float(), target), {}


def select_objective(c: TrainConfig, family: ModelFamily) -> tuple[Objective, TrainConfig]:
    """The objective for ``family`` (its ``objective``: pixel or joint; a pair with ``--codec`` through it).

    Returns it with the config it completed (e.g. a per-scale network's ``scale``); nothing
    is built yet.
    """
    if family.objective == "joint":
        kind: type[Objective] = CodecObjective if c.codec else JointObjective
    elif family.objective == "restore":
        kind = RestoreObjective
    else:
        kind = PixelObjective
    c = kind.prepare(c, family)
    return kind(family, c), c
