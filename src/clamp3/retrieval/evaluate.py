"""Retrieval metrics of paired feature sets: MRR and Hit@K as ``clamp3_eval.py`` computes them.

For every query file, the candidates are the references of all keys both sets share (one vector per
key: its first file), the rank of the true reference is 1 + the number of candidates with a strictly
larger cosine similarity (ties count in favour of the true reference), and every query file counts.
Similarities differing by less than ``tie_tolerance`` count as ties, so the rule does not depend on
float rounding (identical vectors may differ in the last bit after a matrix product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clamp3.retrieval.features import FeatureSet, match_keys
from clamp3.retrieval.similarity import normalize_rows, same_dim

DEFAULT_KS = (1, 10, 100)
TIE_TOLERANCE = 1e-6
"""About 8 float32 ulps at 1.0: the resolution of float32 cosine similarities."""


@dataclass(frozen=True)
class RankRecord:
    """One query file, the reference it should find, and the rank at which it was found (1 = best)."""

    query: str
    reference: str
    rank: int


@dataclass(frozen=True)
class RetrievalMetrics:
    """Metrics of one retrieval direction."""

    mrr: float
    hits: dict[int, float]
    ranks: tuple[RankRecord, ...]
    """One record per query file, in query order (``sorted_ranks`` gives the reference's file order)."""
    n_references: int
    """Size of the candidate pool (the reference's "Total reference features")."""

    @property
    def n_queries(self) -> int:
        return len(self.ranks)

    def summary(self) -> dict[str, float]:
        """``{"MRR": ..., "Hit@1": ..., ...}`` unrounded."""
        return {"MRR": self.mrr, **{f"Hit@{k}": value for k, value in self.hits.items()}}

    def sorted_ranks(self) -> list[RankRecord]:
        """Records sorted by rank, best first (stable), the order of the reference's ranks file."""
        return sorted(self.ranks, key=lambda record: record.rank)


@dataclass(frozen=True)
class EvalResult:
    """Evaluation of queries against references; ``backward`` (references as queries) when asked for."""

    forward: RetrievalMetrics
    backward: RetrievalMetrics | None
    common_keys: tuple[str, ...]
    unmatched_queries: tuple[str, ...]
    unmatched_references: tuple[str, ...]


def target_ranks(
    queries: np.ndarray,
    pool: np.ndarray,
    targets: np.ndarray,
    *,
    tie_tolerance: float = TIE_TOLERANCE,
    block_rows: int = 1024,
) -> np.ndarray:
    """1-based rank of ``pool[targets[i]]`` among all of ``pool`` for query ``i`` (cosine, ties optimistic).

    One normalised matrix product, computed ``block_rows`` queries at a time to bound memory.
    """
    q, p = normalize_rows(queries), normalize_rows(pool)
    same_dim(q, p, "queries against references")
    targets = np.asarray(targets, dtype=np.int64)
    ranks = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), block_rows):
        sims = q[start : start + block_rows] @ p.T
        rows = np.arange(len(sims))
        true = sims[rows, targets[start : start + block_rows]]
        ranks[start : start + len(sims)] = 1 + np.count_nonzero(
            sims > (true + tie_tolerance)[:, None], axis=1
        )
    return ranks


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS) -> tuple[float, dict[int, float]]:
    """MRR (mean of 1/rank) and Hit@K (fraction with rank <= K) of 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return 0.0, {k: 0.0 for k in ks}
    return float(np.mean(1.0 / ranks)), {k: float(np.mean(ranks <= k)) for k in ks}


def _direction(
    queries: FeatureSet,
    references: FeatureSet,
    keys: tuple[str, ...],
    ks: tuple[int, ...],
    tie_tolerance: float,
) -> RetrievalMetrics:
    """All query files of ``keys`` against the first reference file of each key."""
    ref_rows = [references.groups[key][0] for key in keys]
    position = {key: i for i, key in enumerate(keys)}
    query_rows = [row for key in keys for row in queries.groups[key]]
    targets = np.array([position[queries.keys[row]] for row in query_rows], dtype=np.int64)
    ranks = target_ranks(
        queries.vectors[query_rows], references.vectors[ref_rows], targets, tie_tolerance=tie_tolerance
    )
    mrr, hits = metrics_from_ranks(ranks, ks)
    records = tuple(
        RankRecord(queries.paths[row], references.paths[ref_rows[target]], int(rank))
        for row, target, rank in zip(query_rows, targets, ranks, strict=True)
    )
    return RetrievalMetrics(mrr, hits, records, len(keys))


def evaluate(
    queries: FeatureSet,
    references: FeatureSet,
    *,
    both: bool = False,
    allow_unmatched: bool = False,
    ks: tuple[int, ...] = DEFAULT_KS,
    tie_tolerance: float = TIE_TOLERANCE,
) -> EvalResult:
    """MRR and Hit@K of ``queries`` retrieving their ``references`` (paired by key).

    Unmatched keys raise ``UnmatchedKeysError`` (listing the files) unless ``allow_unmatched``, which
    goes on with the common keys. ``both`` also evaluates the other direction: every reference file
    retrieving the first query file of its key, as if the two folders were swapped.
    """
    match = match_keys(queries, references)
    match.require(allow_unmatched)
    forward = _direction(queries, references, match.common, ks, tie_tolerance)
    backward = _direction(references, queries, match.common, ks, tie_tolerance) if both else None
    return EvalResult(forward, backward, match.common, match.unmatched_queries, match.unmatched_references)
