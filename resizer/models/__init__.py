"""Model definitions; importing this package registers every architecture."""

from .registry import Architecture, create_model, get_architecture, list_architectures, register_architecture

__all__ = ["Architecture", "create_model", "get_architecture", "list_architectures", "register_architecture"]
