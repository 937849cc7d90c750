"""Single flight across processes (`cache/_redis_flight.py`) against a real redis-server: one
computation per key among workers, hand-offs and their TTL, failures never handed off, locks
renewed while computing and freed by a dead or cancelled holder, and an outage computing
locally. Each `RedisFlight` (or `RedisCache`) here stands for one worker process."""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING

import pytest
import trio
from specroute.cache import ComputationFailedError, RedisCacheConfig, open_redis
from specroute.cache._redis_client import open_passing_nursery
from specroute.cache._redis_codec import TypeRegistry
from specroute.cache._redis_flight import RedisFlight

from tests.cache.test_contract import miss_for
from tests.cache.test_redis_cache import redis_cache

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from specroute.cache import RedisCache

    from tests.conftest import RedisServer


@contextlib.asynccontextmanager
async def open_flight(
    url: str, *, lock_ttl: float = 30.0, handoff_ttl: float = 5.0
) -> AsyncIterator[RedisFlight]:
    """One worker's cross-process single flight, on a connection of its own."""
    async with open_redis(url) as redis, open_passing_nursery() as nursery:
        yield RedisFlight(
            redis=redis,
            nursery=nursery,
            types=TypeRegistry.of(()),
            lock_ttl=lock_ttl,
            handoff_ttl=handoff_ttl,
        )


class Computation:
    """Counts its runs; each takes `seconds` (real time: Redis runs on the real clock)."""

    def __init__(self, result: object = "computed", seconds: float = 0.0) -> None:
        self.result = result
        self.seconds = seconds
        self.calls = 0
        # Set when it starts: its worker holds the lock by then (no race on a loaded machine).
        self.started = trio.Event()

    async def __call__(self) -> object:
        self.calls += 1
        self.started.set()
        await trio.sleep(self.seconds)
        return self.result


@pytest.fixture
def config(redis_prefix: str) -> RedisCacheConfig:
    return RedisCacheConfig(prefix=redis_prefix)


async def _answer() -> str:
    return "computed"


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


async def test_a_worker_that_comes_within_the_handoff_ttl_takes_the_result(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    first, late = Computation({"route": "billing"}), Computation("computed again")
    async with open_flight(redis_server.url) as one, open_flight(redis_server.url) as two:
        assert await one.run(lock, handoff, first) == {"route": "billing"}
        # The first worker has not stored it yet: the second must not compute it again.
        assert await two.run(lock, handoff, late) == {"route": "billing"}
        assert (first.calls, late.calls) == (1, 0)
        assert one.statistics().computed == 1
        assert two.statistics().handed_off == 1


async def test_after_the_handoff_ttl_a_worker_computes_again(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    first, later = Computation("first"), Computation("second")
    async with (
        open_flight(redis_server.url, handoff_ttl=0.1) as one,
        open_flight(redis_server.url, handoff_ttl=0.1) as two,
    ):
        await one.run(lock, handoff, first)
        async with open_redis(redis_server.url) as redis:
            with trio.fail_after(5):
                while await redis.run(lambda r: r.exists([handoff])):  # noqa: ASYNC110
                    await trio.sleep(0.02)  # until Redis expired the hand-off
        assert await two.run(lock, handoff, later) == "second"
        assert two.statistics().computed == 1
        assert two.statistics().handed_off == 0


async def test_a_result_that_cannot_be_shared_is_the_holders_and_the_waiter_computes(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    unshareable = Computation(object(), seconds=0.3)  # no encoding carries a bare object
    own = Computation("the waiter's own")
    results: dict[str, object] = {}
    async with open_flight(redis_server.url) as one, open_flight(redis_server.url) as two:

        async def holder() -> None:
            results["holder"] = await one.run(lock, handoff, unshareable)

        async def waiter() -> None:
            await unshareable.started.wait()  # the holder has the lock
            results["waiter"] = await two.run(lock, handoff, own)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            nursery.start_soon(waiter)
        assert results == {"holder": unshareable.result, "waiter": "the waiter's own"}
        assert two.statistics().failed_handoffs == 1
        assert two.statistics().handed_off == 0


async def test_a_handoff_this_version_cannot_read_is_computed_here(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    computation = Computation()
    async with open_redis(redis_server.url) as redis:
        # What another version of the library might write: `ok`, in a format not this one.
        await redis.run(
            lambda r: r.xadd(handoff, {"status": "ok", "result": b"\x80pickle-or-garbage"})
        )
    async with open_flight(redis_server.url) as flight:
        assert await flight.run(lock, handoff, computation) == "computed"
        assert computation.calls == 1
        assert flight.statistics().failed_handoffs == 1


async def test_a_lock_is_taken_to_expire_after_lock_ttl(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """So a holder that dies before its first renewal blocks the others no longer."""
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    async with (
        open_redis(redis_server.url) as redis,
        open_flight(redis_server.url, lock_ttl=30.0) as flight,
    ):

        async def lock_ttl_ms() -> int:
            return int(await redis.run(lambda r: r.pttl(lock)))

        assert 0 < await flight.run(lock, handoff, lock_ttl_ms) <= 30_000


async def test_a_lock_is_renewed_while_its_holder_computes(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """A computation far longer than `lock_ttl` keeps its lock: the waiter never computes."""
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    slow = Computation("slow result", seconds=2.0)
    own = Computation("duplicate work")
    results: list[object] = []
    # Renewed every 0.2 s: a renewal may run 0.4 s late on a loaded machine before it fails.
    async with (
        open_flight(redis_server.url, lock_ttl=0.6) as one,
        open_flight(redis_server.url, lock_ttl=0.6) as two,
    ):

        async def waiter() -> None:
            await slow.started.wait()
            results.append(await two.run(lock, handoff, own))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            results.append(await one.run(lock, handoff, slow))
    assert results == ["slow result", "slow result"]
    assert (slow.calls, own.calls) == (1, 0)


async def test_a_waiter_never_reads_a_failure_older_than_the_computation_it_waits_for(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"

    async def fails() -> str:
        raise LookupError("no route")

    slow = Computation("second try", seconds=0.5)
    results: list[object] = []
    async with (
        open_flight(redis_server.url) as one,
        open_flight(redis_server.url) as two,
        open_flight(redis_server.url) as three,
    ):
        with pytest.raises(LookupError):
            await one.run(lock, handoff, fails)  # leaves a `failed` mark for `handoff_ttl`

        async def waiter() -> None:
            await slow.started.wait()  # the second worker holds the lock
            results.append(await three.run(lock, handoff, Computation("duplicate work")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            results.append(await two.run(lock, handoff, slow))
        assert results == ["second try", "second try"]
        # Taking the lock cleared the first failure: the waiter saw only the second result.
        assert three.statistics().failed_handoffs == 0
        assert three.statistics().handed_off == 1


async def test_a_holder_whose_lock_was_taken_over_does_not_free_the_new_holders(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    async with open_redis(redis_server.url) as redis, open_flight(redis_server.url) as flight:

        async def lock_lost_meanwhile() -> str:
            # As if this holder's lock expired and another worker took the key.
            await redis.run(lambda r: r.set(lock, b"another-worker", px=30_000))
            return "mine"

        assert await flight.run(lock, handoff, lock_lost_meanwhile) == "mine"
        assert await redis.run(lambda r: r.get(lock)) == b"another-worker"


# coredis leaves the memory streams of a connection that failed to open for the garbage
# collector (its own leak, on the outage path only).
@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_while_redis_is_down_each_worker_computes_on_its_own(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    lock, handoff = f"{redis_prefix}:lock", f"{redis_prefix}:done"
    computation = Computation()
    async with open_flight(private_redis_server.url) as flight:
        private_redis_server.stop()
        assert await flight.run(lock, handoff, computation) == "computed"
        assert await flight.run(lock, handoff, computation) == "computed"
        assert computation.calls == 2
        assert flight.statistics().bypassed == 2
    gc.collect()  # the leaked streams warn here, under this test's filter, not in another test
