"""Community model files (ESRGAN, SwinIR, HAT, SPAN, ...) read through ``spandrel``.

This module owns turning a ``.pth``, ``.ckpt`` or ``.safetensors`` file of an architecture
spandrel detects into a network: the optional ``community`` extra (one line naming it when
it is missing), safe reading (pickles only through spandrel's restricted unpickler, which
allows tensors and a few containers and refuses every other global, so a file that tries
to run code is refused before anything of it runs), and one-line errors for files of an
unknown architecture or of a purpose resizer does not serve (denoisers, face restoration,
inpainting). Networks are cached per file and device like the loader's.
"""

from __future__ import annotations

import enum
import functools
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from .safetensors_io import first_line, read_header

COMMUNITY_SUFFIXES = (".pth", ".ckpt", ".safetensors")
EXTRA_HINT = 'pip install "resizer[community]"'


def _stub_torchvision() -> None:
    """Stand in for a torchvision that cannot be imported, so that ``import spandrel`` works.

    spandrel imports ``torchvision.transforms.functional`` for two architectures that are
    no super-resolution (LaMa inpainting, RestoreFormer faces). The PyPI torchvision wheel
    is built against CUDA torch and fails to import beside the CPU build of torch that
    resizer pins; super-resolution architectures never call it. Only when the real module
    cannot be imported is this stub installed, and calling it says what is missing.
    """
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ModelError("this architecture needs a torchvision that matches the installed torch")

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = functional.normalize = unavailable  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    root = types.ModuleType("torchvision")
    root.transforms = transforms  # type: ignore[attr-defined]
    root.__resizer_stub__ = True  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": root, "torchvision.transforms": transforms,
                        "torchvision.transforms.functional": functional})


@functools.lru_cache(maxsize=1)
def spandrel_module() -> types.ModuleType:
    """``spandrel``, or a ``UsageError`` naming the extra that installs it."""
    try:
        import torchvision  # noqa: F401
    except ModuleNotFoundError:
        pass  # spandrel's own import says whether it is installed at all
    except Exception:  # noqa: BLE001 - a wheel for another torch build raises RuntimeError
        _stub_torchvision()
    try:
        import spandrel
    except ModuleNotFoundError as exc:
        if exc.name == "torchvision":
            _stub_torchvision()
            import spandrel
        else:
            raise UsageError(f"community model files need spandrel: {EXTRA_HINT}") from None
    return spandrel


@dataclass(frozen=True)
class CommunityFile:
    """What spandrel found in a file: its architecture, scale and channels (a descriptor's facts)."""

    path: Path
    arch: str  # spandrel's architecture id, e.g. "ESRGAN", "SwinIR", "SPAN"
    scale: int
    input_channels: int
    output_channels: int
    params: int


def _state_dict(path: Path) -> dict[str, Any]:
    """The file's tensors: safetensors checked first; pickles only through spandrel's restricted unpickler."""
    spandrel = spandrel_module()
    suffix = path.suffix.lower()
    if suffix not in COMMUNITY_SUFFIXES:
        raise UsageError(f"{path}: community model files end in {', '.join(COMMUNITY_SUFFIXES)}, not '{suffix}'")
    if suffix == ".safetensors":
        read_header(path)  # truncated, garbage or pickled files are refused here, without torch
    loader = spandrel.ModelLoader(device="cpu")
    try:
        return loader.load_state_dict_from_file(path)  # .pth/.ckpt: torch.load(pickle_module=RestrictedUnpickle)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{path}: refused: the pickle asks for something other than tensors ({first_line(exc)}); "
                         "a weights file never needs that, and this one may try to run code") from None
    except FileNotFoundError:
        raise ModelError(f"{path}: no such weights file") from None
    except (OSError, RuntimeError, EOFError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: cannot read the weights ({first_line(exc)})") from None


def _describe(path: Path, state_dict: dict[str, Any]) -> Any:
    """spandrel's ``ImageModelDescriptor`` of a state dict; one-line errors for what resizer cannot run."""
    spandrel = spandrel_module()
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        raise ModelError(f"{path}: unknown architecture: spandrel {spandrel.__version__} does not recognise "
                         "these tensors (see 'resizer models list' for the supported files)") from None
    except Exception as exc:  # noqa: BLE001 - an architecture's own loader failing on odd tensors
        raise ModelError(f"{path}: cannot build the network spandrel detected ({first_line(exc)})") from None
    arch = descriptor.architecture.id
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise ModelError(f"{path}: a {arch} {descriptor.purpose} model, not a super-resolution model; "
                         "resizer runs upscalers only")
    if descriptor.input_channels not in (1, 3) or descriptor.output_channels != descriptor.input_channels:
        raise ModelError(f"{path}: a {arch} model from {descriptor.input_channels} to {descriptor.output_channels} "
                         "channels; resizer runs grey (1) or RGB (3) models")
    return descriptor


def inspect_file(path: str | Path) -> CommunityFile:
    """Detect the architecture of a community file (the CPU network stays in the cache)."""
    path = Path(path)
    descriptor = load_descriptor(path, "cpu")  # the CPU run that usually follows reuses it
    params = sum(p.numel() for p in descriptor.model.parameters())
    return CommunityFile(path, descriptor.architecture.id, int(descriptor.scale), int(descriptor.input_channels),
                         int(descriptor.output_channels), params)


@functools.lru_cache(maxsize=4)
def _cached_descriptor(path: str, stamp: tuple[int, int], device: str) -> Any:
    descriptor = _describe(Path(path), _state_dict(Path(path)))
    return descriptor.to(device).eval()


def load_descriptor(path: str | Path, device: str = "cpu") -> Any:
    """The spandrel descriptor of ``path`` on ``device`` (cached; a file changed on disk is read afresh)."""
    path = Path(path).expanduser()
    try:
        stat = path.resolve().stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such weights file") from None
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not a weights file")
    return _cached_descriptor(str(path.resolve()), (stat.st_size, stat.st_mtime_ns), device)


def clear_community_cache() -> None:
    """Forget the cached community networks (tests, or to free memory)."""
    _cached_descriptor.cache_clear()
