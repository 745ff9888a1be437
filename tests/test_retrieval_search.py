"""Top-k cosine search: exact results, stable tie order, chunking, index wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error
from clamp3.retrieval import DimensionMismatchError, FeatureSet, VectorIndex, top_k


def _brute_force(queries, database, k):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    d = database / np.linalg.norm(database, axis=1, keepdims=True)
    sims = q @ d.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize("chunk_rows", [7, 64, 1000, 5000])
def test_matches_brute_force_for_any_chunking(chunk_rows):
    rng = np.random.default_rng(1)
    database = rng.standard_normal((1000, 24)).astype(np.float32)
    queries = rng.standard_normal((37, 24)).astype(np.float32)
    found = top_k(queries, database, 10, chunk_rows=chunk_rows)
    expected_rows, expected_scores = _brute_force(queries, database, 10)
    np.testing.assert_array_equal(found.indices, expected_rows)
    np.testing.assert_allclose(found.scores, expected_scores, atol=1e-6)
    assert found.indices.dtype == np.int64 and found.scores.dtype == np.float32


def test_ties_are_ordered_by_lower_row_first_across_chunks():
    rng = np.random.default_rng(2)
    database = rng.standard_normal((50, 8)).astype(np.float32)
    twin = database[3].copy()
    for row in (40, 3, 17, 25):
        database[row] = twin
    found = top_k(twin, database, 6, chunk_rows=10)
    assert found.indices.shape == (1, 6)
    assert found.indices[0, :4].tolist() == [3, 17, 25, 40]
    assert found.scores[0, 0] == found.scores[0, 3] == pytest.approx(1.0, abs=1e-6)


def test_all_equal_scores_keep_index_order():
    database = np.ones((30, 4), np.float32)
    found = top_k(np.ones(4), database, 5, chunk_rows=4)
    assert found.indices.tolist() == [[0, 1, 2, 3, 4]]


def test_k_larger_than_database_and_prenormalised_database():
    database = np.eye(3, dtype=np.float32)
    found = top_k(np.array([[0.0, 2.0, 1.0]]), database, 10, normalized=True)
    assert found.indices.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(found.scores, [[2 / 5**0.5, 1 / 5**0.5, 0.0]], atol=1e-6)


def test_bad_arguments():
    database = np.eye(3, dtype=np.float32)
    with pytest.raises(Clamp3Error, match="k and chunk_rows must be at least 1"):
        top_k(database[0], database, 0)
    with pytest.raises(DimensionMismatchError):
        top_k(np.ones(4), database)
    with pytest.raises(Clamp3Error, match="non-empty"):
        top_k(np.ones(3), np.zeros((0, 3), np.float32))
    with pytest.raises(Clamp3Error, match="NaN"):
        top_k(np.array([np.nan, 0, 0]), database)


def test_memory_mapped_database(tmp_path):
    rng = np.random.default_rng(3)
    database = rng.standard_normal((300, 16)).astype(np.float32)
    np.save(tmp_path / "db.npy", database)
    mapped = np.load(tmp_path / "db.npy", mmap_mode="r")
    query = rng.standard_normal(16).astype(np.float32)
    found = top_k(query, mapped, 5, chunk_rows=64)
    np.testing.assert_array_equal(found.indices, top_k(query, database, 5).indices)


def test_nan_rows_of_the_database_rank_last():
    database = np.array([[np.nan, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    assert top_k(np.array([0.0, 1.0, 0.0]), database, 3).indices.tolist() == [[2, 1, 0]]


def test_vector_index_returns_ids_and_paths():
    features = FeatureSet.from_vectors(
        ["a.npy", "sub/b.npy", "c.npy"],
        np.array([[1, 0], [0, 3], [1, 1]], np.float32),
        paths=["/x/a", "/x/b", "/x/c"],
    )
    index = VectorIndex(features, chunk_rows=2)
    assert len(index) == 3
    hits = index.search(np.array([[0.0, 1.0], [1.0, 0.0]]), k=2)
    assert [[hit.id for hit in row] for row in hits] == [["sub/b.npy", "c.npy"], ["a.npy", "c.npy"]]
    assert hits[0][0].path == "/x/b" and hits[0][0].index == 1
    assert hits[0][1].score == pytest.approx(2**-0.5, abs=1e-6)
