"""Known model names and how their files are fetched from the Hugging Face hub."""

from clamp3.hub.download import cached_path, fetch, fetch_all, snapshot_dir
from clamp3.hub.registry import REGISTRY, ModelEntry, get_entry

__all__ = ["REGISTRY", "ModelEntry", "cached_path", "fetch", "fetch_all", "get_entry", "snapshot_dir"]
