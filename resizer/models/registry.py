"""Architecture registry, in the spirit of timm: model modules register their builders.

Pretrained weights are paired with architectures by name through the manifest
(``resizer.weights``); this module knows only how to build a network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from torch import nn

from ..errors import UsageError

Task = Literal["up", "down"]


@dataclass(frozen=True)
class Architecture:
    """A buildable network: ``builder(**config)`` returns an ``nn.Module``."""

    name: str
    builder: Callable[..., nn.Module]
    family: str  # the ``--method`` name it serves, e.g. "srcnn"
    task: Task
    default_config: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def build(self, config: dict[str, Any] | None = None) -> nn.Module:
        return self.builder(**{**self.default_config, **(config or {})})


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, *, family: str, task: Task, summary: str = "", **default_config: Any):
    """Class/function decorator: ``@register_architecture("srcnn", family="srcnn", task="up")``."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture '{name}' is already registered")
        _ARCHITECTURES[name] = Architecture(name, builder, family, task, dict(default_config), summary)
        return builder

    return decorate


def get_architecture(name: str) -> Architecture:
    if name not in _ARCHITECTURES:
        raise UsageError(f"unknown architecture '{name}' (known: {', '.join(sorted(_ARCHITECTURES))})")
    return _ARCHITECTURES[name]


def list_architectures() -> list[Architecture]:
    return sorted(_ARCHITECTURES.values(), key=lambda a: a.name)


def create_model(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build ``arch`` with its default config updated by ``config`` (random weights)."""
    return get_architecture(arch).build(config)
