"""The networks behind the learned ``--method``s and the registry that describes them.

Each model module (``srcnn``, ``vdsr``, ``asdn``, ``dair``, ``car``, ``dsn``) registers its
architectures and its :class:`ModelFamily` beside the networks; ``base`` holds the contract
every network keeps, ``blocks`` the layers several families share, ``reference`` the
benchmark's yardsticks (never methods). A registry lookup imports every model module
first (``registry.discover_architectures``), so a new model file needs no list here.
"""

from . import asdn, srcnn, vdsr  # noqa: F401  (register architectures)
from .base import BicubicRefiner, ResamplingModel, ResamplingPair
from .registry import (Architecture, ModelFamily, create_model, get_architecture, get_family, list_architectures,
                       list_families, register_architecture, register_family, unregister_family)

__all__ = [
    "Architecture", "BicubicRefiner", "ResamplingModel", "ResamplingPair", "create_model", "get_architecture",
    "list_architectures", "register_architecture", "ModelFamily", "get_family", "list_families",
    "register_family", "unregister_family",
]
