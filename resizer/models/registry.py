"""Architecture and family registry, in the spirit of timm: model modules register themselves.

An :class:`Architecture` is one buildable network. A :class:`ModelFamily` is what a
``--method`` name stands for: its kind (one network, a down/up pair, one network for any
scale), its architectures, the colour its networks see, the scales it is trained per,
its capabilities and its training objective. The method adapter, the weights loader,
training, evaluation, the benchmark and the CLI read the family instead of probing
networks. Pretrained weights are paired with architectures by name through the manifest.

Model modules (``resizer/models/*.py``) register themselves when imported. A lookup
that misses imports every module of this package first, so a new architecture file
is found without editing a list anywhere.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..errors import ModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

Task = Literal["up", "down"]
TASKS: tuple[str, ...] = ("up", "down")
FamilyKind = Literal["single", "pair", "any-scale"]
FAMILY_KINDS: tuple[str, ...] = ("single", "pair", "any-scale")


@dataclass(frozen=True)
class Architecture:
    """A buildable network: ``builder(**config)`` returns an ``nn.Module``."""

    name: str
    builder: Callable[..., "nn.Module"]
    family: str  # the ``--method`` name it serves, e.g. "srcnn"
    task: Task
    default_config: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def build(self, config: dict[str, Any] | None = None) -> "nn.Module":
        """Build with the default config updated by ``config``; unknown keys are refused."""
        merged = {**self.default_config, **(config or {})}
        unknown = sorted(set(merged) - set(self.default_config) - self._accepted_keys())
        if unknown and not self._takes_var_kwargs():
            accepted = sorted(set(self.default_config) | self._accepted_keys())
            raise ModelError(
                f"architecture '{self.name}' does not take config key(s) {', '.join(map(repr, unknown))} "
                f"(it takes: {', '.join(accepted) or 'nothing'})"
            )
        return self.builder(**merged)

    def _parameters(self) -> list[inspect.Parameter]:
        try:
            return list(inspect.signature(self.builder).parameters.values())
        except (TypeError, ValueError):  # builtins or odd callables: don't second-guess them
            return []

    def _accepted_keys(self) -> set[str]:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {p.name for p in self._parameters() if p.kind in kinds}

    def _takes_var_kwargs(self) -> bool:
        params = self._parameters()
        return not params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@dataclass(frozen=True)
class ModelFamily:
    """One family of networks behind a ``--method`` name, described once beside its networks.

    ``architectures`` names the networks: ``(down, up)`` for a pair, ``(up,)`` otherwise.
    ``scales`` are the factors its shipped weights are trained per (``()`` for any-scale
    families, whose one file serves every scale). ``per_scale_config``: each network is
    built for one scale (its config carries ``"scale"``). ``draws_kernels``: its upscaler
    can picture the per-pixel kernels it predicts (``kernel_image``). ``restores``: the
    codec whose artefacts the family removes at scale 1 (``"jpeg"``; ``None`` for resamplers).
    """

    name: str
    kind: FamilyKind
    architectures: tuple[str, ...]
    color: Literal["y", "rgb"]
    scales: tuple[float, ...] = ()
    summary: str = ""
    per_scale_config: bool = False
    draws_kernels: bool = False
    restores: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAMILY_KINDS:
            raise ValueError(f"family '{self.name}': kind must be one of {FAMILY_KINDS}, not {self.kind!r}")
        if len(self.architectures) != (2 if self.kind == "pair" else 1):
            raise ValueError(f"family '{self.name}': a {self.kind} family names "
                             f"{'(down, up)' if self.kind == 'pair' else 'one'} architecture(s)")

    @property
    def is_pair(self) -> bool:
        """A downscaler and the upscaler trained with it (CAR, DSN)."""
        return self.kind == "pair"

    @property
    def any_scale(self) -> bool:
        """One network takes every real scale as an input (ASDN)."""
        return self.kind == "any-scale"

    @property
    def directions(self) -> frozenset[str]:
        """The ``resizer`` directions the family serves: pairs both, the others ``up``."""
        return frozenset({"down", "up"}) if self.is_pair else frozenset({"up"})

    @property
    def objective(self) -> Literal["pixel", "joint", "restore"]:
        """What training minimises: a pixel loss of the upscale, the pair's joint round-trip loss, or
        (a restoration family) a pixel loss of the network on codec-decoded patches."""
        if self.restores:
            return "restore"
        return "joint" if self.is_pair else "pixel"

    def architecture(self, task: Task = "up") -> Architecture:
        """The family's ``task`` network (``down`` only for pairs)."""
        if task == "down" and not self.is_pair:
            raise UsageError(f"method '{self.name}' has no downscaler")
        return get_architecture(self.architectures[0 if task == "down" else -1])


_ARCHITECTURES: dict[str, Architecture] = {}
_FAMILIES: dict[str, ModelFamily] = {}
_discovered = False


def register_architecture(name: str, *, family: str, task: Task, summary: str = "", **default_config: Any):
    """Class/function decorator: ``@register_architecture("srcnn", family="srcnn", task="up")``.

    ``default_config`` is the keyword arguments the builder gets unless a manifest entry
    (or the caller of ``create_model``) overrides them.
    """
    if task not in TASKS:
        raise ValueError(f"architecture '{name}': task must be one of {TASKS}, not {task!r}")

    def decorate(builder: Callable[..., "nn.Module"]) -> Callable[..., "nn.Module"]:
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture '{name}' is already registered")
        doc = summary or (inspect.getdoc(builder) or "").split("\n", 1)[0]
        _ARCHITECTURES[name] = Architecture(name, builder, family, task, dict(default_config), doc)
        return builder

    return decorate


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` (a name may be registered once); model modules call it beside their networks."""
    if family.name in _FAMILIES and _FAMILIES[family.name] != family:
        raise ValueError(f"family '{family.name}' is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove family ``name`` and its architectures (a test's toy family must not outlive the test)."""
    key = name.strip().lower()
    _FAMILIES.pop(key, None)
    for arch in [a.name for a in _ARCHITECTURES.values() if a.family == key]:
        del _ARCHITECTURES[arch]


def get_family(name: str) -> ModelFamily:
    """The family registered as ``name`` (case-insensitive); ``UsageError`` listing the known ones otherwise."""
    return _lookup(_FAMILIES, name.strip().lower(), name, "model family")


def list_families() -> list[ModelFamily]:
    """Every registered family, sorted by name."""
    discover_architectures()
    return sorted(_FAMILIES.values(), key=lambda f: f.name)


def discover_architectures() -> None:
    """Import every module of ``resizer.models`` once, so that they all register."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__package__}.{info.name}")
    _discovered = True


def get_architecture(name: str) -> Architecture:
    """The architecture registered as ``name``; ``UsageError`` listing the known ones otherwise."""
    return _lookup(_ARCHITECTURES, name, name, "architecture")


def _lookup(table: dict[str, Any], key: str, asked: str, kind: str) -> Any:
    """``table[key]``, importing every model module first on a miss; ``UsageError`` naming the known ones."""
    if key not in table:
        discover_architectures()
    if key not in table:
        known = ", ".join(sorted(table)) or "none"
        raise UsageError(f"unknown {kind} '{asked}' (known: {known})")
    return table[key]


def list_architectures(family: str | None = None) -> list[Architecture]:
    """Every registered architecture (optionally of one family), sorted by name."""
    discover_architectures()
    archs = sorted(_ARCHITECTURES.values(), key=lambda a: a.name)
    return [a for a in archs if family is None or a.family == family]


def create_model(arch: str, config: dict[str, Any] | None = None) -> "nn.Module":
    """Build ``arch`` with its default config updated by ``config`` (random weights)."""
    return get_architecture(arch).build(config)
