"""Similarity scores between two feature sets, as ``clamp3_score.py`` computes them.

* pairwise: every query file against the reference of its key (the first reference file of the
  key); the score is the mean over all query files, so a key with three query files weighs three
  times;
* group: the cosine similarity of the two mean vectors (not a mean of pairwise similarities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from clamp3.errors import Clamp3Error
from clamp3.retrieval.features import FeatureSet, match_keys
from clamp3.retrieval.similarity import as_matrix, paired_cosine, same_dim

ScoreMode = Literal["pairwise", "group"]


@dataclass(frozen=True)
class PairScore:
    """One query file, its reference file and their cosine similarity."""

    query: str
    reference: str
    similarity: float


@dataclass(frozen=True)
class PairwiseScore:
    """Pairwise mode: the mean similarity and every pair, most similar first (ties by query path)."""

    mean_similarity: float
    pairs: tuple[PairScore, ...]
    n_references: int
    """Reference keys available, matched or not (the reference's "Total reference features")."""
    unmatched_queries: tuple[str, ...]
    unmatched_references: tuple[str, ...]

    @property
    def n_queries(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True)
class GroupScore:
    """Group mode: cosine similarity of the mean query vector and the mean reference vector."""

    similarity: float
    n_queries: int
    n_references: int


def pairwise_score(
    queries: FeatureSet, references: FeatureSet, *, allow_unmatched: bool = False
) -> PairwiseScore:
    """Score every query file against the reference of its key.

    Unmatched keys raise ``UnmatchedKeysError`` (listing the files) unless ``allow_unmatched``.
    """
    same_dim(queries.vectors, references.vectors, "queries against references")
    match = match_keys(queries, references)
    match.require(allow_unmatched)
    query_rows = [row for key in match.common for row in queries.groups[key]]
    ref_rows = [references.groups[queries.keys[row]][0] for row in query_rows]
    sims = paired_cosine(queries.vectors[query_rows], references.vectors[ref_rows])
    pairs = [
        PairScore(queries.paths[q], references.paths[r], float(s))
        for q, r, s in zip(query_rows, ref_rows, sims, strict=True)
    ]
    pairs.sort(key=lambda pair: (-pair.similarity, pair.query))
    return PairwiseScore(
        float(np.mean(sims)),
        tuple(pairs),
        len(references.groups),
        match.unmatched_queries,
        match.unmatched_references,
    )


def group_score(queries: FeatureSet | np.ndarray, references: FeatureSet | np.ndarray) -> GroupScore:
    """Cosine similarity of the mean of all query vectors and the mean of all reference vectors."""
    q, r = _matrix(queries), _matrix(references)
    same_dim(q, r, "queries against references")
    centroids = q.mean(axis=0, dtype=np.float64), r.mean(axis=0, dtype=np.float64)
    return GroupScore(float(paired_cosine(*centroids)[0]), len(q), len(r))


def score(
    generated: FeatureSet | np.ndarray,
    reference: FeatureSet | np.ndarray,
    *,
    mode: ScoreMode = "pairwise",
    allow_unmatched: bool = False,
) -> float:
    """One number saying how close generated music is to reference music (higher is closer).

    ``pairwise``: feature sets pair up by key; plain ``(N, D)`` arrays pair row i with row i (a single
    ``(D,)`` reference scores every generated vector against it). ``group``: cosine of the centroids.
    """
    if mode == "group":
        return group_score(generated, reference).similarity
    if mode != "pairwise":
        raise Clamp3Error(f"unknown score mode {mode!r}: use 'pairwise' or 'group'")
    if isinstance(generated, FeatureSet) and isinstance(reference, FeatureSet):
        return pairwise_score(generated, reference, allow_unmatched=allow_unmatched).mean_similarity
    g, r = _matrix(generated), _matrix(reference)
    if len(r) == 1:
        r = np.broadcast_to(r, g.shape)
    if len(g) != len(r):
        raise Clamp3Error(
            f"pairwise score needs as many reference vectors as generated ones ({len(r)} != {len(g)})"
        )
    return float(np.mean(paired_cosine(g, r)))


def _matrix(vectors: FeatureSet | np.ndarray) -> np.ndarray:
    matrix = vectors.vectors if isinstance(vectors, FeatureSet) else as_matrix(vectors)
    if len(matrix) == 0:
        raise Clamp3Error("cannot score an empty set of vectors")
    return matrix
