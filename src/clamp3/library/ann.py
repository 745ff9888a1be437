"""The approximate nearest-neighbour index of a library and the measurement of its recall.

LanceDB's IVF-PQ index on the unit-length vectors (dot product, which equals cosine there): about
``sqrt(N)`` partitions, 8-dimensional sub-vectors, and at query time ``nprobes`` partitions scanned
with the ``refine_factor * k`` best candidates re-ranked on their full vectors. Below
:data:`MIN_INDEX_ROWS` rows an index gains nothing and every search is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_INDEX_ROWS = 512
RECALL_K = 10
DISTANCE = "dot"


@dataclass(frozen=True)
class IndexParams:
    partitions: int
    sub_vectors: int


def index_params(rows: int, dim: int) -> IndexParams:
    sub_length = next(n for n in (8, 4, 2, 1) if dim % n == 0)
    return IndexParams(partitions=max(1, min(4096, round(math.sqrt(rows)))), sub_vectors=dim // sub_length)


def build_index(table: Any, rows: int, dim: int) -> IndexParams:
    params = index_params(rows, dim)
    table.create_index(
        metric=DISTANCE,
        vector_column_name="vector",
        index_type="IVF_PQ",
        num_partitions=params.partitions,
        num_sub_vectors=params.sub_vectors,
        replace=True,
    )
    return params


def vector_index(table: Any) -> Any | None:
    """The table's vector index description, or ``None``."""
    return next((index for index in table.list_indices() if "vector" in index.columns), None)


def measured_recall(search: Any, queries: np.ndarray, query_ids: list[str], k: int = RECALL_K) -> float:
    """Mean share of the exact top ``k`` that the index finds, each query's own row left out.

    ``search(vector, k, exact)`` returns the ids of the best rows.
    """
    found = []
    for vector, own in zip(queries, query_ids, strict=True):
        exact = [i for i in search(vector, k + 1, True) if i != own][:k]
        approximate = set([i for i in search(vector, k + 1, False) if i != own][:k])
        found.append(len(approximate.intersection(exact)) / max(1, len(exact)))
    return float(np.mean(found)) if found else float("nan")
