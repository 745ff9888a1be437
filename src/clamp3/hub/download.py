"""Fetching registry files through ``huggingface_hub`` into its standard cache.

``huggingface_hub`` honours ``HF_HUB_OFFLINE`` / ``HF_HOME`` / ``HF_HUB_CACHE`` and resumes
interrupted downloads from their ``.incomplete`` blobs; this module only adds clear errors.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from clamp3.errors import ModelNotAvailableError
from clamp3.hub.registry import ModelEntry


def cached_path(entry: ModelEntry, filename: str) -> Path | None:
    """The file's path in the local hub cache, or ``None`` when it has not been downloaded."""
    found = try_to_load_from_cache(entry.repo, filename, revision=entry.revision)
    return Path(found) if isinstance(found, str) else None


def fetch(entry: ModelEntry, filename: str) -> Path:
    """The local path of one file of ``entry``, downloading it if needed (and allowed)."""
    try:
        return Path(hf_hub_download(entry.repo, filename, revision=entry.revision))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotAvailableError(
            f"{filename} of {entry.repo} ({entry.name}) is not in the local model cache and could not be "
            f"downloaded ({reason}); fetch it with `clamp3 models pull {entry.name}` on a machine with "
            "network access"
        ) from exc


def fetch_all(entry: ModelEntry) -> list[Path]:
    return [fetch(entry, filename) for filename in entry.files]


def snapshot_dir(entry: ModelEntry) -> Path:
    """The cache folder holding all of ``entry``'s files (fetched if needed), for ``from_pretrained``."""
    paths = fetch_all(entry)
    return paths[0].parent
