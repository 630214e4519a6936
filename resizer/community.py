"""Community model files and imported models as ``--method``s, run by resizer's own engine.

``community`` is a method provider beside :mod:`resizer.classical` and :mod:`resizer.learned`,
not a :class:`~resizer.models.ModelFamily`: a family describes networks resizer builds
from a config and trains (architectures, per-scale manifest entries, an objective), while
a community file carries its own architecture, which spandrel detects. So the file becomes
a network here, wrapped in the model contract (:class:`CommunityNet`), and goes through
the same :func:`resizer.learned.upscale_picture` and tiled engine as resizer's own models,
with their colour, alpha, 16-bit and metadata handling. The CLI and pipeline only look
method names up.

Tile overlap (``halo``, in input pixels) comes from the network's structure: the sum of
every convolution's radius plus one window per windowed-attention block, an upper bound
of the receptive field, so tiles equal the whole image. When that bound passes the
architecture's default (``DEFAULT_HALO``: 32 for convolutional networks, 64 for
windowed transformers), the default is used and tiles are close but not exact;
networks with global pooling or global attention (HAT, RCAN, ...) are never exact when
tiled. ``--tile 0`` runs the whole image. Tiles start on multiples of the network's
window and padding multiple, so its own padding is the whole image's.

Imported models (``resizer models import FILE --name NAME``, :mod:`resizer.weights.user_manifest`)
are methods named NAME that run their file through the method that reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError, UsageError
from .methods import Method, ResizeRequest, RunOptions, get_method, register_method, register_method_source

if TYPE_CHECKING:
    from .image_io import Picture
    from .weights.user_manifest import ImportedModel

DEFAULT_HALO_CONV = 32
DEFAULT_HALO_WINDOWED = 64
DEFAULT_HALO: dict[str, int] = {}  # per spandrel architecture id, where one differs from the two above
SCALE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Receptive:
    """A network's tile overlap: ``halo`` input pixels, ``exact`` if it bounds the receptive field."""

    halo: int
    exact: bool
    multiple: int  # tiles start on multiples of this (windows, padding)
    bound: int  # the structural bound (sum of radii), whatever the default


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (int(value), int(value))


def receptive_field(descriptor: Any) -> Receptive:
    """The overlap tiles of ``descriptor``'s network need (see the module docstring)."""
    from torch import nn

    radius, windows, global_context = 2, [], False  # 2: an interpolation inside forward
    for module in descriptor.model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel, dilation = _pair(module.kernel_size), _pair(getattr(module, "dilation", 1))
            radius += max(d * (k - 1) - (d * (k - 1)) // 2 for k, d in zip(kernel, dilation))
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            global_context = True
        window = getattr(module, "window_size", None)
        if isinstance(window, (int, tuple, list)) and not isinstance(window, bool):
            windows.append(max(_pair(window)))
            radius += max(_pair(window))
        elif "attention" in type(module).__name__.lower():
            global_context = True
    arch = descriptor.architecture.id
    default = DEFAULT_HALO.get(arch, DEFAULT_HALO_WINDOWED if windows else DEFAULT_HALO_CONV)
    multiple = math.lcm(int(descriptor.size_requirements.multiple_of), *windows) if windows else \
        int(descriptor.size_requirements.multiple_of)
    exact = not global_context and radius <= default
    return Receptive(radius if exact else default, exact, max(1, multiple), radius)


def _model_base():
    from .models.base import ResamplingModel

    return ResamplingModel


def community_net(descriptor: Any) -> Any:
    """``descriptor`` (spandrel's) wrapped in resizer's model contract, for the engine."""

    class CommunityNet(_model_base()):
        """A spandrel network at its own scale: RGB (or grey as luma), with its receptive field as halo."""

        def __init__(self) -> None:
            super().__init__()
            self.net = descriptor.model  # a submodule: ``.to(device)`` moves it
            self.descriptor = descriptor
            self.arch = descriptor.architecture.id
            self.native_scale = int(descriptor.scale)
            self.color = "y" if descriptor.input_channels == 1 else "rgb"
            field = receptive_field(descriptor)
            self.halo, self.exact_tiles, self.tile_multiple = field.halo, field.exact, field.multiple
            self.concurrent_tiles = False  # some (SPAN) re-fuse their weights inside forward

        def supports_scale(self, scale: float) -> bool:
            return abs(scale - self.native_scale) <= SCALE_TOLERANCE

        def forward(self, x, scale: float):  # noqa: ANN001 - torch tensors
            return self.descriptor(x)  # pads to the network's size multiple and crops back

    return CommunityNet()


class CommunityMethod(Method):
    """``--method community --weights FILE``: a model file of any architecture spandrel detects."""

    name = "community"
    directions = frozenset({"up"})
    summary = "a community model file (--weights FILE.pth|.ckpt|.safetensors, via spandrel)"

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        """The direction; with ``options``, a ``--weights`` file that loads and serves the scale."""
        super().validate(request)
        if options is None:
            return
        if not options.weights:
            raise UsageError("method 'community' runs a model file: pass --weights FILE (.pth, .ckpt or "
                             ".safetensors), or import it with 'resizer models import FILE'")
        from .devices import resolve_device, resolve_precision

        resolve_precision(options.precision, resolve_device(options.device))
        net = self.network(options)
        if request.scale > net.native_scale + SCALE_TOLERANCE:
            raise UsageError(f"{options.weights}: an x{net.native_scale} {net.arch} model enlarges up to "
                             f"x{net.native_scale}, not x{request.scale:g}")

    def network(self, options: RunOptions) -> Any:
        """The wrapped network of ``options.weights`` on ``options.device`` (cached by file)."""
        from .devices import resolve_device
        from .weights.community import load_descriptor
        from .weights.hub import resolve_user_weights

        path = resolve_user_weights(options.weights or "")
        return community_net(load_descriptor(path, str(resolve_device(options.device))))

    def resize(self, picture: "Picture", request: ResizeRequest, options: RunOptions) -> "Picture":
        """Run the network at its own scale; a smaller request is brought to its size by MATLAB bicubic."""
        from .devices import resolve_device
        from .learned import upscale_picture

        self.validate(request, options)
        net = self.network(options)
        width, height = request.size
        return upscale_picture(net, picture, (height, width), net.native_scale, tile=options.tile,
                               device=resolve_device(options.device), precision=options.precision)


class ImportedMethod(Method):
    """An imported model file as a method of its own name; the method that reads the file runs it."""

    def __init__(self, model: "ImportedModel") -> None:
        self.model = model
        self.name = model.name
        self.directions = frozenset({model.task})
        self.summary = f"imported {model.arch} {model.scale_label} ({model.path})"

    def _options(self, options: RunOptions | None) -> RunOptions:
        options = options or RunOptions()
        if options.weights and Path(options.weights).expanduser().resolve() != Path(self.model.path):
            raise UsageError(f"method '{self.name}' is the imported file {self.model.path}; drop --weights")
        return replace(options, weights=self.model.path)

    def _check_file(self) -> None:
        from .weights.safetensors_io import cached_sha256

        path = Path(self.model.path)
        if not path.exists():
            raise ModelError(f"{path}: the file imported as '{self.name}' is gone "
                             f"(remove it with 'resizer models remove {self.name}')")
        if cached_sha256(path) != self.model.sha256:
            raise ModelError(f"{path}: changed since it was imported as '{self.name}' (sha256 differs); "
                             f"import it again with 'resizer models import {path} --name {self.name}'")

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        super().validate(request)
        if options is not None:
            self._check_file()
            get_method(self.model.method).validate(request, self._options(options))

    def resize(self, picture: "Picture", request: ResizeRequest, options: RunOptions) -> "Picture":
        self._check_file()
        return get_method(self.model.method).resize(picture, request, self._options(options))


def imported_methods() -> dict[str, Method]:
    """One method per imported model (none when the user manifest is unreadable: ``models list`` says why)."""
    from .weights.user_manifest import read_user_models

    try:
        return {m.name: ImportedMethod(m) for m in read_user_models()}
    except ModelError:
        return {}


register_method(CommunityMethod())
register_method_source(imported_methods)
