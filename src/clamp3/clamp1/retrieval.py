"""Ranking keys against a query the way CLaMP 1's ``clamp.py`` does, and its printout.

* probability: softmax over the keys of ``cos(q, k) * e`` (``torch.exp(torch.tensor(1))``), computed on
  L2-normalised vectors, as the reference's ``compute_values`` with ``t = 1``;
* similarity: ``torch.cosine_similarity`` of the vectors as given (the printed ``Sim``).

Vectors are the raw ``encode_*`` outputs; normalised ones give the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


class Match(NamedTuple):
    """One ranked key: its row in the key matrix, the cosine similarity and the softmax probability."""

    index: int
    similarity: float
    probability: float


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (``torch.nn.functional.normalize``, eps 1e-12), as float32."""
    return F.normalize(torch.as_tensor(np.asarray(vectors, dtype=np.float32)), dim=-1).numpy()


def rank(query: np.ndarray, keys: np.ndarray, top_n: int = 0) -> list[Match]:
    """The ``top_n`` keys (all when 0) most probable for ``query`` (``[D]`` or ``[1, D]``), best first."""
    q = torch.as_tensor(np.asarray(query, dtype=np.float32)).reshape(1, -1)
    k = torch.as_tensor(np.asarray(keys, dtype=np.float32))
    if k.ndim != 2 or k.shape[1] != q.shape[1] or len(k) == 0:
        raise ValueError(f"keys must be a non-empty [n, {q.shape[1]}] matrix, got {list(k.shape)}")
    if top_n < 0:
        raise ValueError("top_n must be >= 0 (0 means all keys)")
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T * torch.exp(torch.tensor(1.0))
    probabilities = torch.softmax(logits, dim=1)[0]
    similarities = torch.cosine_similarity(q, k)
    ascending = torch.argsort(probabilities, stable=True).tolist()
    chosen = ascending[-top_n:] if top_n else ascending
    return [Match(i, similarities[i].item(), probabilities[i].item()) for i in reversed(chosen)]


def format_results(matches: Sequence[Match], labels: Sequence[str], query_text: str | None = None) -> str:
    """The reference's result printout: worst of ``matches`` first, best last, each with its label
    (the key text, or the key's file name), then ``Query:`` and the stripped text of a text query."""
    blocks = [
        f"Prob: {match.probability * 100:.2f}% - Sim: {match.similarity:.4f}:\n{labels[match.index]}\n\n"
        for match in reversed(matches)
    ]
    query = "" if query_text is None else f"Query:\n{query_text.strip()}\n"
    return "\n\n" + "".join(blocks) + query
