"""`RedisCache` against a real redis-server: the `StepCache` contract, keys, TTL, bounds,
faults, semantic sync between two caches, and single flight across caches."""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from specroute.cache import (
    CacheHit,
    CacheMiss,
    CacheOptions,
    ComputationFailedError,
    RedisCacheConfig,
    StepIdentity,
    open_redis,
    open_redis_cache,
)
from specroute.routes import Route

from tests.cache.test_contract import (
    hit_for,
    miss_for,
    test_a_miss_then_store_then_an_exact_hit,
    test_compute_once_stores_nothing,
    test_namespaces_are_hard_partitions,
    test_seconds_round_trip,
    test_statistics_is_a_snapshot,
    test_storing_again_replaces,
    test_the_value_is_the_steps_own,
    test_values_are_copied_in_and_out,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from specroute.cache import RedisCache

    from tests.conftest import RedisServer

# The contract tests that need no virtual clock (a Redis round trip is real time), run here
# against `RedisCache` through the `open_step_cache` fixture below.
__all__ = [
    "test_a_miss_then_store_then_an_exact_hit",
    "test_compute_once_stores_nothing",
    "test_namespaces_are_hard_partitions",
    "test_seconds_round_trip",
    "test_statistics_is_a_snapshot",
    "test_storing_again_replaces",
    "test_the_value_is_the_steps_own",
    "test_values_are_copied_in_and_out",
]


@contextlib.asynccontextmanager
async def redis_cache(url: str, config: RedisCacheConfig) -> AsyncIterator[RedisCache]:
    async with open_redis(url) as redis, open_redis_cache(redis, config=config) as cache:
        yield cache


@pytest.fixture
def open_step_cache(redis_server: RedisServer, redis_prefix: str) -> Callable[[], Any]:
    return lambda: redis_cache(redis_server.url, RedisCacheConfig(prefix=redis_prefix))


@pytest.fixture
def config(redis_prefix: str) -> RedisCacheConfig:
    return RedisCacheConfig(prefix=redis_prefix)


@attrs.frozen
class Ticket:
    subject: str
    tags: tuple[str, ...]


async def test_a_hit_is_shared_by_every_cache_on_the_server(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    async with redis_cache(redis_server.url, config) as one:
        await one.store(await miss_for(one, 1), {"answer": [1, 2.5, None]}, seconds=2.0)
    async with redis_cache(redis_server.url, config) as other:
        hit = await hit_for(other, 1)
    assert (hit.value, hit.seconds) == ({"answer": [1, 2.5, None]}, 2.0)


async def test_depends_on_keeps_models_apart(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    mini = CacheOptions(depends_on={"model": "gpt-4o-mini"})
    large = CacheOptions(depends_on={"model": "gpt-4o"})
    async with redis_cache(redis_server.url, config) as cache:
        miss = await cache.lookup(StepIdentity("step"), mini, "acme", {"n": 1})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "mini's answer", seconds=1.0)
        assert isinstance(
            await cache.lookup(StepIdentity("step"), mini, "acme", {"n": 1}), CacheHit
        )
        assert isinstance(
            await cache.lookup(StepIdentity("step"), large, "acme", {"n": 1}), CacheMiss
        )


async def test_allowed_classes_round_trip_and_others_are_not_stored(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = RedisCacheConfig(prefix=redis_prefix, types=(Ticket,))
    async with redis_cache(redis_server.url, config) as cache:
        await cache.store(await miss_for(cache, 1), Ticket("refund", ("a", "b")), seconds=1.0)
        await cache.store(await miss_for(cache, 2), object(), seconds=1.0)
        assert (await hit_for(cache, 1)).value == Ticket("refund", ("a", "b"))
        await miss_for(cache, 2)
        assert cache.shared_statistics().uncacheable == 1


async def test_an_undecodable_value_is_a_miss(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    async with redis_cache(redis_server.url, config) as cache:
        miss = await miss_for(cache, 1)
        await cache.store(miss, "fine", seconds=1.0)
        async with open_redis(redis_server.url) as redis:
            names = await redis.run(lambda r: r.keys(f"{{{config.prefix}:acme}}:x:*"))
            (name,) = [n for n in names if not n.endswith(b":lru")]
            await redis.run(lambda r: r.set(name, b"\x80pickle-or-garbage"))
        await miss_for(cache, 1)
        assert cache.shared_statistics().decode_errors == 1


async def test_entries_expire_with_the_ttl(redis_server: RedisServer, redis_prefix: str) -> None:
    # Long enough that a busy machine still reads the entry back before it expires.
    config = RedisCacheConfig(prefix=redis_prefix, ttl=1.0)
    async with redis_cache(redis_server.url, config) as cache:
        await cache.store(await miss_for(cache, 1), "soon gone", seconds=1.0)
        await hit_for(cache, 1)
        await trio.sleep(1.1)
        await miss_for(cache, 1)
        assert cache.statistics().expirations == 1


async def test_the_bound_is_per_namespace(redis_server: RedisServer, redis_prefix: str) -> None:
    config = RedisCacheConfig(prefix=redis_prefix, max_entries=3)
    async with redis_cache(redis_server.url, config) as cache:
        await cache.store(await miss_for(cache, 0, "globex"), "kept", seconds=1.0)
        for n in range(5):
            await cache.store(await miss_for(cache, n), n, seconds=1.0)
        await hit_for(cache, 0, "globex")
        for n in (0, 1):
            await miss_for(cache, n)
        for n in (2, 3, 4):
            await hit_for(cache, n)
        assert cache.statistics().evictions == 2


# coredis leaves the memory streams of a connection that failed to open for the garbage
# collector (its own leak, on the outage path only).
CONNECTION_FAILURES_LEAK = pytest.mark.filterwarnings(
    "ignore:Unclosed <MemoryObject:ResourceWarning"
)


@CONNECTION_FAILURES_LEAK
async def test_redis_down_bypasses_and_recovers(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    config = RedisCacheConfig(prefix=redis_prefix)
    async with redis_cache(private_redis_server.url, config) as cache:
        await cache.store(await miss_for(cache, 1), "before", seconds=1.0)
        private_redis_server.stop()
        await miss_for(cache, 1)  # bypassed: a miss, not an error
        await cache.store(await miss_for(cache, 2), "lost", seconds=1.0)
        computed = await cache.compute_once((await miss_for(cache, 3)).key, _answer)
        assert computed == "computed"
        bypassed = cache.shared_statistics().bypassed
        assert bypassed >= 4
        private_redis_server.start()  # restarted empty (no persistence)
        await miss_for(cache, 1)
        await cache.store(await miss_for(cache, 1), "after", seconds=1.0)
        assert (await hit_for(cache, 1)).value == "after"
        assert cache.shared_statistics().bypassed == bypassed
    gc.collect()  # the leaked streams warn here, under this test's filter, not in another test


async def _answer() -> str:
    return "computed"


async def test_a_semantic_store_on_one_worker_hits_on_another(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    options = CacheOptions(exact=False, semantic="question")
    question = {"question": "How do I reset my password?"}
    async with (
        redis_cache(redis_server.url, config) as writer,
        redis_cache(redis_server.url, config) as reader,
    ):
        miss = await writer.lookup(StepIdentity("faq"), options, "acme", question)
        assert isinstance(miss, CacheMiss)
        assert isinstance(
            await reader.lookup(StepIdentity("faq"), options, "acme", question), CacheMiss
        )
        await writer.store(miss, Route("account"), seconds=0.5)
        with trio.fail_after(2):
            while reader.statistics().semantic_entries == 0:  # noqa: ASYNC110  # polls Redis
                await trio.sleep(0.005)
        near = {"question": "how do I reset my password"}
        hit = await reader.lookup(StepIdentity("faq"), options, "acme", near)
    assert isinstance(hit, CacheHit)
    assert (hit.kind, hit.value, hit.matched_key) == ("semantic", Route("account"), miss.key)


async def test_a_late_worker_catches_up_and_expired_entries_leave(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = RedisCacheConfig(prefix=redis_prefix, ttl=1.5)
    options = CacheOptions(exact=False, semantic="question")
    question = {"question": "Where is my order?"}
    async with redis_cache(redis_server.url, config) as writer:
        miss = await writer.lookup(StepIdentity("faq"), options, "acme", question)
        assert isinstance(miss, CacheMiss)
        await writer.store(miss, "in transit", seconds=0.5)
    async with redis_cache(redis_server.url, config) as late:
        with trio.fail_after(2):
            while late.statistics().semantic_entries == 0:  # noqa: ASYNC110  # polls Redis
                await trio.sleep(0.005)
        assert isinstance(
            await late.lookup(StepIdentity("faq"), options, "acme", question), CacheHit
        )
        await trio.sleep(1.6)
        assert isinstance(
            await late.lookup(StepIdentity("faq"), options, "acme", question), CacheMiss
        )
        assert late.statistics().semantic_entries == 0


async def test_concurrent_misses_in_two_workers_compute_once(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    calls = 0
    results: list[object] = []

    async def discover() -> list[str]:
        nonlocal calls
        calls += 1
        await trio.sleep(0.3)
        return ["route"]

    async with (
        redis_cache(redis_server.url, config) as one,
        redis_cache(redis_server.url, config) as two,
    ):

        async def caller(cache: RedisCache) -> None:
            miss = await miss_for(cache, 1)
            results.append(await cache.compute_once(miss.key, discover))

        async with trio.open_nursery() as nursery:
            for cache in (one, two, one, two):
                nursery.start_soon(caller, cache)
        flights = [one.shared_statistics().flight, two.shared_statistics().flight]
    assert calls == 1
    assert results == [["route"]] * 4
    assert sum(f.computed for f in flights) == 1
    assert sum(f.handed_off for f in flights) == 1


async def test_a_failure_is_not_handed_off_and_the_other_worker_computes(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    calls = 0

    async def fails_first() -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(0.2)
        if calls == 1:
            raise LookupError("no route")
        return "second try"

    outcomes: list[object] = []
    async with (
        redis_cache(redis_server.url, config) as one,
        redis_cache(redis_server.url, config) as two,
    ):

        async def caller(cache: RedisCache, delay: float) -> None:
            await trio.sleep(delay)
            miss = await miss_for(cache, 1)
            try:
                outcomes.append(await cache.compute_once(miss.key, fails_first))
            except ComputationFailedError as failed:
                outcomes.append(type(failed.__cause__))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller, one, 0.0)
            nursery.start_soon(caller, two, 0.05)
        assert one.statistics().stores == two.statistics().stores == 0
    assert calls == 2
    assert sorted(map(str, outcomes)) == sorted(map(str, [LookupError, "second try"]))


async def test_a_dead_holders_lock_frees_after_its_ttl(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = RedisCacheConfig(prefix=redis_prefix, lock_ttl=0.3)
    async with redis_cache(redis_server.url, config) as cache:
        miss = await miss_for(cache, 1)
        async with open_redis(redis_server.url) as redis:
            lock = f"{{{redis_prefix}:acme}}:lock:{miss.key.digest}"
            # A worker that took the lock and died: nobody renews or releases it.
            await redis.run(lambda r: r.set(lock, b"dead-worker", px=300))
        start = trio.current_time()
        assert await cache.compute_once(miss.key, _answer) == "computed"
        waited = trio.current_time() - start
    assert 0.2 < waited < 2.0


async def test_a_users_exception_leaves_the_blocks_unwrapped(
    redis_server: RedisServer, config: RedisCacheConfig
) -> None:
    with pytest.raises(KeyError) as info:
        async with redis_cache(redis_server.url, config):
            raise KeyError("mine")
    assert type(info.value) is KeyError


async def test_an_evicted_semantic_entry_leaves_every_workers_index(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = RedisCacheConfig(prefix=redis_prefix, max_entries=1)
    options = CacheOptions(exact=False, semantic="question")
    first = {"question": "Where is my order?"}
    second = {"question": "Cancel my subscription"}

    async def lookup(cache: RedisCache, inputs: dict[str, str]) -> CacheHit | CacheMiss:
        return await cache.lookup(StepIdentity("faq"), options, "acme", inputs)

    async with (
        redis_cache(redis_server.url, config) as writer,
        redis_cache(redis_server.url, config) as reader,
    ):
        for inputs, value in ((first, "in transit"), (second, "cancelled")):
            miss = await lookup(writer, inputs)
            assert isinstance(miss, CacheMiss)
            await writer.store(miss, value, seconds=0.5)  # the second evicts the first
            with trio.fail_after(2):
                while not isinstance(await lookup(reader, inputs), CacheHit):  # noqa: ASYNC110
                    await trio.sleep(0.005)  # until the stream reached the reader
        assert isinstance(await lookup(reader, first), CacheMiss)
        assert reader.statistics().semantic_entries == 1
        assert writer.statistics().evictions == 1


async def test_a_cancelled_holder_frees_its_waiters_at_once(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = RedisCacheConfig(prefix=redis_prefix, lock_ttl=30.0)
    started = trio.Event()

    async def never_finishes() -> str:
        started.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with (
        redis_cache(redis_server.url, config) as holder,
        redis_cache(redis_server.url, config) as waiter,
    ):
        key = (await miss_for(holder, 1)).key
        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder.compute_once, key, never_finishes)
            await started.wait()
            nursery.cancel_scope.cancel()  # the holder's branch lost: nobody wants its value
        with trio.fail_after(5):  # far below the lock's 30 s
            assert await waiter.compute_once(key, _answer) == "computed"
        assert holder.statistics().in_flight == 0
