"""Semantic entries shared through Redis (`cache/_redis_semantic.py`) against a real
redis-server: each worker's local index follows the stream of stores and removals, catches
up when it opens, skips what is gone, counts what is damaged, and waits out an outage."""

from __future__ import annotations

import contextlib
import gc
import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import trio
from specroute.cache import (
    CacheHit,
    CacheMiss,
    CacheOptions,
    RedisCacheConfig,
    StepIdentity,
    make_key,
    open_redis,
)
from specroute.cache._redis_client import open_passing_nursery
from specroute.cache._redis_semantic import SyncedSemanticIndex, key_from_json, key_to_json
from specroute.routes import Route

from tests.cache.test_redis_cache import redis_cache

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from specroute.cache import CacheKey, RedisCache, RedisConnection

    from tests.conftest import RedisServer

DIMENSION = 8


def unit(axis: int) -> np.ndarray:
    """A unit vector along `axis`: one at a right angle to every other axis's."""
    row: np.ndarray = np.eye(DIMENSION, dtype=np.float32)[axis]
    return row


def key(n: int) -> CacheKey:
    """Keys of one step in one namespace: one partition of the index."""
    return make_key("faq", "1", "acme", {"question": n})


class Worker:
    """Another worker's writes, done by hand: entry hashes, and events on the stream."""

    def __init__(self, redis: RedisConnection, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.stream = f"{prefix}:v:stream"

    def entry_name(self, namespace: str, digest: str) -> str:
        return f"{self.prefix}:{namespace}:v:{digest}"

    async def put(
        self, stored: CacheKey, vector: np.ndarray, *, raw_key: bytes | None = None
    ) -> None:
        name = self.entry_name(stored.namespace, stored.digest)
        fields = {
            "k": key_to_json(stored) if raw_key is None else raw_key,
            "vec": vector.astype("<f4").tobytes(),
            "val": b"the value",
        }
        await self.redis.run(lambda r: r.hset(name, fields))
        await self.event("put", stored)

    async def event(self, op: str, about: CacheKey) -> None:
        fields = {"op": op, "ns": about.namespace, "d": about.digest}
        await self.redis.run(lambda r: r.xadd(self.stream, fields))


@contextlib.asynccontextmanager
async def following(
    url: str, prefix: str
) -> AsyncIterator[tuple[SyncedSemanticIndex, Worker, RedisConnection]]:
    """This worker's index following the stream, another worker's writes, and this
    worker's connection."""
    async with (
        open_redis(url) as mine,
        open_redis(url) as theirs,
        open_passing_nursery() as nursery,
    ):
        other = Worker(theirs, prefix)
        index = SyncedSemanticIndex(redis=mine, stream=other.stream, maxsize=100)
        nursery.start_soon(index.follow, other.entry_name)
        yield index, other, mine


async def applied(index: SyncedSemanticIndex, count: int) -> None:
    with trio.fail_after(5):
        while index.applied < count:  # noqa: ASYNC110  # the index polls Redis
            await trio.sleep(0.005)


@pytest.fixture
def config(redis_prefix: str) -> RedisCacheConfig:
    return RedisCacheConfig(prefix=redis_prefix)


def test_a_key_round_trips_through_json() -> None:
    assert key_from_json(key_to_json(key(1))) == key(1)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not json", ValueError),
        (b"[1, 2]", TypeError),
        (json.dumps({"step": "faq"}).encode(), KeyError),
    ],
)
def test_a_malformed_key_raises_what_the_reader_catches(data: bytes, error: type) -> None:
    with pytest.raises(error):
        key_from_json(data)


async def test_a_store_on_another_worker_reaches_this_index(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with following(redis_server.url, redis_prefix) as (index, other, _):
        await other.put(key(1), unit(0))
        await applied(index, 1)
        match = index.search(key(2), unit(0), 0.99)
        assert match is not None
        assert match.key == key(1)
        assert len(index) == 1


async def test_a_removal_leaves_the_index(redis_server: RedisServer, redis_prefix: str) -> None:
    async with following(redis_server.url, redis_prefix) as (index, other, _):
        await other.put(key(1), unit(0))
        await other.put(key(2), unit(1))
        await other.event("del", key(1))
        await applied(index, 3)
        assert index.search(key(3), unit(0), 0.99) is None
        assert len(index) == 1
        index.drop(key(9).digest)  # not there: nothing happens
        assert len(index) == 1


async def test_a_store_whose_entry_is_already_gone_is_skipped(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with following(redis_server.url, redis_prefix) as (index, other, mine):
        await other.event("put", key(1))  # expired or evicted before this worker read it
        await applied(index, 1)
        assert len(index) == 0
        assert mine.statistics().errors == 0


@pytest.mark.parametrize(
    ("raw_key", "vector", "error"),
    [
        (b"{not json", unit(0), "JSONDecodeError"),
        (json.dumps({"step": "faq"}).encode(), unit(0), "KeyError"),
        (None, np.zeros(DIMENSION, dtype=np.float32), "EmbeddingError"),
    ],
)
async def test_a_damaged_entry_is_counted_and_the_stream_goes_on(
    redis_server: RedisServer,
    redis_prefix: str,
    raw_key: bytes | None,
    vector: np.ndarray,
    error: str,
) -> None:
    async with following(redis_server.url, redis_prefix) as (index, other, mine):
        await other.put(key(1), vector, raw_key=raw_key)
        await other.put(key(2), unit(1))
        await applied(index, 2)
        assert len(index) == 1
        assert index.search(key(3), unit(1), 0.99) is not None
        stats = mine.statistics()
        assert stats.errors == 1
        assert stats.last_error is not None
        assert stats.last_error.startswith(error)


async def test_its_own_store_is_not_read_back_from_the_stream(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with following(redis_server.url, redis_prefix) as (index, other, _):
        index.add(key(1), unit(0))
        # The event of that store, as Redis holds it (here with another vector, to see
        # whether the index read the entry again).
        await other.put(key(1), unit(1))
        await applied(index, 1)
        match = index.search(key(2), unit(0), 0.99)
        assert match is not None
        assert match.key == key(1)


async def test_a_late_worker_says_it_caught_up_only_after_the_whole_stream(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    # More events than one read takes (500), the one store last.
    many = 650
    async with open_redis(redis_server.url) as redis:
        other = Worker(redis, redis_prefix)
        removals = redis.script(
            "for i = 1, tonumber(ARGV[1]) do "
            "redis.call('XADD', KEYS[1], '*', 'op', 'del', 'ns', 'acme', 'd', 'gone' .. i) end"
        )
        await redis.evaluate(removals, [other.stream], [many - 1])
        await other.put(key(1), unit(0))
    async with following(redis_server.url, redis_prefix) as (index, _, _):
        with trio.fail_after(5):
            await index.caught_up.wait()
        assert index.applied == many
        assert len(index) == 1


# coredis leaves the memory streams of a connection that failed to open for the garbage
# collector (its own leak, on the outage path only).
@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_an_outage_is_waited_out_and_the_stream_followed_again(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    async with following(private_redis_server.url, redis_prefix) as (index, other, mine):
        private_redis_server.stop()
        with trio.fail_after(5):
            while mine.statistics().available:  # noqa: ASYNC110  # until a read has failed
                await trio.sleep(0.005)
        private_redis_server.start()  # restarted empty (no persistence)
        await other.put(key(1), unit(0))
        await applied(index, 1)
        assert len(index) == 1
    gc.collect()  # the leaked streams warn here, under this test's filter, not in another test


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
