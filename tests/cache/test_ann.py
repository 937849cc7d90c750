"""AnnConfig settings, the sketch bound's guarantee, and the rows of the sketch store."""

from __future__ import annotations

import math

import numpy as np
import pytest
from specroute.cache import AnnConfig, CacheConfigError, ann_available
from specroute.cache._ann import SketchRows, _first_pass_words, _planes, bits_bound

from tests.unit_vectors import at_similarity
from tests.unit_vectors import unit_rows as shared_unit_rows

DIM = 384


def unit_rows(count: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return shared_unit_rows(count, dim, seed)


def test_numpy_2_makes_the_approximate_store_available() -> None:
    assert ann_available()


def test_defaults_are_float32_from_2000_entries_missing_at_most_1e_4() -> None:
    config = AnnConfig()
    assert (config.dtype, config.min_entries, config.miss_rate) == ("f32", 2_000, 1e-4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_entries": 1}, "`min_entries` must be an int >= 2, got 1"),
        ({"dtype": "f64"}, "`dtype` must be one of 'f32', 'f16', 'i8', got 'f64'"),
        ({"miss_rate": 0}, "`miss_rate` must be in (0, 1), got 0"),
        ({"miss_rate": 1.0}, "`miss_rate` must be in (0, 1), got 1.0"),
        ({"expansion_search": 0}, "`expansion_search` must be an int >= 1, got 0"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        AnnConfig(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize("name", ["connectivity", "expansion_add", "expansion_search"])
def test_the_old_hnsw_settings_still_construct_but_warn(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"`AnnConfig\({name}=\.\.\.\)` is ignored"):
        config = AnnConfig(**{name: 64})  # type: ignore[arg-type]
    assert getattr(config, name) == 64


def test_the_bound_is_the_binomial_quantile_of_the_angle() -> None:
    # At 0.95 a bit differs with p = acos(0.95) / pi = 0.1012.
    p = math.acos(0.95) / math.pi
    bound = bits_bound(256, 0.95, 1e-3)
    tail = sum(math.comb(256, k) * p**k * (1 - p) ** (256 - k) for k in range(bound + 1, 257))
    below = sum(math.comb(256, k) * p**k * (1 - p) ** (256 - k) for k in range(bound, 257))
    assert tail <= 1e-3 < below
    assert bits_bound(256, 0.99, 1e-3) < bound < bits_bound(256, 0.85, 1e-3)


@pytest.mark.parametrize("similarity", [0.85, 0.95])
def test_pairs_at_the_threshold_exceed_the_bound_about_as_often_as_stated(
    similarity: float,
) -> None:
    # The guarantee rests on Charikar's law (a bit differs with probability angle / pi) for
    # the planes actually drawn; a wrong bit order or plane set breaks it here.
    rows = unit_rows(4000)
    queries = at_similarity(rows, similarity)
    planes = _planes(DIM)
    differing = np.sum((rows @ planes > 0) != (queries @ planes > 0), axis=1)
    expected = 256 * math.acos(similarity) / math.pi
    assert abs(float(np.mean(differing)) - expected) < 0.5
    over = float(np.mean(differing > bits_bound(256, similarity, 0.01)))
    assert over <= 0.02


def test_rows_append_replace_and_remove_by_moving_the_last() -> None:
    rows = unit_rows(5, dim=16)
    store = SketchRows.of(rows[:3], AnnConfig())
    store.append(rows[3])
    assert len(store) == 4
    store.remove(0)
    # Row 3 moved into row 0's place.
    np.testing.assert_array_equal(store.row(0), rows[3])
    store.replace(1, rows[4])
    np.testing.assert_array_equal(store.row(1), rows[4])
    assert [store.nearest(rows[n], 0.99) for n in (0, 4, 3, 2)] == [
        None,
        (1, pytest.approx(1.0)),
        (0, pytest.approx(1.0)),
        (2, pytest.approx(1.0)),
    ]


def test_growth_past_the_first_block_keeps_rows() -> None:
    rows = unit_rows(2100, dim=16)
    store = SketchRows.of(rows[:10], AnnConfig())
    for row in rows[10:]:
        store.append(row)
    for n in (0, 1023, 1024, 2099):
        np.testing.assert_array_equal(store.row(n), rows[n])


@pytest.mark.parametrize(
    ("dtype", "error", "row_bytes"),
    [("f32", 1e-6, 1536 + 36), ("f16", 1e-3, 768 + 36), ("i8", 1e-2, 384 + 36)],
)
def test_each_dtype_rounds_similarities_within_its_stated_error(
    dtype: str, error: float, row_bytes: int
) -> None:
    rows = unit_rows(500)
    store = SketchRows.of(rows, AnnConfig(dtype=dtype))  # type: ignore[arg-type]
    queries = at_similarity(rows, 0.9)
    worst = 0.0
    for n, query in enumerate(queries):
        found = store.nearest(query, 0.85)
        assert found is not None
        assert found[0] == n
        worst = max(worst, abs(found[1] - float(rows[n] @ query)))
    assert worst <= error
    assert store.bytes_per_row == row_bytes


def test_a_query_far_from_every_row_finds_nothing() -> None:
    rows = unit_rows(1000)
    store = SketchRows.of(rows, AnnConfig())
    assert store.nearest(unit_rows(1, seed=9)[0], 0.9) is None


@pytest.mark.parametrize("similarity", [0.85, 0.95])
def test_both_first_passes_find_the_true_neighbour(similarity: float) -> None:
    # At 0.83 the first pass reads 128 bits, at 0.93 only 64.
    assert _first_pass_words(similarity - 0.02, 5e-5) == (2 if similarity < 0.9 else 1)
    rows = unit_rows(2000)
    store = SketchRows.of(rows, AnnConfig())
    queries = at_similarity(rows[:200], similarity)
    found = [store.nearest(query, similarity - 0.02) for query in queries]
    assert [hit[0] if hit else None for hit in found] == list(range(200))
