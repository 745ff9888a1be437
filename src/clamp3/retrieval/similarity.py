"""Cosine-similarity primitives shared by search, evaluation, scoring and classification."""

from __future__ import annotations

import numpy as np

from clamp3.retrieval.errors import DimensionMismatchError

EPS = 1e-8
"""Norms below this count as this (``torch.cosine_similarity``'s eps), so zero vectors score 0."""


def as_matrix(vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a float32 ``(N, D)`` matrix; a single ``(D,)`` vector becomes one row."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise DimensionMismatchError(f"{what} must be (N, D) or (D,), got shape {matrix.shape}")
    return matrix


def same_dim(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Raise ``DimensionMismatchError`` unless two matrices have the same number of columns."""
    if a.shape[1] != b.shape[1]:
        raise DimensionMismatchError(f"{what}: dimension {a.shape[1]} against {b.shape[1]}")


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """A float32 copy of ``vectors`` with unit-length rows (all-zero rows stay zero)."""
    matrix = as_matrix(vectors)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, np.float32(EPS))


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of row i of ``a`` with row i of ``b``, computed in float64."""
    a64, b64 = as_matrix(a).astype(np.float64), as_matrix(b).astype(np.float64)
    same_dim(a64, b64, "paired vectors")
    norms = np.maximum(np.linalg.norm(a64, axis=1), EPS) * np.maximum(np.linalg.norm(b64, axis=1), EPS)
    return np.einsum("ij,ij->i", a64, b64) / norms
