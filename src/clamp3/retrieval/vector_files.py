"""Vector files written by ``clamp3 embed --format npz|parquet``: one file of global vectors with their
ids, source paths, modalities and the model that made them.

``.npz``: arrays ``ids``, ``paths``, ``modality``, ``vectors`` ``(N, D)``, ``model`` (the weights
fingerprint) and, when known, ``model_name``. ``.parquet``: columns ``id``, ``path``, ``modality``,
``vector`` (lists of float32) and the schema metadata ``model`` and ``model_name``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clamp3.errors import InputError
from clamp3.retrieval.errors import MissingDependencyError
from clamp3.retrieval.features import FeatureSet

VECTOR_FILE_SUFFIXES = (".npz", ".parquet")
_NPZ_ARRAYS = ("ids", "paths", "modality", "vectors")
_PARQUET_COLUMNS = ("id", "path", "modality", "vector")


def is_vector_file(path: str | os.PathLike[str]) -> bool:
    """True for an ``.npz`` or ``.parquet`` file laid out as ``clamp3 embed`` writes them."""
    source = Path(path)
    suffix = source.suffix.lower()
    if not source.is_file() or suffix not in VECTOR_FILE_SUFFIXES:
        return False
    try:
        if suffix == ".npz":
            with np.load(source, allow_pickle=False) as data:
                return all(name in data.files for name in _NPZ_ARRAYS)
        import pyarrow.parquet as pq

        return all(name in pq.read_schema(source).names for name in _PARQUET_COLUMNS)
    except ImportError:
        return True  # read_vector_file says which package is missing
    except (OSError, ValueError):
        return False


def read_vector_file(path: str | os.PathLike[str]) -> FeatureSet:
    """The vectors of an ``.npz`` or ``.parquet`` vector file, with ids, paths, modalities and model."""
    source = Path(path)
    if source.suffix.lower() == ".npz":
        return _read_npz(source)
    return _read_parquet(source)


def vector_file_model_name(path: str | os.PathLike[str]) -> str | None:
    """The model name recorded in a vector file (without reading its vectors), if any."""
    source = Path(path)
    if source.suffix.lower() == ".npz":
        with np.load(source, allow_pickle=False) as data:
            return _text(data["model_name"]) if "model_name" in data.files else None
    import pyarrow.parquet as pq

    metadata = pq.read_schema(source).metadata or {}
    return _text(metadata.get(b"model_name", b"").decode())


def _text(value: object) -> str | None:
    text = str(value)
    return text or None


def _read_npz(source: Path) -> FeatureSet:
    try:
        with np.load(source, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(source, f"not a readable .npz file ({exc})") from exc
    missing = [name for name in _NPZ_ARRAYS if name not in arrays]
    if missing:
        raise InputError(source, f"not a clamp3 vector file: no {', '.join(missing)} array")
    return _feature_set(
        source,
        [str(i) for i in arrays["ids"]],
        arrays["vectors"],
        [str(p) for p in arrays["paths"]],
        [str(m) for m in arrays["modality"]],
        _text(arrays["model"]) if "model" in arrays else None,
        _text(arrays["model_name"]) if "model_name" in arrays else None,
    )


def _read_parquet(source: Path) -> FeatureSet:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError(
            "reading .parquet vectors needs pyarrow: pip install 'clamp3[parquet]'"
        ) from None
    try:
        table = pq.read_table(source)
    except (OSError, ValueError) as exc:
        raise InputError(source, f"not a readable .parquet file ({exc})") from exc
    missing = [name for name in _PARQUET_COLUMNS if name not in table.column_names]
    if missing:
        raise InputError(source, f"not a clamp3 vector file: no {', '.join(missing)} column")
    metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
    rows = table.column("vector").to_pylist()
    dim = len(rows[0]) if rows else 0
    if any(row is None or len(row) != dim for row in rows):
        raise InputError(source, "the vectors are not all of one dimension")
    return _feature_set(
        source,
        table.column("id").to_pylist(),
        np.asarray(rows, dtype=np.float32).reshape(len(rows), dim),
        table.column("path").to_pylist(),
        table.column("modality").to_pylist(),
        metadata.get("model") or None,
        metadata.get("model_name") or None,
    )


def _feature_set(source, ids, vectors, paths, modalities, model, model_name) -> FeatureSet:
    matrix = np.asarray(vectors)
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
        raise InputError(source, f"vectors of shape {matrix.shape} and dtype {matrix.dtype}: expected (N, D)")
    if not len(ids) == len(paths) == len(modalities) == len(matrix):
        raise InputError(
            source, f"{len(ids)} ids, {len(paths)} paths, {len(modalities)} modalities, {len(matrix)} vectors"
        )
    if not np.all(np.isfinite(matrix)):
        raise InputError(source, "contains NaN or infinite values")
    return FeatureSet(tuple(ids), matrix, tuple(paths), model, model_name, tuple(modalities))
