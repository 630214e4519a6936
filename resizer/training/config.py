"""The training options, declared once: ``TrainConfig`` and the schema of its fields.

Each field of :class:`TrainConfig` carries its :class:`Option`: the ``resizer train``
flag, help text and range, how a command-line value becomes the config's value, whether
a resumed run must agree on it (the trajectory), and how it is written in the recipe
command. The CLI (``resizer.cli.train_cmd``), :meth:`TrainConfig.to_command` and the
``--resume`` check are all generated from :data:`OPTIONS`, so an option is added in one
place. Importing this module does not import torch (the CLI builds its flags from it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import UsageError

if TYPE_CHECKING:
    from ..models import ModelFamily

__all__ = ["Option", "OPTIONS", "TrainConfig", "TRAJECTORY", "check_options", "config_from_cli", "fmt_scale", "training_family"]

Words = Callable[["Option", "TrainConfig"], list[str]]


@dataclass(frozen=True)
class Option:
    """One training option: its command-line face, its recipe rendering, its resume rule.

    ``flag`` is ``None`` for fields the command line does not set; ``argument`` makes it
    the positional argument. ``cli_type`` is the type the CLI parses (``multiple``: the
    flag repeats), ``cli_default`` its default there and ``from_cli`` what turns the
    parsed value into the config's. ``recipe`` writes the option into the recorded
    command (``None``: not recorded), at position ``rank`` of that command.
    """

    name: str
    flag: str | None
    help: str = ""
    cli_type: Any = str
    short: str | None = None
    argument: bool = False
    required: bool = False
    multiple: bool = False
    min: float | None = None
    cli_default: Any = None
    from_cli: Callable[[Any], Any] | None = None
    normalize: Callable[[Any], Any] | None = None
    trajectory: bool = False
    rank: int = 0
    recipe: Words | None = None

    @property
    def param(self) -> str:
        """The CLI parameter name (``--loss-weight`` -> ``loss_weight``)."""
        return self.name if self.argument or not self.flag else self.flag.lstrip("-").replace("-", "_")


# --------------------------------------------------------------------------- value helpers


def fmt_scale(s: float) -> str:
    """``2`` for 2.0, ``2.7`` for 2.7: how scales are written in names and commands."""
    return str(int(s)) if float(s).is_integer() else f"{s:g}"


def datasets_root() -> Path | None:
    env = os.environ.get("RESIZER_DATASETS")
    return Path(env) if env else None


def portable_path(path: str) -> str:
    """Write dataset paths as ``$RESIZER_DATASETS/...`` so recorded commands work elsewhere."""
    root = datasets_root()
    if root is not None:
        try:
            return "$RESIZER_DATASETS/" + Path(path).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def _quote(arg: str) -> str:
    """``shlex.quote``, but ``$RESIZER_DATASETS/...`` in double quotes so the shell expands it."""
    prefix = "$RESIZER_DATASETS/"
    if arg.startswith(prefix) and not any(ch in arg[len(prefix):] for ch in '"$`\\'):
        return f'"{arg}"'
    return shlex.quote(arg)


def _strs(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values or ())


def _path_or_none(value: Any) -> str | None:
    return str(value) if value else None


def _lower_or_none(value: Any) -> str | None:
    return value.lower() if value else None


def _json_object(text: str | None) -> dict[str, Any]:
    """``--config``: a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("--config must be a JSON object")
    return value


def _loss_weights(items: Sequence[str] | None) -> dict[str, Any]:
    """``--loss-weight NAME=VALUE`` (repeated): a number or true/false per name."""
    weights: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--loss-weight takes NAME=VALUE, not {item!r}")
        try:
            weights[key.strip()] = json.loads(value.strip().lower())
        except json.JSONDecodeError:
            raise UsageError(f"--loss-weight {item!r}: {value!r} is not a number or true/false") from None
    return weights


def _quality_range(text: str) -> tuple[int, int]:
    """``--codec-quality LOW-HIGH`` (or one quality)."""
    low, sep, high = text.partition("-")
    try:
        return int(low), int(high) if sep else int(low)
    except ValueError:
        raise UsageError(f"--codec-quality takes LOW-HIGH such as 20-95, not {text!r}") from None


# --------------------------------------------------------------------------- recipe words


def _value(fmt: Callable[[Any], str] = str, when: Callable[["TrainConfig"], bool] | None = None) -> Words:
    """``--flag VALUE``, when the value is set (and ``when(config)`` holds)."""
    def words(option: Option, c: "TrainConfig") -> list[str]:
        value = getattr(c, option.name)
        if (when is not None and not when(c)) or (when is None and value in (None, "", 0, 0.0, False)):
            return []
        return [option.flag, fmt(value)]
    return words


def _always(fmt: Callable[[Any], str] = str) -> Words:
    return _value(fmt, when=lambda c: True)


def _each(fmt: Callable[[Any], str] = str) -> Words:
    """``--flag V`` for every value of a repeated option."""
    def words(option: Option, c: "TrainConfig") -> list[str]:
        return [word for value in getattr(c, option.name) for word in (option.flag, fmt(value))]
    return words


def _switch(when: Callable[["TrainConfig"], bool]) -> Words:
    def words(option: Option, c: "TrainConfig") -> list[str]:
        return [option.flag] if getattr(c, option.name) and when(c) else []
    return words


def _arch_words(option: Option, c: "TrainConfig") -> list[str]:
    return [c.arch]


def _config_words(option: Option, c: "TrainConfig") -> list[str]:
    return [option.flag, json.dumps(c.model_config, sort_keys=True, separators=(",", ":"))] if c.model_config else []


def _loss_weight_words(option: Option, c: "TrainConfig") -> list[str]:
    return [word for key, value in sorted(c.loss_weights.items())
            for word in (option.flag, f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")]


def _g(value: float) -> str:
    return f"{value:g}"


def _cosine(c: "TrainConfig") -> bool:
    return c.schedule == "cosine"


def _step(c: "TrainConfig") -> bool:
    return c.schedule != "cosine"


def _codec(c: "TrainConfig") -> bool:
    return bool(c.codec)


# --------------------------------------------------------------------------- the schema

_REQUIRED = dataclasses.MISSING


def option(default: Any = _REQUIRED, *, factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A ``TrainConfig`` field described by its :class:`Option` (the field name is filled in later)."""
    kwargs: dict[str, Any] = {"metadata": {"option": spec}}
    if factory is not None:
        kwargs["default_factory"] = factory
    elif default is not _REQUIRED:
        kwargs["default"] = default
    return field(**kwargs)


class _ConfigMethods:
    """What a config does with its schema: normalize, JSON, the recipe command."""

    def normalized(self) -> "TrainConfig":
        """A copy with tuples/strings normalized (so it round-trips through JSON).

        A down/up pair's ``loss`` stays unset unless one was asked for (its objective is
        the joint loss); a single network's defaults to ``l2``.
        """
        changes = {o.name: o.normalize(getattr(self, o.name)) for o in OPTIONS if o.normalize is not None}
        if not changes["loss"]:
            changes["loss"] = None if _trains_a_pair(self.arch) else "l2"
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.normalized()).items()}

    @property
    def scored_scales(self) -> tuple[float, ...]:
        """The scales validated and recorded in the manifest (``eval_scales``, else the training scales)."""
        return tuple(self.eval_scales) or tuple(self.scales)  # type: ignore[attr-defined]

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
                cmd = dataclasses.replace(c, steps=int(seg["steps"]), export=c.export if last else None).to_command()
                cmds.append(cmd + (" --resume" if i > 0 else "") + ("" if last else f" --stop-at {int(seg['until'])}"))
            return " && ".join(cmds)
        words = ["resizer", "train"]
        for o in sorted((o for o in OPTIONS if o.recipe is not None), key=lambda o: o.rank):
            words += o.recipe(o, c)
        return " ".join(_quote(w) for w in words)


@dataclass
class TrainConfig(_ConfigMethods):
    """Everything that defines a training run; saved as ``config.json`` in the run folder.

    ``patch`` is the HR patch side; for each scale it is rounded down to a multiple that
    gives an integer LR side. ``schedule`` is ``cosine`` (from ``lr`` to ``lr * min_lr``
    over ``steps``, after ``warmup`` linear steps) or ``step`` (multiply by ``gamma`` every
    ``decay_every`` steps; independent of ``steps``, so a run can be extended freely).
    The fields appear in this order in ``resizer train --help``.
    """

    arch: str = option(flag="arch", argument=True, help="Architecture to train (see 'resizer models').",
                       trajectory=True, rank=0, recipe=_arch_words)
    scales: Sequence[float] = option(
        flag="--scale", short="-s", cli_type=float, multiple=True, required=True, from_cli=tuple, normalize=_floats,
        help="Scale factor; repeat for a multi-scale model.", trajectory=True, rank=1, recipe=_each(fmt_scale))
    data: Sequence[str] = option(
        flag="--data", cli_type=Path, multiple=True, required=True, from_cli=_strs, normalize=_strs,
        help="Folder of HR training images; repeatable.", rank=2, recipe=_each(portable_path))
    steps: int = option(flag="--steps", cli_type=int, required=True, min=0, help="Total optimizer steps of the run.",
                        rank=5, recipe=_always())
    val: Sequence[str] = option(
        (), flag="--val", cli_type=Path, multiple=True, from_cli=_strs, normalize=_strs,
        help="Folder scored (PSNR, eval protocol) while training; repeatable.", rank=3, recipe=_each(portable_path))
    batch: int = option(16, flag="--batch", cli_type=int, min=1, help="Patches per step.", trajectory=True,
                        rank=6, recipe=_always())
    patch: int = option(48, flag="--patch", cli_type=int, min=8, help="HR patch side in pixels.", trajectory=True,
                        rank=7, recipe=_always())
    lr: float = option(1e-3, flag="--lr", cli_type=float, help="Peak Adam learning rate.", trajectory=True,
                       rank=8, recipe=_always(_g))
    loss: str | None = option(  # l1 or l2 (default); a down/up pair trains on its joint objective instead
        None, flag="--loss", normalize=_lower_or_none, trajectory=True, rank=9, recipe=_value(),
        help="l1 or l2 (default l2); single networks only: a down/up pair trains on its joint objective, "
             "see --loss-weight.")
    schedule: str = option("cosine", flag="--schedule", help="cosine or step.", normalize=str.lower,
                           trajectory=True, rank=10, recipe=_always())
    min_lr: float = option(0.01, flag="--min-lr", cli_type=float, trajectory=True, rank=11, recipe=_value(_g, _cosine),
                           help="cosine: final learning rate as a fraction of --lr.")
    warmup: int = option(0, flag="--warmup", cli_type=int, min=0, help="Linear warm-up steps.", trajectory=True,
                         rank=14, recipe=_value())
    decay_every: int = option(  # step schedule; 0 = steps // 3
        0, flag="--decay-every", cli_type=int, min=0, help="step: steps between decays (0 = steps/3).",
        trajectory=True, rank=12, recipe=_value(str, _step))
    gamma: float = option(0.1, flag="--gamma", cli_type=float, help="step: learning-rate factor at each decay.",
                          trajectory=True, rank=13, recipe=_value(_g, _step))
    clip: float = option(0.0, flag="--clip", cli_type=float, min=0, help="Max gradient norm; 0 = off.",
                         trajectory=True, rank=15, recipe=_value(_g))
    seed: int = option(0, flag="--seed", cli_type=int, help="Seed of the initialisation and the patch stream.",
                       trajectory=True, rank=16, recipe=_always())
    device: str = option("auto", flag="--device", help="auto, cpu, cuda, cuda:N or mps.")
    precision: str = option("auto", flag="--precision", normalize=str.lower,
                            help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16.")
    threads: int | None = option(None, flag="--threads", cli_type=int, min=1,
                                 help="CPU threads for torch (default: torch's).")
    workers: int = option(0, flag="--workers", cli_type=int, min=0,  # threads preparing batches ahead
                          help="Threads preparing batches ahead; 0 = none.")
    val_every: int = option(0, flag="--val-every", cli_type=int, min=0,
                            help="Validate every K steps; 0 = at the end only.")
    checkpoint_every: int = option(1000, flag="--checkpoint-every", cli_type=int, min=0,
                                   help="Checkpoint every K steps.")
    stop_at: int | None = option(None, flag="--stop-at", cli_type=int, min=0,  # time-boxed sessions
                                 help="Checkpoint and stop at this step (resume later).")
    log_every: int = option(100, flag="--log-every", cli_type=int, min=1, help="Steps per logged loss average.")
    out: str | None = option(None, flag="--out", cli_type=Path, from_cli=_path_or_none,
                             help="Run folder (default runs/ARCH-xS).")
    resume: bool = option(False, flag="--resume", cli_type=bool, cli_default=False,
                          help="Continue from the run folder's latest checkpoint.")
    init: str | None = option(None, flag="--init", cli_type=Path, from_cli=_path_or_none, rank=24,
                              recipe=_value(portable_path), help="Start from a .safetensors weights file.")
    model_config: dict[str, Any] = option(  # a pair: {"down": {...}, "up": {...}}
        factory=dict, flag="--config", from_cli=_json_object, normalize=dict, trajectory=True, rank=17,
        recipe=_config_words, help="Architecture options as JSON, e.g. '{\"depth\": 10}'.")
    export: str | None = option(None, flag="--export", rank=25, recipe=_value(),
                                help="At the end, write weights/NAME.safetensors and its manifest entry.")
    manifest: str | None = option(None, flag="--manifest", cli_type=Path, from_cli=_path_or_none,
                                  help="Manifest --export updates (default: the bundled one).")
    bench: Sequence[str] = option(
        (), flag="--bench", cli_type=Path, multiple=True, from_cli=_strs, normalize=_strs,
        help="Folders scored into the manifest by --export; repeatable "
             "(default $RESIZER_DATASETS/bench/set5, set14).")
    eval_scales: Sequence[float] = option(
        (), flag="--eval-scale", cli_type=float, multiple=True, from_cli=_floats, normalize=_floats, rank=4,
        recipe=_each(fmt_scale),
        help="Scale validated and scored into the manifest; repeatable (default: the training scales).")
    loss_weights: dict[str, float] = option(
        factory=dict, flag="--loss-weight", multiple=True, from_cli=_loss_weights, normalize=dict, trajectory=True,
        rank=23, recipe=_loss_weight_words,
        help="A down/up pair's joint-loss term, NAME=VALUE (e.g. offset=0.001); repeatable.")
    codec: str | None = option(  # a pair: this share of batches goes through the codec (upscaler only)
        None, flag="--codec", normalize=_lower_or_none, trajectory=True, rank=18, recipe=_value(),
        help="A pair: also train its upscaler on codec-decoded thumbnails (jpeg, webp, avif, jpeg2000).")
    codec_quality: tuple[int, int] = option(
        (20, 95), flag="--codec-quality", cli_default="20-95", from_cli=_quality_range,
        normalize=lambda q: (int(q[0]), int(q[1])), trajectory=True, rank=19,
        recipe=_value(lambda q: f"{q[0]}-{q[1]}", _codec), help="With --codec: qualities LOW-HIGH, drawn per patch.")
    codec_share: float = option(0.5, flag="--codec-share", cli_type=float, trajectory=True, rank=20,
                                recipe=_value(_g, _codec),
                                help="With --codec: the share of batches that go through the codec.")
    codec_joint: bool = option(
        False, flag="--codec-joint", cli_type=bool, cli_default=False, trajectory=True, rank=21, recipe=_switch(_codec),
        help="With --codec jpeg: train the downscaler through the codec too (a differentiable JPEG gives its gradient).")
    codec_rate: float = option(0.0, flag="--codec-rate", cli_type=float, trajectory=True, rank=22,
                               recipe=_value(_g, lambda c: bool(c.codec and c.codec_joint and c.codec_rate)),
                               help="With --codec-joint: weight of the bits-per-pixel proxy in the loss.")
    license: str = option("MIT", flag=None)
    command: str | None = option(None, flag=None)  # how to reproduce; None = rebuilt from this config


def _collect() -> tuple[Option, ...]:
    options = []
    for f in dataclasses.fields(TrainConfig):
        spec = dict(f.metadata["option"])
        if "cli_default" not in spec and not spec.get("required") and not spec.get("multiple"):
            spec["cli_default"] = f.default if f.default is not dataclasses.MISSING else None
        options.append(Option(name=f.name, **spec))
    return tuple(options)


OPTIONS: tuple[Option, ...] = _collect()
"""Every training option, in ``resizer train --help`` order."""

TRAJECTORY: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.trajectory)
"""Fields that change the trajectory: a resumed run must agree on them."""


def config_from_cli(params: dict[str, Any]) -> TrainConfig:
    """The ``TrainConfig`` of parsed ``resizer train`` parameters (keyed by :attr:`Option.param`)."""
    values = {}
    for o in OPTIONS:
        if o.flag is None or o.param not in params:
            continue
        value = params[o.param]
        values[o.name] = o.from_cli(value) if o.from_cli is not None else value
    return TrainConfig(**values)


def training_family(arch: str) -> "ModelFamily":
    """The family ``resizer train ARCH`` trains: a family name, or one architecture of a family.

    A family name trains the family as described (a pair trains both networks). An
    architecture name trains that network alone, as a single network of its family's colour;
    a downscaler is refused (it is trained with its upscaler, by the family name).
    """
    from ..models import get_architecture, get_family

    try:
        return get_family(arch)
    except UsageError:
        architecture = get_architecture(arch)  # "unknown architecture ..." when it is neither
    if architecture.task != "up":
        raise UsageError(f"architecture '{arch}' is a downscaler: train its pair by the family name "
                         f"('resizer train {architecture.family}')")
    family = get_family(architecture.family)
    kind = "single" if family.is_pair else family.kind
    return dataclasses.replace(family, kind=kind, architectures=(architecture.name,))


def _trains_a_pair(arch: str) -> bool:
    """Whether ``arch`` trains a down/up pair (an unknown name is not one; ``train`` says it is unknown)."""
    try:
        return training_family(arch).is_pair
    except UsageError:
        return False


def check_options(c: TrainConfig) -> None:
    """Refuse values no run can use (``UsageError``), before any work is done."""
    from ..devices import PRECISIONS

    if c.steps < 0:
        raise UsageError("--steps must be >= 0")
    if c.log_every < 1:
        raise UsageError("--log-every must be >= 1")
    if c.batch < 1:
        raise UsageError("--batch must be >= 1")
    if c.loss is not None and c.loss not in ("l1", "l2"):
        raise UsageError(f"unknown loss '{c.loss}' (use l1 or l2)")
    if c.schedule not in ("cosine", "step"):
        raise UsageError(f"unknown schedule '{c.schedule}' (use cosine or step)")
    if c.precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{c.precision}' (use auto, fp32, bf16 or fp16)")
    if not c.lr > 0:
        raise UsageError("--lr must be positive")
    if not c.data:
        raise UsageError("give at least one --data folder")
    _check_codec_options(c)
    for s in c.scales:
        if c.patch < math.ceil(s) * 4:
            raise UsageError(f"--patch {c.patch} is too small for scale x{fmt_scale(s)}")
    if c.export is not None and not c.export.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"--export name '{c.export}' may use letters, digits, '-', '_' and '.' only")


def _check_codec_options(c: TrainConfig) -> None:
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
