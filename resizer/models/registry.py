"""Architecture registry, in the spirit of timm: model modules register their builders.

Pretrained weights are paired with architectures by name through the manifest
(``resizer.weights``); this module knows only how to build a network.

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


_ARCHITECTURES: dict[str, Architecture] = {}
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
    if name not in _ARCHITECTURES:
        discover_architectures()
    if name not in _ARCHITECTURES:
        known = ", ".join(sorted(_ARCHITECTURES)) or "none"
        raise UsageError(f"unknown architecture '{name}' (known: {known})")
    return _ARCHITECTURES[name]


def list_architectures(family: str | None = None) -> list[Architecture]:
    """Every registered architecture (optionally of one family), sorted by name."""
    discover_architectures()
    archs = sorted(_ARCHITECTURES.values(), key=lambda a: a.name)
    return [a for a in archs if family is None or a.family == family]


def create_model(arch: str, config: dict[str, Any] | None = None) -> "nn.Module":
    """Build ``arch`` with its default config updated by ``config`` (random weights)."""
    return get_architecture(arch).build(config)


def pair_architectures(family: str) -> tuple[Architecture, Architecture] | None:
    """``(down, up)`` of a family trained as a pair (e.g. ``car``), else ``None``."""
    archs = list_architectures(family.strip().lower())
    downs = [a for a in archs if a.task == "down"]
    ups = [a for a in archs if a.task == "up"]
    if len(downs) == 1 and len(ups) == 1:
        return downs[0], ups[0]
    return None
