"""Known model names and how their files are fetched from the Hugging Face hub."""

from clamp3.hub.download import cached_path, fetch, fetch_all, resolve_model_dir, snapshot_dir
from clamp3.hub.registry import REGISTRY, ModelEntry, get_entry

__all__ = [
    "REGISTRY",
    "ModelEntry",
    "cached_path",
    "fetch",
    "fetch_all",
    "get_entry",
    "resolve_model_dir",
    "snapshot_dir",
]
