"""The registry of resizing methods behind ``--method``.

Every method, classical or learned, registers itself here under a name; the CLI and
the pipeline only ever look names up, so adding a method never touches them.
Provider modules are imported lazily: the classical methods load without torch.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

from .errors import UsageError

if TYPE_CHECKING:
    from .image_io import Picture

Direction = Literal["down", "up"]

# Modules that register methods when imported, cheapest first.
_PROVIDERS: list[str] = ["resizer.classical", "resizer.learned", "resizer.community"]
_loaded: set[str] = set()
_REGISTRY: dict[str, "Method"] = {}
# Sources of methods that come and go while a process runs (model files imported into the
# user's manifest): asked, each time, only for names no provider registered.
_DYNAMIC: list[Callable[[], dict[str, "Method"]]] = []


@dataclass(frozen=True)
class ResizeRequest:
    """What the user asked for: direction, exact output size and the scale factor (>= 1).

    ``scale`` is the factor the user gave (``--scale``) or the one implied by
    ``--width``/``--height``; learned methods use it to pick their model. ``paired_with``
    (``up`` of a paired thumbnail) is the downscaler its pairing metadata names
    (``resizer:model``), whose own partner restores it.
    """

    direction: Direction
    size: tuple[int, int]  # (width, height) of the output
    scale: float
    paired_with: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """How methods run: learned methods read the device, tile, precision and weights; the filters ``linear_light``."""

    device: str = "auto"
    tile: int | None = None  # None: the engine's default; 0: whole image
    precision: str = "auto"  # resizer.precision: auto picks per weights from the manifest's measurements
    weights: str | None = None  # a file path or hub reference overriding the bundled weights
    linear_light: bool = False  # resample colour in linear light (``--linear``; the classical filters only)
    # Filters: reduce by whole blocks first, down to this many times the output size (Pillow's reducing_gap)
    reducing_gap: float | None = None
    # Who the result is for: "view" (down/up, the API: a pair's thumbnails are seen, so encode-only
    # pairs are refused) or "encode" (``resizer encode``: encode-only pairs first). See WeightsEntry.use.
    use: str = "view"
    # decode's restoration ensemble (passes of dejpeg; None: ``resizer.restoration.DECODE_ENSEMBLE``)
    restore_passes: int | None = None
    # Called with (tiles done, tiles in total) as a learned method's network runs (the per-image bar).
    progress: Callable[[int, int], None] | None = field(default=None, compare=False, repr=False)


class Method(ABC):
    """A named way of resizing a picture."""

    name: str
    directions: frozenset[str] = frozenset({"down", "up"})
    summary: str = ""
    # True when resizing several files at once in threads is faster (Pillow releases the GIL);
    # learned methods already use every core for one image.
    concurrent_files: bool = False
    # True when each frame of an animation can be resized on its own (:mod:`resizer.animation`)
    animations: bool = False
    # True when ``RunOptions.linear_light`` is honoured (Pillow's filters); others refuse it
    linear_light: bool = False
    # True for networks: ``up`` restores their JPEG inputs first by default (classical filters only when asked)
    learned: bool = False

    def default_jobs(self) -> int:
        """Files at once when ``--jobs`` is not given: every core if ``concurrent_files``, else one."""
        import os

        return os.cpu_count() or 1 if self.concurrent_files else 1

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        """Raise ``UsageError`` (or ``ModelError``) if this method cannot serve ``request``.

        Called before any file is read, so a wrong direction, scale or missing weights
        fails once, up front, instead of once per file.
        """
        if request.direction not in self.directions:
            raise UsageError(f"method '{self.name}' cannot scale {request.direction}")
        check_linear_light(self, options)

    def run_settings(self, request: ResizeRequest, options: RunOptions) -> tuple[str, str | None]:
        """``(device, precision)`` a request runs with (``--json`` reports them); classical: CPU, no precision."""
        return "cpu", None

    @abstractmethod
    def resize(self, picture: "Picture", request: ResizeRequest, options: RunOptions) -> "Picture":
        """Return a new picture of ``request.size``; metadata is carried over."""


def check_linear_light(method: Method, options: RunOptions | None) -> None:
    """``UsageError`` if linear light is asked of a method that would ignore it (learned ones learned sRGB values)."""
    if options is not None and options.linear_light and not method.linear_light:
        raise UsageError(f"--linear works with the classical filters (nearest, bilinear, bicubic, lanczos, box), "
                         f"not method '{method.name}'")


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (a name may be registered once)."""
    if method.name in _REGISTRY and _REGISTRY[method.name] is not method:
        raise ValueError(f"method '{method.name}' is already registered")
    _REGISTRY[method.name] = method
    return method


def register_method_source(source: Callable[[], dict[str, "Method"]]) -> None:
    """Add a source of methods read afresh at every lookup (the registered names take precedence)."""
    if source not in _DYNAMIC:
        _DYNAMIC.append(source)


def _dynamic_methods() -> dict[str, "Method"]:
    found: dict[str, Method] = {}
    for source in _DYNAMIC:
        for name, method in source().items():
            if name not in _REGISTRY:
                found.setdefault(name, method)
    return found


def _load(wanted: str | None = None) -> None:
    """Import provider modules in order until ``wanted`` is registered (all of them for ``None``)."""
    for module in _PROVIDERS:
        if wanted is not None and wanted in _REGISTRY:
            return
        if module not in _loaded:
            importlib.import_module(module)
            _loaded.add(module)


def get_method(name: str) -> Method:
    """Look a method up by name, importing provider modules only as far as needed."""
    key = name.strip().lower()
    if key not in _REGISTRY:
        _load(key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    dynamic = _dynamic_methods()
    if key not in dynamic:
        known = ", ".join(sorted({*_REGISTRY, *dynamic}))
        raise UsageError(f"unknown method '{name}' (available: {known})")
    return dynamic[key]


def list_methods(direction: Direction | None = None) -> list[Method]:
    """All registered methods, optionally only those that scale in ``direction``."""
    _load()
    methods = sorted([*_REGISTRY.values(), *_dynamic_methods().values()], key=lambda m: m.name)
    return [m for m in methods if direction is None or direction in m.directions]
