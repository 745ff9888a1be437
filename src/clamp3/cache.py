"""A content-addressed cache of model inputs and vectors on disk.

Entries are addressed by a hash of everything that determines them: the bytes of the source file
(or of the model input), the fingerprint of the model that produced them, the version of the
preprocessing stage, and whether they are global or per-position features. A changed file, model
or converter therefore simply misses; nothing ever has to be invalidated. Each entry is one file
written atomically (temporary file + rename), so readers in other processes see either nothing or
a complete entry, and two processes writing the same entry at once both succeed.

The default location is the user cache folder (``platformdirs``), overridable with
``CLAMP3_CACHE_DIR``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clamp3.fileio import atomic_write

_READ_BLOCK = 1 << 20


def default_cache_dir() -> Path:
    configured = os.environ.get("CLAMP3_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("clamp3"))


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sampled_file_digest(path: str | Path) -> str:
    """A cheap identity for large files: SHA-256 of the size and the first and last MiB.

    Used for model weights (re-hashing gigabytes on every start would be slow); any retraining
    changes those bytes.
    """
    path = Path(path)
    size = path.stat().st_size
    hasher = hashlib.sha256(size.to_bytes(8, "little"))
    with path.open("rb") as handle:
        hasher.update(handle.read(_READ_BLOCK))
        if size > 2 * _READ_BLOCK:
            handle.seek(size - _READ_BLOCK)
            hasher.update(handle.read(_READ_BLOCK))
    return hasher.hexdigest()


def digest(*parts: str | bytes) -> str:
    """SHA-256 of ``parts`` (each length-prefixed, so the split between parts matters)."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    root: Path
    entries: int
    bytes: int


class FeatureCache:
    """Arrays and texts stored under ``root/<first two hex digits>/<key>.<npy|txt>``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def get_array(self, key: str) -> np.ndarray | None:
        path = self._path(key, ".npy")
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # a damaged entry is a miss; the next put replaces it
            return None

    def put_array(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        data = buffer.getvalue()
        atomic_write(self._path(key, ".npy"), lambda tmp: tmp.write_bytes(data))

    def get_text(self, key: str) -> str | None:
        try:
            return self._path(key, ".txt").read_bytes().decode("utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def put_text(self, key: str, text: str) -> None:
        data = text.encode("utf-8")
        atomic_write(self._path(key, ".txt"), lambda tmp: tmp.write_bytes(data))

    def shards(self) -> list[Path]:
        """The ``root/<first two hex digits>`` folders holding the entries (other folders under the
        root, such as ``backbones``, are not part of the feature cache)."""
        if not self.root.is_dir():
            return []
        return [
            child
            for child in self.root.iterdir()
            if child.is_dir() and len(child.name) == 2 and all(c in "0123456789abcdef" for c in child.name)
        ]

    def stats(self) -> CacheStats:
        files = [
            p
            for shard in self.shards()
            for p in shard.iterdir()
            if p.is_file() and not p.name.startswith(".")
        ]
        return CacheStats(self.root, len(files), sum(p.stat().st_size for p in files))

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        count = self.stats().entries
        for shard in self.shards():
            shutil.rmtree(shard, ignore_errors=True)
        return count
