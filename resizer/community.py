"""Community model files and imported models as ``--method``s, run by resizer's own engine.

``community`` is a method provider beside :mod:`resizer.classical` and :mod:`resizer.learned`,
not a :class:`~resizer.models.ModelFamily`: a family describes networks resizer builds
from a config and trains (architectures, per-scale manifest entries, an objective), while
a community file carries its own architecture, which spandrel detects. So the file becomes
a network here, wrapped in the model contract (:class:`CommunityNet`), and goes through
the same :func:`resizer.learned.upscale_picture` and tiled engine as resizer's own models,
with their colour, alpha, 16-bit and metadata handling. The CLI and pipeline only look
method names up.

The tile overlap is the network's receptive field (:mod:`resizer.models.community`).

Imported models (``resizer models import FILE --name NAME``, :mod:`resizer.weights.user_manifest`)
are methods named NAME that run their file through the method that reads it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError, UsageError
from .methods import Method, ResizeRequest, RunOptions, get_method, register_method, register_method_source

if TYPE_CHECKING:
    from .image_io import Picture
    from .weights.user_manifest import ImportedModel

SCALE_TOLERANCE = 1e-6


class CommunityMethod(Method):
    """``--method community --weights FILE``: a model file of any architecture spandrel detects."""

    learned = True

    name = "community"
    directions = frozenset({"up"})
    summary = "a community model file (--weights FILE.pth|.ckpt|.safetensors, via spandrel)"

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        """The direction; with ``options``, a ``--weights`` file that loads and serves the scale."""
        super().validate(request, options)
        if options is None:
            return
        if not options.weights:
            raise UsageError("method 'community' runs a model file: pass --weights FILE (.pth, .ckpt or "
                             ".safetensors), or import it with 'resizer models import FILE'")
        from .devices import resolve_device, resolve_precision

        dtype = resolve_precision(options.precision, resolve_device(options.device))
        net = self.network(options)
        if not net.supports(dtype):
            raise UsageError(f"{options.weights}: {net.arch} models do not run in --precision {options.precision}; "
                             "use fp32")
        if request.scale > net.native_scale + SCALE_TOLERANCE:
            raise UsageError(f"{options.weights}: an x{net.native_scale} {net.arch} model enlarges up to "
                             f"x{net.native_scale}, not x{request.scale:g}")

    def network(self, options: RunOptions) -> Any:
        """The wrapped network of ``options.weights`` on ``options.device`` (cached by file)."""
        from .devices import resolve_device
        from .weights.community import load_descriptor
        from .weights.hub import resolve_user_weights

        path = resolve_user_weights(options.weights or "")
        from .models.community import CommunityNet

        return CommunityNet(load_descriptor(path, str(resolve_device(options.device))))

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

    learned = True

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
        super().validate(request, options)
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
