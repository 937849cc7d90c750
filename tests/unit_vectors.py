"""Random unit vectors, and copies of them at an exact similarity (known true neighbours)."""

from __future__ import annotations

import numpy as np


def unit_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """`count` random unit rows of `dim` float32s."""
    rows = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def at_similarity(rows: np.ndarray, similarity: float, seed: int = 1) -> np.ndarray:
    """Copies of `rows` at exactly `similarity` to their source (a rotation by a fixed angle
    towards random noise orthogonal to each row)."""
    noise = np.random.default_rng(seed).standard_normal(rows.shape).astype(np.float32)
    noise -= np.sum(noise * rows, axis=1, keepdims=True) * rows
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (similarity * rows + np.sqrt(1 - similarity**2) * noise).astype(np.float32)
