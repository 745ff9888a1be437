"""Pairwise and group scores on hand-made vectors, and the stable ``score`` function."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error
from clamp3.retrieval import (
    DimensionMismatchError,
    FeatureSet,
    UnmatchedKeysError,
    group_score,
    pairwise_score,
    score,
)


def test_pairwise_averages_over_query_files_and_uses_first_reference():
    queries = FeatureSet.from_vectors(["a.npy", "a.x.npy", "b.npy"], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # the first row of a key is its reference (a folder lists <key>.npy before <key>.<x>.npy)
    references = FeatureSet.from_vectors(
        ["a.npy", "a.other.npy", "b.npy"], [[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]
    )
    result = pairwise_score(queries, references)
    assert result.mean_similarity == pytest.approx(2 / 3)  # per file, not per key (0.75)
    assert [(p.query, p.reference, p.similarity) for p in result.pairs] == [
        ("a.npy", "a.npy", 1.0),
        ("b.npy", "b.npy", 1.0),
        ("a.x.npy", "a.npy", 0.0),
    ]
    assert (result.n_queries, result.n_references) == (3, 2)


def test_group_is_the_cosine_of_the_centroids_not_the_mean_pairwise():
    queries = FeatureSet.from_vectors(["a.npy", "b.npy"], [[1.0, 0.0], [0.0, 1.0]])
    references = FeatureSet.from_vectors(["a.npy", "b.npy"], [[0.0, 1.0], [1.0, 0.0]])
    assert pairwise_score(queries, references).mean_similarity == 0.0
    group = group_score(queries, references)
    assert group.similarity == pytest.approx(1.0)
    assert (group.n_queries, group.n_references) == (2, 2)
    assert score(queries, references, mode="group") == pytest.approx(1.0)
    assert score(queries.vectors, [[3.0, 1.0], [0.0, 0.0]], mode="group") == pytest.approx(
        4 / (2**0.5 * 10**0.5)
    )


def test_score_of_arrays_pairs_rows():
    generated = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert score(generated, np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx((1 + 2**-0.5) / 2)
    assert score(generated, np.array([1.0, 0.0])) == pytest.approx((1 + 2**-0.5) / 2)
    with pytest.raises(Clamp3Error, match="as many reference vectors"):
        score(generated, np.ones((3, 2)))
    with pytest.raises(Clamp3Error, match="unknown score mode"):
        score(generated, generated, mode="mean")
    with pytest.raises(DimensionMismatchError):
        score(generated, np.ones((2, 3)))
    with pytest.raises(Clamp3Error, match="empty"):
        score(np.zeros((0, 2)), generated, mode="group")


def test_unmatched_keys_are_reported_without_prompting():
    queries = FeatureSet.from_vectors(["a.npy", "new.npy"], [[1.0, 0.0], [0.0, 1.0]])
    references = FeatureSet.from_vectors(["a.npy", "old.npy"], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(UnmatchedKeysError, match=r"new\.npy.*old\.npy"):
        score(queries, references)
    result = pairwise_score(queries, references, allow_unmatched=True)
    assert result.mean_similarity == pytest.approx(1.0)
    assert (result.unmatched_queries, result.unmatched_references) == (("new.npy",), ("old.npy",))
