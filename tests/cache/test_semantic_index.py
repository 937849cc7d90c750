"""SemanticIndex: ids, partitions, LRU, each namespace's bound and its fair share."""

from __future__ import annotations

import numpy as np
import pytest
from specroute.cache import CacheConfigError, EmbeddingError, SemanticIndex, SemanticIndexConfig

DIM = 16
RNG = np.random.default_rng(3)


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def fill(index: SemanticIndex[str], namespace: str, count: int, start: int = 0) -> list[str]:
    ids = [f"{namespace}-{n}" for n in range(start, start + count)]
    evicted = []
    for n, id_ in enumerate(ids, start):
        evicted += index.insert(id_, vector(n), partition=f"p-{namespace}", namespace=namespace)
    return evicted


def test_insert_lookup_delete_by_id() -> None:
    index: SemanticIndex[str] = SemanticIndex()
    index.insert("a", vector(1), partition="p", namespace="n")
    index.insert("b", vector(2), partition="p", namespace="n")
    match = index.lookup("p", vector(2) * 3, 0.999)
    assert match is not None
    assert (match.id, match.similarity) == ("b", pytest.approx(1.0, abs=1e-5))
    assert index.lookup("other", vector(2), 0.1) is None
    assert index.delete("b")
    assert not index.delete("b")
    assert "b" not in index
    assert len(index) == 1
    assert index.lookup("p", vector(2), 0.999) is None


def test_reinserting_an_id_replaces_its_vector_and_may_move_it() -> None:
    index: SemanticIndex[str] = SemanticIndex()
    index.insert("a", vector(1), partition="p", namespace="n")
    index.insert("a", vector(2), partition="q", namespace="m")
    assert len(index) == 1
    assert index.lookup("p", vector(1), 0.1) is None
    assert index.namespace_size("n") == 0
    match = index.lookup("q", vector(2), 0.999)
    assert match is not None
    assert match.id == "a"


def test_past_maxsize_the_least_recently_used_goes_and_is_returned() -> None:
    index: SemanticIndex[str] = SemanticIndex(SemanticIndexConfig(maxsize=3))
    assert fill(index, "n", 3) == []
    assert index.touch("n-0")
    assert index.insert("n-9", vector(9), partition="p-n", namespace="n") == ["n-1"]
    assert index.lookup("p-n", vector(2), 0.99) is not None
    assert index.insert("n-8", vector(8), partition="p-n", namespace="n") == ["n-0"]


def test_a_tenant_at_its_fair_share_never_loses_entries_to_anothers_traffic() -> None:
    index: SemanticIndex[str] = SemanticIndex(SemanticIndexConfig(maxsize=100))
    quiet = fill(index, "quiet", 10)
    assert quiet == []
    # The busy tenant's traffic fills the cache and keeps coming; the quiet tenant (10
    # entries, under its fair share of 50) keeps every one, and it used them least recently.
    evicted = fill(index, "busy", 500)
    assert len(evicted) == 410
    assert all(id_.startswith("busy-") for id_ in evicted)
    assert index.namespace_size("quiet") == 10
    assert index.namespace_size("busy") == 90


def test_two_equal_tenants_share_the_cache_evenly() -> None:
    index: SemanticIndex[str] = SemanticIndex(SemanticIndexConfig(maxsize=10))
    for n in range(100):
        for namespace in ("a", "b"):
            index.insert(f"{namespace}{n}", vector(n), partition=namespace, namespace=namespace)
    assert (index.namespace_size("a"), index.namespace_size("b")) == (5, 5)


def test_namespace_maxsize_bounds_each_namespace_on_its_own() -> None:
    index: SemanticIndex[str] = SemanticIndex(SemanticIndexConfig(namespace_maxsize=5))
    evicted = fill(index, "a", 8)
    fill(index, "b", 3)
    assert evicted == ["a-0", "a-1", "a-2"]
    assert (index.namespace_size("a"), index.namespace_size("b"), len(index)) == (5, 3, 8)


def test_evict_applies_the_fair_share_rule() -> None:
    index: SemanticIndex[str] = SemanticIndex()
    fill(index, "big", 4)
    fill(index, "small", 2)
    # A tie goes to the namespace whose least recently used entry is older.
    assert index.evict(3) == ["big-0", "big-1", "big-2"]
    assert index.evict(10) == ["small-0", "big-3", "small-1"]
    assert len(index) == 0
    assert index.partitions == 0


def test_a_wrong_dimension_or_zero_vector_is_refused() -> None:
    index: SemanticIndex[str] = SemanticIndex()
    index.insert("a", vector(1), partition="p", namespace="n")
    with pytest.raises(EmbeddingError, match=r"dimension 8, but its partition holds .* 16"):
        index.insert("b", np.ones(8), partition="p", namespace="n")
    with pytest.raises(EmbeddingError, match="dimension 8"):
        index.lookup("p", np.ones(8), 0.5)
    with pytest.raises(EmbeddingError, match=r"norm 0\.0"):
        index.insert("c", np.zeros(16), partition="p", namespace="n")
    assert index.dimension("p") == 16
    assert index.dimension("q") is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maxsize": 0}, "`maxsize` must be an int >= 1, got 0"),
        ({"namespace_maxsize": 0}, "`namespace_maxsize` must be an int >= 1, got 0"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, int], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        SemanticIndexConfig(**settings)
    assert str(info.value) == message
