"""Segment-level retrieval: which passage of a piece matches a query, and a piece's score from its
global vector and its windows' vectors (see :mod:`clamp3.preprocess.windows`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clamp3.errors import Clamp3Error
from clamp3.preprocess.windows import Span

COMBINE = ("max", "global", "window", "mean")
"""How a piece's score is made from its global score ``g`` and its best window's score ``w``:
``max(g, w)``, ``g``, ``w`` or ``(g + w) / 2``."""


@dataclass(frozen=True)
class SpanHit:
    """One passage of a piece, ranked for a query."""

    rank: int
    score: float
    """Cosine of the window's vector to the query's."""
    span: Span
    id: str
    """The item the passage belongs to (the piece; ``path#X`` for a tune of an ABC file)."""

    def to_dict(self) -> dict:
        """What ``clamp3 locate --json`` prints: rank, score, start, end, unit, id."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "start": self.span.start,
            "end": self.span.end,
            "unit": self.span.unit,
            "id": self.id,
        }


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def rank_spans(query: np.ndarray, windows: Sequence[tuple[str, Sequence[Span], np.ndarray]]) -> list[SpanHit]:
    """Every window of ``windows`` (``(id, spans, vectors)`` per item) ranked by cosine to ``query``,
    best first; a span that two window sizes share is listed once."""
    query = unit_rows(query)[0]
    scored: dict[tuple[str, Span], float] = {}
    for item_id, spans, vectors in windows:
        for span, score in zip(spans, unit_rows(vectors) @ query, strict=True):
            key = (item_id, span)
            scored[key] = max(float(score), scored.get(key, -2.0))
    ordered = sorted(
        scored.items(), key=lambda pair: (-pair[1], pair[0][0], pair[0][1].start, pair[0][1].end)
    )
    return [SpanHit(rank, score, span, item_id) for rank, ((item_id, span), score) in enumerate(ordered, 1)]


def piece_score(global_score: float, window_score: float | None, combine: str = "max") -> float:
    """A piece's score for a query (see :data:`COMBINE`); a piece without windows keeps its global score."""
    if combine not in COMBINE:
        raise Clamp3Error(f"unknown way to combine scores {combine!r}; choose from {', '.join(COMBINE)}")
    if window_score is None or combine == "global":
        return global_score
    if combine == "window":
        return window_score
    if combine == "mean":
        return (global_score + window_score) / 2
    return max(global_score, window_score)
