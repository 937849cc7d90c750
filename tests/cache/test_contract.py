"""The contracts every cache implementation passes (like cachetools' CacheTestMixin).

Two layers: the stores (`ExactCache`, `SemanticCache`), where a subclass of `CacheContract`
says how to build its cache and how to store into it; and the `StepCache` protocol the
engine calls, where every test runs against the in-memory `Cache` and against `DictCache`
(`tests/cache/dict_cache.py`), a minimal second implementation.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest
import trio
import trio.testing
from specroute.cache import (
    CacheHit,
    CacheKey,
    CacheMiss,
    CacheOptions,
    ComputationFailedError,
    ExactCache,
    ExactCacheConfig,
    SemanticCache,
    SemanticCacheConfig,
    StepCache,
    StepIdentity,
    make_key,
    open_cache,
)
from specroute.routes import Route

from tests.cache.dict_cache import open_dict_cache

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from typing import TypeAlias

    OpenStepCache: TypeAlias = Callable[[], AbstractAsyncContextManager[StepCache]]

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


# The StepCache contract (numbered as in the docstring of `cache/_protocol.py`).

# Annotated, so mypy (run by tests/cache/test_protocol.py) checks both are StepCaches.
IMPLEMENTATIONS: dict[str, OpenStepCache] = {"Cache": open_cache, "DictCache": open_dict_cache}
OPTIONS = CacheOptions()


@pytest.fixture(params=list(IMPLEMENTATIONS.values()), ids=list(IMPLEMENTATIONS))
def open_step_cache(request: pytest.FixtureRequest) -> Callable[[], Any]:
    opener: Callable[[], Any] = request.param
    return opener


async def miss_for(cache: StepCache, n: int, namespace: str = "acme") -> CacheMiss:
    found = await cache.lookup(StepIdentity("step"), OPTIONS, namespace, {"n": n})
    assert isinstance(found, CacheMiss)
    return found


async def hit_for(cache: StepCache, n: int, namespace: str = "acme") -> CacheHit:
    found = await cache.lookup(StepIdentity("step"), OPTIONS, namespace, {"n": n})
    assert isinstance(found, CacheHit)
    return found


async def test_a_miss_then_store_then_an_exact_hit(open_step_cache: OpenStepCache) -> None:
    async with open_step_cache() as cache:
        miss = await miss_for(cache, 1)
        await cache.store(miss, {"answer": 42}, seconds=1.5)
        hit = await hit_for(cache, 1)
        await miss_for(cache, 2)
        stats = cache.statistics()
    assert (hit.value, hit.kind, hit.similarity) == ({"answer": 42}, "exact", None)
    assert hit.key == hit.matched_key == miss.key
    assert (stats.hits, stats.exact_hits, stats.misses, stats.stores) == (1, 1, 2, 1)
    assert stats.entries == 1


async def test_the_value_is_the_steps_own(open_step_cache: OpenStepCache) -> None:
    """1. A router's hit is its `Route`, not a record of the engine's."""
    async with open_step_cache() as cache:
        await cache.store(await miss_for(cache, 1), Route("billing"), seconds=0.3)
        hit = await hit_for(cache, 1)
    assert type(hit.value) is Route
    assert hit.value == Route("billing")


async def test_values_are_copied_in_and_out(open_step_cache: OpenStepCache) -> None:
    """1. Neither the producer nor a reader can change what a later lookup gets."""
    async with open_step_cache() as cache:
        value = {"tags": ["a"]}
        await cache.store(await miss_for(cache, 1), value, seconds=1.0)
        value["tags"].append("changed by the producer")
        (await hit_for(cache, 1)).value["tags"].append("changed by a reader")
        assert (await hit_for(cache, 1)).value == {"tags": ["a"]}


@pytest.mark.parametrize("seconds", [0.0, 0.001, 12.5, 3600.0])
async def test_seconds_round_trip(open_step_cache: OpenStepCache, seconds: float) -> None:
    """2. A hit reports the seconds stored with its value."""
    async with open_step_cache() as cache:
        await cache.store(await miss_for(cache, 1), "value", seconds=seconds)
        assert (await hit_for(cache, 1)).seconds == seconds


async def test_storing_again_replaces(open_step_cache: OpenStepCache) -> None:
    async with open_step_cache() as cache:
        await cache.store(await miss_for(cache, 1), "old", seconds=1.0)
        await cache.store(await miss_for(cache, 2), "other", seconds=2.0)
        miss = CacheMiss(key=(await hit_for(cache, 1)).key, exact=True, embedding=None)
        await cache.store(miss, "new", seconds=3.0)
        hit = await hit_for(cache, 1)
    assert (hit.value, hit.seconds) == ("new", 3.0)


async def test_namespaces_are_hard_partitions(open_step_cache: OpenStepCache) -> None:
    """3. The same inputs in another namespace (or prompt version) miss."""
    async with open_step_cache() as cache:
        await cache.store(await miss_for(cache, 1, "acme"), "acme's", seconds=1.0)
        await cache.store(await miss_for(cache, 1, "globex"), "globex's", seconds=2.0)
        other_version = await cache.lookup(
            StepIdentity("step"), CacheOptions(version="2"), "acme", {"n": 1}
        )
        assert isinstance(other_version, CacheMiss)
        assert (await hit_for(cache, 1, "acme")).value == "acme's"
        assert (await hit_for(cache, 1, "globex")).value == "globex's"


async def test_compute_once_stores_nothing(open_step_cache: OpenStepCache) -> None:
    """4. Only `store` stores."""

    async def compute() -> str:
        return "computed"

    async with open_step_cache() as cache:
        miss = await miss_for(cache, 1)
        assert await cache.compute_once(miss.key, compute) == "computed"
        await miss_for(cache, 1)
        assert cache.statistics().stores == 0


async def test_a_failed_computation_is_never_stored(
    open_step_cache: OpenStepCache, autojump_clock: trio.testing.MockClock
) -> None:
    """4. A failure reaches the caller with its cause; the next caller computes afresh."""
    calls = 0

    async def fails_once() -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        if calls == 1:
            raise LookupError("no route")
        return "second try"

    async with open_step_cache() as cache:
        miss = await miss_for(cache, 1)
        with pytest.raises(ComputationFailedError) as info:
            await cache.compute_once(miss.key, fails_once)
        assert isinstance(info.value.__cause__, LookupError)
        again = await miss_for(cache, 1)
        assert await cache.compute_once(again.key, fails_once) == "second try"
        stats = cache.statistics()
    assert calls == 2
    assert (stats.stores, stats.entries, stats.hits) == (0, 0, 0)


async def test_concurrent_misses_share_one_computation(
    open_step_cache: OpenStepCache, autojump_clock: trio.testing.MockClock
) -> None:
    """4. Every concurrent miss gets the one computation's value."""
    calls = 0
    results: list[object] = []

    async def discover() -> list[str]:
        nonlocal calls
        calls += 1
        await trio.sleep(5)
        return ["route"]

    async with open_step_cache() as cache:

        async def caller() -> None:
            miss = await miss_for(cache, 1)
            results.append(await cache.compute_once(miss.key, discover))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(caller)
            await trio.sleep(1)
            assert cache.statistics().in_flight == 1
        assert cache.statistics().in_flight == 0
    assert calls == 1
    assert results == [["route"]] * 5
    assert trio.current_time() == pytest.approx(5)


async def test_statistics_is_a_snapshot(open_step_cache: OpenStepCache) -> None:
    async with open_step_cache() as cache:
        before = cache.statistics()
        await cache.store(await miss_for(cache, 1), 1, seconds=1.0)
    assert (before.misses, before.stores, before.entries) == (0, 0, 0)
