"""Two-dimensional coordinates of vectors for a map of a library: their first two principal components."""

from __future__ import annotations

import numpy as np


def principal_plane(vectors: np.ndarray) -> np.ndarray:
    """``(N, 2)`` coordinates: the centred vectors projected on their two main directions, scaled to
    [-1, 1]. The sign of each axis is fixed (its largest loading positive) so maps are reproducible."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    centred = vectors - vectors.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    axes = directions[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    points = centred @ axes.T
    if points.shape[1] < 2:
        points = np.hstack([points, np.zeros((len(points), 2 - points.shape[1]))])
    scale = np.abs(points).max(axis=0)
    return points / np.where(scale > 0, scale, 1.0)
