"""Which model a name stands for, without loading it: name, weights fingerprint and vector dimension.

A library records this when it is created, so that its vectors are never mixed with another model's.
The fingerprint is the one a loaded model reports (:attr:`clamp3.model.engine.EncoderBase.fingerprint`):
for CLaMP 3 registry names and model folders in our format it is computed from the config and a
sampled digest of the weights file, so no weights are read. An official model whose weights are not in
the local cache has a known dimension but no fingerprint yet (``None``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clamp3.config import CLaMP3Config
from clamp3.hub.download import cached_path
from clamp3.hub.registry import REGISTRY


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    fingerprint: str | None
    """``None`` while the weights are not on this machine."""
    dim: int


def _clamp3_fingerprint(config: CLaMP3Config, weights: Path) -> str:
    from clamp3.cache import digest, sampled_file_digest

    return digest("clamp3", json.dumps(config.to_dict(), sort_keys=True), sampled_file_digest(weights))


def model_identity(name_or_path: str) -> ModelIdentity:
    """The identity of a model name or path; loads the model only for formats read from the weights
    themselves (``.pth`` files, CLaMP 1)."""
    from clamp3.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    entry = REGISTRY.get(name_or_path)
    if entry is not None and entry.kind == "clamp3":
        if entry.bundled:
            folder = entry.local_dir
            config = CLaMP3Config.load(folder / CONFIG_FILE)
            return ModelIdentity(
                name_or_path, _clamp3_fingerprint(config, folder / WEIGHTS_FILE), config.projection_dim
            )
        config = entry.config()
        weights = cached_path(entry, entry.files[0])
        fingerprint = _clamp3_fingerprint(config, weights) if weights is not None else None
        return ModelIdentity(name_or_path, fingerprint, config.projection_dim)
    folder = Path(name_or_path)
    if (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file():
        try:
            config = CLaMP3Config.load(folder / CONFIG_FILE)
        except (ValueError, KeyError, TypeError):
            config = None
        if config is not None:
            return ModelIdentity(
                name_or_path, _clamp3_fingerprint(config, folder / WEIGHTS_FILE), config.projection_dim
            )
    from clamp3.api import load_model

    model = load_model(name_or_path, device="cpu")
    return ModelIdentity(name_or_path, model.fingerprint, model.embedding_dim)
