"""Result files: the ranks JSONL of an evaluation and the pairs CSV of a pairwise score (atomic writes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from clamp3.fileio import atomic_write
from clamp3.retrieval.evaluate import RetrievalMetrics
from clamp3.retrieval.score import PairwiseScore


def write_ranks_jsonl(metrics: RetrievalMetrics, path: str | Path) -> Path:
    """One ``{"query", "reference", "rank"}`` object per line, best rank first (the reference's format)."""
    lines = [
        json.dumps({"query": r.query, "reference": r.reference, "rank": r.rank}, ensure_ascii=False)
        for r in metrics.sorted_ranks()
    ]
    target = Path(path)
    atomic_write(target, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8"))
    return target


def write_pairs_csv(result: PairwiseScore, path: str | Path) -> Path:
    """``query,reference,similarity`` rows, most similar first."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["query", "reference", "similarity"])
            writer.writerows((p.query, p.reference, p.similarity) for p in result.pairs)

    target = Path(path)
    atomic_write(target, write)
    return target
