"""The contract every cache implementation passes (like cachetools' CacheTestMixin).

A subclass says how to build its cache and how to store into it; every test here then
runs against that implementation.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np
import pytest
from specroute.cache import (
    CacheKey,
    ExactCache,
    ExactCacheConfig,
    SemanticCache,
    SemanticCacheConfig,
    make_key,
)

_MISSING = object()


def k(n: int, namespace: str = "acme") -> CacheKey:
    return make_key("step", "1", namespace, {"n": n})


def vector_of(key: CacheKey, dimension: int = 64) -> np.ndarray[Any, Any]:
    """A deterministic, nearly orthogonal vector per key, so only the key itself matches."""
    seed = int.from_bytes(hashlib.blake2b(key.digest.encode(), digest_size=4).digest(), "big")
    return np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)


class CacheContract:
    """Tests every cache passes; subclasses define `make` and `put`."""

    cache_type: ClassVar[type]

    def make(self, maxsize: int) -> Any:
        raise NotImplementedError

    def put(self, cache: Any, key: CacheKey, value: Any) -> None:
        raise NotImplementedError

    def test_get_returns_what_was_put(self) -> None:
        cache = self.make(10)
        self.put(cache, k(1), {"a": [1, 2]})
        assert cache.get(k(1)) == {"a": [1, 2]}
        assert k(1) in cache
        assert len(cache) == 1

    def test_missing_key_gives_the_default(self) -> None:
        cache = self.make(10)
        assert cache.get(k(1), _MISSING) is _MISSING
        assert k(1) not in cache

    def test_put_replaces(self) -> None:
        cache = self.make(10)
        self.put(cache, k(1), "old")
        self.put(cache, k(1), "new")
        assert cache.get(k(1)) == "new"
        assert len(cache) == 1

    def test_least_recently_used_is_evicted_at_the_bound(self) -> None:
        cache = self.make(3)
        for n in range(3):
            self.put(cache, k(n), n)
        cache.get(k(0))
        self.put(cache, k(3), 3)
        assert len(cache) == 3
        assert k(1) not in cache
        assert all(k(n) in cache for n in (0, 2, 3))
        assert cache.statistics().evictions == 1

    def test_discard_and_clear(self) -> None:
        cache = self.make(10)
        self.put(cache, k(1), 1)
        self.put(cache, k(2), 2)
        assert cache.discard(k(1))
        assert not cache.discard(k(1))
        assert k(1) not in cache
        cache.clear()
        assert len(cache) == 0

    def test_namespaces_never_see_each_other(self) -> None:
        cache = self.make(10)
        self.put(cache, k(1, "acme"), "acme's")
        assert cache.get(k(1, "globex"), _MISSING) is _MISSING
        self.put(cache, k(1, "globex"), "globex's")
        assert cache.get(k(1, "acme")) == "acme's"

    def test_readers_cannot_change_the_stored_value(self) -> None:
        cache = self.make(10)
        value = {"tags": ["a"]}
        self.put(cache, k(1), value)
        value["tags"].append("producer")
        cache.get(k(1))["tags"].append("reader")
        assert cache.get(k(1)) == {"tags": ["a"]}

    def test_statistics_is_a_snapshot(self) -> None:
        cache = self.make(10)
        before = cache.statistics()
        self.put(cache, k(1), 1)
        assert before.entries == 0
        assert cache.statistics().entries == 1


class TestExactCache(CacheContract):
    def make(self, maxsize: int) -> ExactCache:
        return ExactCache(ExactCacheConfig(maxsize=maxsize))

    def put(self, cache: Any, key: CacheKey, value: Any) -> None:
        cache.put(key, value)


class TestExactCacheWithTTLAndBytes(CacheContract):
    def make(self, maxsize: int) -> ExactCache:
        config = ExactCacheConfig(maxsize=maxsize, max_bytes=10**6, ttl=3600)
        return ExactCache(config, timer=lambda: 0.0)

    def put(self, cache: Any, key: CacheKey, value: Any) -> None:
        cache.put(key, value)


class TestSemanticCache(CacheContract):
    def make(self, maxsize: int) -> SemanticCache:
        return SemanticCache(SemanticCacheConfig(maxsize=maxsize))

    def put(self, cache: Any, key: CacheKey, value: Any) -> None:
        cache.put(key, vector_of(key), value)


@pytest.mark.parametrize("n", range(3))
def test_contract_vectors_only_match_themselves(n: int) -> None:
    cache = SemanticCache()
    for m in range(3):
        cache.put(k(m), vector_of(k(m)), m)
    match = cache.search(k(n), vector_of(k(n)), 0.9)
    assert match is not None
    assert match.key == k(n)
