"""Retrieval metrics on hand-made vectors, the ranks file and the rank plot."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from clamp3.retrieval import (
    FeatureSet,
    MissingDependencyError,
    UnmatchedKeysError,
    evaluate,
    write_ranks_jsonl,
)
from clamp3.retrieval.evaluate import metrics_from_ranks, target_ranks
from clamp3.retrieval.plots import plot_rank_distribution

REFERENCES = FeatureSet.from_vectors(["a.npy", "b.npy", "c.npy"], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
QUERIES = FeatureSet.from_vectors(
    ["a.npy", "a.2.npy", "b.npy", "c.npy"], [[1.0, 0.1], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
)


def test_hand_example_ranks_and_metrics():
    result = evaluate(QUERIES, REFERENCES, ks=(1, 2, 10))
    forward = result.forward
    # a.2 ranks behind b and c; b ties with a (0.7071) behind c (1.0): ties favour the true item
    assert [(r.query, r.reference, r.rank) for r in forward.ranks] == [
        ("a.npy", "a.npy", 1),
        ("a.2.npy", "a.npy", 3),
        ("b.npy", "b.npy", 2),
        ("c.npy", "c.npy", 1),
    ]
    assert forward.mrr == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 4)
    assert forward.hits == {1: 0.5, 2: 0.75, 10: 1.0}
    assert forward.summary() == {"MRR": forward.mrr, "Hit@1": 0.5, "Hit@2": 0.75, "Hit@10": 1.0}
    assert (forward.n_queries, forward.n_references) == (4, 3)
    assert result.backward is None
    assert result.common_keys == ("a", "b", "c")


def test_backward_direction_uses_first_query_file_per_key():
    backward = evaluate(QUERIES, REFERENCES, both=True).backward
    assert backward is not None
    assert [(r.query, r.reference, r.rank) for r in backward.ranks] == [
        ("a.npy", "a.npy", 1),
        ("b.npy", "b.npy", 1),
        ("c.npy", "c.npy", 1),
    ]
    assert backward.mrr == 1.0


def test_near_ties_within_tolerance_count_for_the_true_item():
    pool = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    query = np.array([[1.0, 1.0000002]], np.float32)  # a hair closer to row 1 than to row 0
    assert target_ranks(query, pool, np.array([0])).tolist() == [1]
    assert target_ranks(query, pool, np.array([0]), tie_tolerance=0.0).tolist() == [2]


def test_blocked_ranks_match_unblocked():
    rng = np.random.default_rng(0)
    queries, pool = rng.standard_normal((50, 8)), rng.standard_normal((40, 8))
    targets = rng.integers(0, 40, size=50)
    np.testing.assert_array_equal(
        target_ranks(queries, pool, targets, block_rows=7), target_ranks(queries, pool, targets)
    )


def test_metrics_from_ranks():
    mrr, hits = metrics_from_ranks(np.array([1, 2, 4, 150]), ks=(1, 10, 100))
    assert mrr == pytest.approx((1 + 0.5 + 0.25 + 1 / 150) / 4)
    assert hits == {1: 0.25, 10: 0.75, 100: 0.75}


def test_unmatched_keys_raise_or_are_dropped():
    queries = FeatureSet.from_vectors(["a.npy", "extra.npy"], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(UnmatchedKeysError) as caught:
        evaluate(queries, REFERENCES)
    assert caught.value.unmatched_queries == ["extra.npy"]
    assert caught.value.unmatched_references == ["b.npy", "c.npy"]
    result = evaluate(queries, REFERENCES, allow_unmatched=True)
    assert result.common_keys == ("a",)
    assert result.unmatched_queries == ("extra.npy",)
    assert result.forward.n_references == 1 and result.forward.mrr == 1.0


def test_ranks_file_is_sorted_by_rank(tmp_path):
    forward = evaluate(QUERIES, REFERENCES).forward
    lines = (
        write_ranks_jsonl(forward, tmp_path / "out" / "ranks.jsonl").read_text(encoding="utf-8").splitlines()
    )
    assert [json.loads(line) for line in lines] == [
        {"query": "a.npy", "reference": "a.npy", "rank": 1},
        {"query": "c.npy", "reference": "c.npy", "rank": 1},
        {"query": "b.npy", "reference": "b.npy", "rank": 2},
        {"query": "a.2.npy", "reference": "a.npy", "rank": 3},
    ]


def test_rank_distribution_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    queries = FeatureSet.from_vectors([f"k{i}.npy" for i in range(200)], rng.standard_normal((200, 16)))
    references = FeatureSet.from_vectors([f"k{i}.npy" for i in range(200)], rng.standard_normal((200, 16)))
    path = plot_rank_distribution(
        evaluate(queries, references).forward, tmp_path / "ranks.png", title="random"
    )
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
    assert not list(tmp_path.glob(".*.tmp"))


def test_plots_without_matplotlib_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match="pip install"):
        plot_rank_distribution(evaluate(QUERIES, REFERENCES).forward, tmp_path / "ranks.png")
    assert not (tmp_path / "ranks.png").exists()
