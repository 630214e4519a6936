"""Model definitions; importing this package registers every architecture."""

from . import asdn, srcnn, vdsr  # noqa: F401  (register architectures)
from .base import BicubicRefiner, ResamplingModel, ResamplingPair
from .registry import (Architecture, create_model, get_architecture, list_architectures, pair_architectures,
                       register_architecture)

__all__ = [
    "Architecture", "BicubicRefiner", "ResamplingModel", "ResamplingPair", "create_model", "get_architecture",
    "list_architectures", "pair_architectures", "register_architecture",
]
