"""Partition vectors: brute force, the switch to sketches, and recall against brute force."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from specroute.cache import AnnConfig, SemanticIndex, SemanticIndexConfig, _vectors, ann_available

from tests.unit_vectors import at_similarity
from tests.unit_vectors import unit_rows as shared_unit_rows

DIM = 32


def unit_rows(count: int, seed: int = 0) -> np.ndarray:
    return shared_unit_rows(count, DIM, seed)


def perturbed(rows: np.ndarray, similarity: float, seed: int = 1) -> np.ndarray:
    """Copies of `rows` at exactly `similarity` to their source (a rotation by a fixed angle)."""
    return at_similarity(rows, similarity, seed)


def filled(count: int, ann: AnnConfig | None) -> SemanticIndex[int]:
    index: SemanticIndex[int] = SemanticIndex(SemanticIndexConfig(maxsize=10**6, ann=ann))
    for n, row in enumerate(unit_rows(count)):
        index.insert(n, row, partition="p", namespace="n")
    return index


def test_without_the_extra_a_large_partition_stays_brute_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_vectors, "ann_available", lambda: False)
    index = filled(200, AnnConfig(min_entries=50))
    assert index.approximate_partitions == 0
    queries = perturbed(unit_rows(200), 0.95)
    assert all(index.lookup("p", q, 0.94) is not None for q in queries)


def test_ann_none_never_switches() -> None:
    assert filled(200, None).approximate_partitions == 0


needs_numpy_2 = pytest.mark.skipif(not ann_available(), reason="needs numpy >= 2.0")


COUNT = 2000


@functools.cache
def graph_of(dtype: str) -> SemanticIndex[int]:
    return filled(COUNT, AnnConfig(min_entries=100, dtype=dtype))  # type: ignore[arg-type]


@needs_numpy_2
@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
@pytest.mark.parametrize("similarity", [0.95, 0.99])
def test_recall_against_brute_force_at_the_threshold(dtype: str, similarity: float) -> None:
    # The sketch filter is approximate: of the queries brute force answers at the
    # threshold, the store must answer at least 99% with the same entry.
    threshold = similarity - 0.02
    rows = unit_rows(COUNT)
    graph = graph_of(dtype)
    assert graph.approximate_partitions == 1
    queries = perturbed(rows[:200], similarity)
    truth = np.argmax(queries @ rows.T, axis=1)
    assert np.all(np.max(queries @ rows.T, axis=1) >= threshold)
    found = 0
    for query, expected in zip(queries, truth, strict=True):
        match = graph.lookup("p", query, threshold)
        found += match is not None and match.id == expected
    recall = found / len(queries)
    assert recall >= 0.99, f"recall {recall:.3f} ({dtype}, {similarity})"


@needs_numpy_2
def test_the_sketched_partition_deletes_replaces_and_empties() -> None:
    index = filled(300, AnnConfig(min_entries=100))
    rows = unit_rows(300)
    assert index.approximate_partitions == 1
    for n in range(0, 300, 2):
        assert index.delete(n)
    for n in range(300):
        match = index.lookup("p", rows[n], 0.99)
        if n % 2:
            assert match is not None
            assert match.id == n
        else:
            assert match is None or match.id != n
    index.insert(1, rows[0], partition="p", namespace="n")
    match = index.lookup("p", rows[0], 0.99)
    assert match is not None
    assert match.id == 1
    for n in range(1, 300, 2):
        index.delete(n)
    assert len(index) == 0
    assert index.partitions == 0


@needs_numpy_2
def test_recall_holds_under_churn_at_a_full_cache() -> None:
    # A full cache removes one entry per insert: the store must not decay.
    index: SemanticIndex[int] = SemanticIndex(
        SemanticIndexConfig(maxsize=500, ann=AnnConfig(min_entries=100))
    )
    rows = unit_rows(3000)
    for n, row in enumerate(rows):
        index.insert(n, row, partition="p", namespace="n")
    assert len(index) == 500
    queries = perturbed(rows[-500:], 0.95)
    found = sum(
        (match := index.lookup("p", q, 0.93)) is not None and match.id == n
        for n, q in enumerate(queries, 2500)
    )
    assert found / 500 >= 0.99


@needs_numpy_2
def test_the_switch_moves_every_row_at_once_and_keeps_the_ids() -> None:
    vectors: _vectors.PartitionVectors[int] = _vectors.PartitionVectors(
        DIM, ann=AnnConfig(min_entries=100)
    )
    rows = unit_rows(200)
    for n in range(99):
        vectors.set(n, rows[n])
    assert not vectors.approximate
    vectors.set(99, rows[99])
    assert vectors.approximate
    vectors.remove(0)
    vectors.remove(99)
    for n in range(100, 200):
        vectors.set(n, rows[n])
    assert len(vectors) == 198
    for n in range(1, 200):
        if n != 99:
            assert vectors.nearest(rows[n], 0.99) == (n, pytest.approx(1.0, abs=1e-5))
    assert vectors.nearest(rows[0], 0.99) is None
