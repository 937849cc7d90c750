"""SemanticCache: partitions, nearest match, compaction on removal, errors."""

from __future__ import annotations

import numpy as np
import pytest
from specroute.cache import (
    CacheKey,
    EmbeddingError,
    HashingEmbedder,
    SemanticCache,
    SemanticCacheConfig,
    make_key,
)

EMBEDDER = HashingEmbedder()


def k(text: str, step: str = "discovery", version: str = "1", namespace: str = "acme") -> CacheKey:
    return make_key(step, version, namespace, {"request": text})


def put_text(cache: SemanticCache, key: CacheKey, text: str) -> None:
    cache.put(key, EMBEDDER.encode([text])[0], text)


def test_identical_text_is_a_hit_with_its_similarity_and_key() -> None:
    cache = SemanticCache()
    put_text(cache, k("book a flight to Paris"), "book a flight to Paris")
    query = k("book a flight to Paris", namespace="acme")
    match = cache.search(query, EMBEDDER.encode(["book a flight to Paris"])[0], 1.0)
    assert match is not None
    assert match.key == k("book a flight to Paris")
    assert match.similarity == pytest.approx(1.0, abs=1e-5)
    assert match.value == "book a flight to Paris"


def test_the_nearest_entry_wins() -> None:
    cache = SemanticCache()
    for text in ["book a flight to Paris", "book a flight to Rome", "cancel my order"]:
        put_text(cache, k(text), text)
    query = EMBEDDER.encode(["please book a flight to Rome"])[0]
    match = cache.search(k("please book a flight to Rome"), query, 0.5)
    assert match is not None
    assert match.value == "book a flight to Rome"


@pytest.mark.parametrize("other", [{"step": "browsing"}, {"version": "2"}, {"namespace": "globex"}])
def test_a_hit_never_crosses_step_version_or_namespace(other: dict[str, str]) -> None:
    cache = SemanticCache()
    put_text(cache, k("hello"), "hello")
    assert cache.search(k("hello", **other), EMBEDDER.encode(["hello"])[0], 0.1) is None


def test_removal_keeps_every_other_entry_findable() -> None:
    cache = SemanticCache()
    texts = [f"request number {n} about topic {n * 7}" for n in range(40)]
    for text in texts:
        put_text(cache, k(text), text)
    for text in texts[::3]:
        assert cache.discard(k(text))
    for text in texts:
        match = cache.search(k(text), EMBEDDER.encode([text])[0], 0.999)
        if text in texts[::3]:
            assert match is None or match.key != k(text)
        else:
            assert match is not None
            assert match.key == k(text)
    assert cache.statistics().entries == len(texts) - len(texts[::3])


def test_eviction_drops_the_least_recently_used_across_partitions() -> None:
    cache = SemanticCache(SemanticCacheConfig(maxsize=2))
    put_text(cache, k("a", step="one"), "a")
    put_text(cache, k("b", step="two"), "b")
    assert cache.search(k("a", step="one"), EMBEDDER.encode(["a"])[0], 0.99) is not None
    put_text(cache, k("c", step="three"), "c")
    assert k("a", step="one") in cache
    assert k("b", step="two") not in cache
    stats = cache.statistics()
    assert (stats.entries, stats.partitions, stats.evictions) == (2, 2, 1)


def test_an_emptied_partition_is_dropped() -> None:
    cache = SemanticCache()
    put_text(cache, k("a"), "a")
    cache.discard(k("a"))
    assert cache.statistics().partitions == 0
    assert cache.search(k("a"), EMBEDDER.encode(["a"])[0], 0.5) is None


def test_zero_vector_is_refused() -> None:
    cache = SemanticCache()
    with pytest.raises(EmbeddingError, match=r"norm 0\.0"):
        cache.put(k("a"), np.zeros(8, dtype=np.float32), "a")


def test_a_vector_of_another_dimension_is_refused_with_a_fix() -> None:
    cache = SemanticCache()
    put_text(cache, k("a"), "a")
    with pytest.raises(EmbeddingError, match="bump the step's cache version"):
        cache.search(k("b"), np.ones(8, dtype=np.float32), 0.5)


def test_growth_beyond_the_first_block_keeps_vectors() -> None:
    cache = SemanticCache()
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((100, 16)).astype(np.float32)
    for n, vector in enumerate(vectors):
        cache.put(make_key("s", "1", "n", {"n": n}), vector, n)
    for n, vector in enumerate(vectors):
        match = cache.search(make_key("s", "1", "n", {"n": -1}), vector, 0.999)
        assert match is not None
        assert match.value == n


def test_one_tenants_traffic_never_evicts_a_quiet_tenants_entries() -> None:
    cache = SemanticCache(SemanticCacheConfig(maxsize=50))
    put_text(cache, k("quiet request", namespace="quiet"), "quiet request")
    for n in range(200):
        text = f"busy request {n}"
        put_text(cache, k(text, namespace="busy"), text)
    assert k("quiet request", namespace="quiet") in cache
    assert cache.statistics().evictions == 151


def test_namespace_maxsize_bounds_each_tenant() -> None:
    cache = SemanticCache(SemanticCacheConfig(namespace_maxsize=3))
    for namespace in ("a", "b"):
        for n in range(5):
            put_text(cache, k(f"request {n}", namespace=namespace), f"request {n}")
    assert len(cache) == 6
    assert k("request 1", namespace="a") not in cache
    assert k("request 2", namespace="a") in cache
    assert cache.statistics().evictions == 4


def test_a_replaced_entry_keeps_one_vector() -> None:
    cache = SemanticCache()
    put_text(cache, k("a"), "a")
    cache.put(k("a"), EMBEDDER.encode(["b"])[0], "b")
    assert len(cache) == 1
    match = cache.search(k("b"), EMBEDDER.encode(["b"])[0], 0.999)
    assert match is not None
    assert match.value == "b"
