"""Euclidean nearest-neighbour distances between two point sets, in row blocks.

Every k-NN based metric (precision/recall, density/coverage, the memorisation audit)
needs distances between up to ~20k × ~20k points; the full matrix would be 3.2 GB in
float64, so distances are computed ``block_rows`` query rows at a time and reduced
block by block. Squared distances use ``|a|² + |b|² - 2 a·b`` (one matrix product per
block, clipped at 0 against rounding); the distances :func:`nearest` reports are then
recomputed directly as ``|a - b|`` in float64 for the chosen pairs, so a reported
distance is exact even when the block product ran in float32.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

DEFAULT_BLOCK_ROWS = 512


def _as_2d(x: np.ndarray, dtype: type) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array (points × dims), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=dtype)


def distance_blocks(query: np.ndarray, ref: np.ndarray, dtype: type = np.float64,
                    block_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, D)`` with ``D[i, j] = |query[first_row + i] - ref[j]|`` (Euclidean)."""
    q, r = _as_2d(query, dtype), _as_2d(ref, dtype)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"dimension mismatch: {q.shape[1]} vs {r.shape[1]}")
    rr = np.einsum("ij,ij->i", r, r)
    for start in range(0, len(q), block_rows):
        qb = q[start : start + block_rows]
        d2 = np.einsum("ij,ij->i", qb, qb)[:, None] + rr[None, :] - 2.0 * (qb @ r.T)
        np.maximum(d2, 0.0, out=d2)
        yield start, np.sqrt(d2, out=d2)


def nearest(query: np.ndarray, ref: np.ndarray, dtype: type = np.float64, exclude: np.ndarray | None = None,
            block_rows: int = DEFAULT_BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """For each query point: (distance to its nearest ``ref`` point, that point's index).

    The index is chosen with distances computed in ``dtype``; the returned distance is
    recomputed exactly in float64. Ties go to the lowest index. ``exclude[i]``, when
    given, is a ``ref`` index that query ``i`` may not pick (itself, for leave-one-out).
    """
    distance, idx, _ = nearest_and_mean(query, ref, 1, dtype, exclude, block_rows)
    return distance, idx


def nearest_and_mean(query: np.ndarray, ref: np.ndarray, k: int, dtype: type = np.float64,
                     exclude: np.ndarray | None = None,
                     block_rows: int = DEFAULT_BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nearest`, plus each query's mean distance to its ``k`` nearest ``ref`` points
    (the nearest included; computed in ``dtype``; ``k`` is capped at the points available)."""
    if len(ref) < (2 if exclude is not None else 1):
        raise ValueError("nearest: reference set too small")
    k = max(1, min(k, len(ref) - (1 if exclude is not None else 0)))
    idx = np.empty(len(query), dtype=np.int64)
    mean_k = np.empty(len(query), dtype=np.float64)
    for start, d in distance_blocks(query, ref, dtype, block_rows):
        if exclude is not None:
            d[np.arange(len(d)), np.asarray(exclude)[start : start + len(d)]] = np.inf
        idx[start : start + len(d)] = d.argmin(axis=1)
        if k > 1:
            mean_k[start : start + len(d)] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
    diff = np.asarray(query, np.float64) - np.asarray(ref, np.float64)[idx]
    distance = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return distance, idx, (mean_k if k > 1 else distance.copy())


def kth_neighbour_distance(x: np.ndarray, k: int, block_rows: int = DEFAULT_BLOCK_ROWS) -> np.ndarray:
    """Distance from each point of ``x`` to its k-th nearest *other* point of ``x`` (k ≥ 1).

    The point itself is excluded by index (not by distance), so exact duplicates in
    ``x`` count as neighbours at distance 0.
    """
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    out = np.empty(n, dtype=np.float64)
    for start, d in distance_blocks(x, x, np.float64, block_rows):
        rows = np.arange(len(d))
        d[rows, start + rows] = np.inf
        out[start : start + len(d)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out
