"""The architecture registry: registration, lookups and config handling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resizer.errors import ModelError, UsageError
from resizer.models import create_model, get_architecture, list_architectures, register_architecture


@register_architecture("test-registry-net", family="test-registry", task="up", summary="two convs", channels=4)
class RegistryNet(nn.Module):
    color = "rgb"
    halo = 2

    def __init__(self, channels: int = 4, kernel: int = 3) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, channels, kernel, padding=kernel // 2)
        self.tail = nn.Conv2d(channels, 3, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        return x + self.tail(torch.relu(self.head(x)))


def test_registered_architecture_is_found_and_listed() -> None:
    arch = get_architecture("test-registry-net")
    assert arch.builder is RegistryNet
    assert (arch.family, arch.task, arch.summary) == ("test-registry", "up", "two convs")
    assert arch.default_config == {"channels": 4}
    assert "test-registry-net" in [a.name for a in list_architectures()]
    assert [a.name for a in list_architectures(family="test-registry")] == ["test-registry-fn", "test-registry-net"]


def test_duplicate_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_architecture("test-registry-net", family="other", task="down")
        def _again() -> nn.Module:  # pragma: no cover - never built
            return nn.Identity()

    assert get_architecture("test-registry-net").builder is RegistryNet  # the first one stays


def test_bad_task_is_refused() -> None:
    with pytest.raises(ValueError, match="task"):
        register_architecture("test-registry-sideways", family="x", task="sideways")  # type: ignore[arg-type]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        get_architecture("no-such-net")
    message = str(info.value)
    assert "no-such-net" in message and "test-registry-net" in message


def test_create_model_applies_defaults_then_config() -> None:
    default = create_model("test-registry-net")
    assert default.head.weight.shape == (4, 3, 3, 3)
    wider = create_model("test-registry-net", {"channels": 8, "kernel": 5})
    assert wider.head.weight.shape == (8, 3, 5, 5)
    assert wider.tail.weight.shape == (3, 8, 5, 5)
    out = wider(torch.rand(1, 3, 6, 7), 2)
    assert out.shape == (1, 3, 12, 14)


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(ModelError) as info:
        create_model("test-registry-net", {"chanels": 8})
    message = str(info.value)
    assert "'chanels'" in message and "channels" in message and "test-registry-net" in message


@register_architecture("test-registry-fn", family="test-registry", task="down", width=2)
def build_fn(width: int, **extra: object) -> nn.Module:
    return nn.Conv2d(3, width, 1)


def test_function_builders_and_var_kwargs_work() -> None:
    assert create_model("test-registry-fn", {"whatever": 1}).weight.shape == (2, 3, 1, 1)
    assert get_architecture("test-registry-fn").task == "down"
