"""Pretrained weights: the manifest, safetensors files, the Hugging Face hub, and ``load``.

Every weight file resizer knows is listed in one manifest (the top-level ``weights/``
folder of the source tree, installed as the data package ``resizer.bundled_weights``).
An entry pairs a file with the architecture and config that read it, the scales it
serves, its sha256 and how it was trained. Files are shipped ("bundled") or downloaded
on first use into the Hugging Face cache ("hub"); both are checked against the sha256.

- :mod:`.manifest`: the entry schema, reading and updating the manifest, choosing an entry;
- :mod:`.safetensors_io`: writing and reading weight files (never unpickling);
- :mod:`.hub`: bundled, cached or downloaded files, ``hf://`` references, offline mode;
- :mod:`.loader`: ``load(family, scale, weights=...)`` and the model cache.

Environment: ``RESIZER_MANIFEST`` (use this manifest instead of the bundled one; its
"bundled" files live next to it), ``RESIZER_HUB_REPO`` (hub repo of entries that name
none), and huggingface_hub's own ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``.
Importing this package does not import torch or huggingface_hub; listing the manifest stays fast.
"""

from .hub import PullResult, model_location, parse_hub_reference, pull_weights, resolve_user_weights, resolve_weights_file
from .loader import LoadedModel, clear_model_cache, load
from .manifest import (DEFAULT_HUB_REPO, USES, WeightsEntry, bundled_dir, choose_entry, find_entry, get_entry, hub_repo,
                       manifest_override, manifest_path, read_manifest, upsert_manifest_entry, validate_manifest)
from .safetensors_io import count_parameters, load_weights_into, read_safetensors_metadata, save_weights, sha256_file

__all__ = [
    "DEFAULT_HUB_REPO", "USES", "LoadedModel", "PullResult", "WeightsEntry", "bundled_dir", "choose_entry",
    "clear_model_cache",
    "count_parameters", "find_entry", "get_entry", "hub_repo", "load", "load_weights_into", "manifest_override",
    "manifest_path", "model_location", "parse_hub_reference", "pull_weights", "read_manifest",
    "read_safetensors_metadata", "resolve_user_weights", "resolve_weights_file", "save_weights", "sha256_file",
    "upsert_manifest_entry", "validate_manifest",
]
