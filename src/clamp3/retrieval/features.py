"""Feature sets: named global vectors, loaded from a folder tree of ``.npy`` files or built in memory.

A file is matched across folders by its *key*: the relative sub-folder path, ``/``, and the file
name up to its first dot. ``sub/p12.npy``, ``sub/p12.take1.npy`` and ``sub/p12.take1.wav`` all have
the key ``sub/p12`` (the reference's ``clamp3_eval.py`` keying, independent of how the folder was
spelled: any depth, trailing slashes or Windows separators). Files directly in the folder have keys
without a leading slash (``p01``, where the reference writes ``/p01``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from clamp3.errors import Clamp3Error, InputError
from clamp3.progress import progress_bar
from clamp3.retrieval.errors import FeatureFolderError, UnmatchedKeysError

FEATURE_SUFFIX = ".npy"


def feature_key(relative_path: str) -> str:
    """The matching key of a relative path: ``"sub/p12.take1.npy"`` -> ``"sub/p12"``."""
    parts = [part for part in relative_path.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts:
        raise Clamp3Error(f"cannot derive a feature key from the empty path {relative_path!r}")
    return "/".join([*parts[:-1], parts[-1].split(".")[0]])


def _order(relative_path: str) -> tuple[list[str], int, str]:
    """Deterministic file order: by key (folder by folder), then the plain ``<key>.npy`` before
    ``<key>.<suffix>.npy`` variants, then by name."""
    name = relative_path.rsplit("/", 1)[-1]
    return feature_key(relative_path).split("/"), name.count("."), name


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Global vectors with their ids.

    ``ids`` are relative paths (or any names); ``feature_key(id)`` pairs them with other sets.
    ``paths`` say where each vector came from (defaults to the ids). ``model`` optionally identifies
    the embedding model that produced the vectors: its weights fingerprint when known, else its name
    or a label; ``model_name`` is its name when known (see :func:`same_model`). ``modalities`` holds
    the file kind of every row (``"abc"``, ``"audio"``, ...) when known, else nothing.
    """

    ids: tuple[str, ...]
    vectors: np.ndarray
    paths: tuple[str, ...] = ()
    model: str | None = None
    model_name: str | None = None
    modalities: tuple[str, ...] = ()
    _keys: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise Clamp3Error(f"feature vectors must be an (N, D) matrix, got shape {vectors.shape}")
        paths = tuple(self.paths) if self.paths else tuple(self.ids)
        if not len(self.ids) == len(paths) == len(vectors):
            raise Clamp3Error(
                f"{len(self.ids)} ids, {len(paths)} paths and {len(vectors)} vectors: the counts must agree"
            )
        if self.modalities and len(self.modalities) != len(vectors):
            raise Clamp3Error(f"{len(self.modalities)} modalities for {len(vectors)} vectors")
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "_keys", tuple(feature_key(i) for i in self.ids))

    @classmethod
    def from_vectors(
        cls,
        ids: Sequence[str],
        vectors: np.ndarray | Sequence[np.ndarray],
        paths: Sequence[str] = (),
        model: str | None = None,
    ) -> FeatureSet:
        """Build a set from new vectors: ``(N, D)``, or N vectors of shape ``(D,)``/``(1, D)``."""
        if isinstance(vectors, np.ndarray):
            matrix = vectors[:, 0] if vectors.ndim == 3 and vectors.shape[1] == 1 else vectors
        else:
            rows = [np.asarray(v, dtype=np.float32) for v in vectors]
            rows = [row[0] if row.ndim == 2 and row.shape[0] == 1 else row for row in rows]
            if len({row.shape for row in rows}) > 1:
                raise Clamp3Error(f"vectors of different shapes: {sorted({row.shape for row in rows})}")
            matrix = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        return cls(tuple(ids), matrix, tuple(paths), model)

    def subset(self, rows: Sequence[int]) -> FeatureSet:
        """The given rows, in that order, with the same model."""
        rows = list(rows)
        return FeatureSet(
            tuple(self.ids[i] for i in rows),
            self.vectors[rows],
            tuple(self.paths[i] for i in rows),
            self.model,
            self.model_name,
            tuple(self.modalities[i] for i in rows) if self.modalities else (),
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """The matching key of every vector, in row order."""
        return self._keys

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def groups(self) -> dict[str, list[int]]:
        """Row indices per key, keys in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for row, key in enumerate(self._keys):
            groups.setdefault(key, []).append(row)
        return groups


def same_model(model: str, name: str | None, other: str, other_name: str | None) -> bool:
    """Whether two recorded embedding models are one: ``model`` is the weights fingerprint when it was
    known, else the name (or a label); ``name`` the model's name when known. Two fingerprints must be
    equal; a side recorded by its name alone (``model == name``) matches the same name."""
    if model == other:
        return True
    by_name_only = model == name or other == other_name
    return by_name_only and name is not None and name == other_name


def describe_model(model: str, name: str | None) -> str:
    """A recorded model for messages: ``'saas' (26d3b9a0c1f2)``, or ``'precomputed'`` for a label."""
    if name is None or model == name:
        return f"'{model[:12] if len(model) == 64 else model}'"
    return f"'{name}' ({model[:12]})"


def _feature_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the ``.npy`` files under ``folder`` (hidden files and folders skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_root = Path(root).relative_to(folder).as_posix()
        for name in files:
            if name.lower().endswith(FEATURE_SUFFIX) and not name.startswith("."):
                found.append(name if rel_root == "." else f"{rel_root}/{name}")
    return sorted(found, key=_order)


def _read_vector(path: Path) -> np.ndarray:
    """The global vector stored in one ``.npy`` file, as float32 ``(D,)``; ``InputError`` otherwise."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"not a readable .npy array ({exc})") from exc
    if array.dtype.kind not in "fiu":
        raise InputError(path, f"dtype {array.dtype} is not a number type")
    shape = array.shape
    if array.ndim == 2 and shape[0] == 1:
        array = array[0]
    elif array.ndim == 3 and shape[0] == 1:
        raise InputError(path, f"shape {shape} holds per-position features; extract global features (1, D)")
    elif array.ndim != 1:
        raise InputError(path, f"shape {shape} is not a global feature vector (1, D) or (D,)")
    if array.size == 0:
        raise InputError(path, f"shape {shape} is empty")
    if not np.all(np.isfinite(array)):
        raise InputError(path, "contains NaN or infinite values")
    return array.astype(np.float32, copy=False)


def read_feature_folder(
    folder: str | os.PathLike[str], *, show_progress: bool = False
) -> tuple[FeatureSet, list[InputError]]:
    """Load every ``.npy`` file under ``folder`` (recursively, in a deterministic order).

    Returns the readable vectors and one ``InputError`` per bad file (unreadable, wrong shape, or a
    dimension other than that of most files). Raises ``InputError`` if the folder is missing or
    holds no ``.npy`` file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    relative = _feature_files(root)
    if not relative:
        raise InputError(root, f"no {FEATURE_SUFFIX} feature files found")
    errors: list[InputError] = []
    loaded: list[tuple[str, Path, np.ndarray]] = []
    with progress_bar(len(relative), "Loading features", enabled=show_progress) as bar:
        for rel in relative:
            path = root / rel
            try:
                loaded.append((rel, path, _read_vector(path)))
            except InputError as error:
                errors.append(error)
            bar.advance()
    dims = Counter(vector.shape[0] for _, _, vector in loaded)
    dim = dims.most_common(1)[0][0] if dims else 0
    kept = []
    for rel, path, vector in loaded:
        if vector.shape[0] == dim:
            kept.append((rel, path, vector))
        else:
            errors.append(
                InputError(path, f"dimension {vector.shape[0]} differs from {dim} of the other files")
            )
    vectors = np.stack([v for _, _, v in kept]) if kept else np.zeros((0, dim), np.float32)
    features = FeatureSet(tuple(r for r, _, _ in kept), vectors, tuple(str(p) for _, p, _ in kept))
    return features, errors


def load_features(folder: str | os.PathLike[str], *, show_progress: bool = False) -> FeatureSet:
    """Like ``read_feature_folder``, but any bad file raises ``FeatureFolderError`` (listing them all)."""
    features, errors = read_feature_folder(folder, show_progress=show_progress)
    if errors:
        raise FeatureFolderError(str(folder), errors)
    return features


@dataclass(frozen=True)
class KeyMatch:
    """How two feature sets pair up by key."""

    common: tuple[str, ...]
    """Keys present on both sides, in the order of the reference set."""
    unmatched_queries: tuple[str, ...]
    """Paths of query files whose key has no reference."""
    unmatched_references: tuple[str, ...]
    """Paths of reference files whose key has no query."""

    def require(self, allow_unmatched: bool) -> None:
        """Raise ``UnmatchedKeysError`` unless all keys pair up (or ``allow_unmatched``), or if none does."""
        if (self.unmatched_queries or self.unmatched_references) and not allow_unmatched:
            raise UnmatchedKeysError(
                list(self.unmatched_queries), list(self.unmatched_references), len(self.common)
            )
        if not self.common:
            raise Clamp3Error("queries and references have no key in common")


def match_keys(queries: FeatureSet, references: FeatureSet) -> KeyMatch:
    """Pair ``queries`` with ``references`` by key."""
    query_groups, ref_groups = queries.groups, references.groups
    common = tuple(key for key in ref_groups if key in query_groups)
    lonely_queries = tuple(
        queries.paths[row] for key, rows in query_groups.items() if key not in ref_groups for row in rows
    )
    lonely_refs = tuple(
        references.paths[row] for key, rows in ref_groups.items() if key not in query_groups for row in rows
    )
    return KeyMatch(common, lonely_queries, lonely_refs)
