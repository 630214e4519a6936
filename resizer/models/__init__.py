"""Model definitions; importing this package registers every architecture."""

from . import asdn, srcnn, vdsr  # noqa: F401  (register architectures)
from .base import BicubicRefiner, ResamplingModel, ResamplingPair
from .registry import (Architecture, ModelFamily, create_model, get_architecture, get_family, list_architectures,
                       list_families, pair_architectures, register_architecture, register_family)

__all__ = [
    "Architecture", "BicubicRefiner", "ResamplingModel", "ResamplingPair", "create_model", "get_architecture",
    "list_architectures", "pair_architectures", "register_architecture", "ModelFamily", "get_family", "list_families",
    "register_family",
]
