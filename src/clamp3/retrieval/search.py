"""Exact top-k cosine search over a matrix of vectors, chunked so large databases fit in bounded memory.

Results are deterministic: equal scores are ordered by database row, lower row first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clamp3.errors import Clamp3Error
from clamp3.retrieval.features import FeatureSet
from clamp3.retrieval.similarity import as_matrix, normalize_rows, same_dim

DEFAULT_CHUNK_ROWS = 65536
QUERY_BLOCK = 256


@dataclass(frozen=True, eq=False)
class TopK:
    """Best ``k`` database rows per query, best first: row ``indices`` and cosine ``scores``, ``(Q, k)``."""

    indices: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class SearchHit:
    """One search result: the database row, its id and path, and the cosine similarity."""

    index: int
    id: str
    path: str
    score: float


def _select(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best (score descending, then index ascending) of candidate columns.

    ``np.partition`` finds each row's k-th best score; every candidate at least that good is kept and
    the survivors (about ``k`` per row, more only on ties) are sorted exactly.
    """
    n_rows, n_cols = scores.shape
    if n_cols > k:
        threshold = np.partition(scores, n_cols - k, axis=1)[:, n_cols - k]
        rows, cols = np.nonzero(scores >= threshold[:, None])
    else:
        rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    picked_scores, picked_indices = scores[rows, cols], indices[rows, cols]
    order = np.lexsort((picked_indices, -picked_scores, rows))
    starts = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n_rows))[:-1]))
    take = order[(starts[:, None] + np.arange(min(k, n_cols))).ravel()]
    shape = (n_rows, min(k, n_cols))
    return picked_scores[take].reshape(shape), picked_indices[take].reshape(shape)


def top_k(
    queries: np.ndarray,
    database: np.ndarray,
    k: int = 10,
    *,
    normalized: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> TopK:
    """The ``k`` database rows most cosine-similar to each query (``(Q, D)`` or one ``(D,)`` vector).

    The database is read ``chunk_rows`` rows at a time (and queries ``QUERY_BLOCK`` at a time), so the
    working memory is about ``QUERY_BLOCK * chunk_rows`` floats beyond the inputs, and the database
    may be a memory-mapped array (``np.load(path, mmap_mode="r")``). Pass ``normalized=True`` when its
    rows already have unit length, to skip normalising each chunk.
    """
    if k < 1 or chunk_rows < 1:
        raise Clamp3Error(f"k and chunk_rows must be at least 1, got {k} and {chunk_rows}")
    q = normalize_rows(queries)
    if not np.all(np.isfinite(q)):
        raise Clamp3Error("queries contain NaN or infinite values")
    if database.ndim != 2 or len(database) == 0:
        raise Clamp3Error(f"the database must be a non-empty (N, D) matrix, got shape {database.shape}")
    same_dim(q, database, "queries against the database")
    k = min(k, len(database))
    best_scores = np.empty((len(q), 0), np.float32)
    best_indices = np.empty((len(q), 0), np.int64)
    for start in range(0, len(database), chunk_rows):
        chunk = database[start : start + chunk_rows]
        chunk = as_matrix(chunk) if normalized else normalize_rows(chunk)
        chunk_t = chunk.T
        columns = np.arange(start, start + len(chunk), dtype=np.int64)
        merged_s, merged_i = [], []
        for q_start in range(0, len(q), QUERY_BLOCK):
            sims = q[q_start : q_start + QUERY_BLOCK] @ chunk_t
            sims[np.isnan(sims)] = -np.inf  # a database row holding NaN ranks last
            s, i = _select(sims, np.broadcast_to(columns, sims.shape), k)
            rows = slice(q_start, q_start + QUERY_BLOCK)
            s, i = _select(np.hstack([best_scores[rows], s]), np.hstack([best_indices[rows], i]), k)
            merged_s.append(s)
            merged_i.append(i)
        best_scores, best_indices = np.vstack(merged_s), np.vstack(merged_i)
    return TopK(best_indices, best_scores)


class VectorIndex:
    """A feature set prepared for repeated searches (its rows normalised once)."""

    def __init__(self, features: FeatureSet, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        if len(features) == 0:
            raise Clamp3Error("cannot search an empty feature set")
        self.features = features
        self.chunk_rows = chunk_rows
        self._unit = normalize_rows(features.vectors)

    def __len__(self) -> int:
        return len(self.features)

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[SearchHit]]:
        """The ``k`` best hits for each query (one list per query row, best first)."""
        found = top_k(queries, self._unit, k, normalized=True, chunk_rows=self.chunk_rows)
        ids, paths = self.features.ids, self.features.paths
        return [
            [SearchHit(int(i), ids[i], paths[i], float(s)) for i, s in zip(row_i, row_s, strict=True)]
            for row_i, row_s in zip(found.indices, found.scores, strict=True)
        ]
