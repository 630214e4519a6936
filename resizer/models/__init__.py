"""Model definitions; importing this package registers every architecture."""

from . import srcnn, vdsr  # noqa: F401  (register architectures)
from .base import BicubicRefiner, ResamplingModel
from .registry import Architecture, create_model, get_architecture, list_architectures, register_architecture

__all__ = [
    "Architecture", "BicubicRefiner", "ResamplingModel", "create_model", "get_architecture",
    "list_architectures", "register_architecture",
]
