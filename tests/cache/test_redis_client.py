"""`open_redis` on trio: coredis really runs under trio, a user's exception leaves the block as
itself (not the `ExceptionGroup` that `async with coredis.Redis()` gives), and an outage is
one counted `RedisUnavailableError` per command, with recovery."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import coredis
import pytest
import trio
from specroute.cache import CacheConfigError, RedisUnavailableError, open_redis

if TYPE_CHECKING:
    from tests.conftest import RedisServer


async def test_commands_run_under_trio(redis_server: RedisServer, redis_prefix: str) -> None:
    async with open_redis(redis_server.url) as redis:
        assert trio.lowlevel.current_trio_token() is not None
        await redis.run(lambda r: r.set(f"{redis_prefix}:k", b"v"))
        assert await redis.run(lambda r: r.get(f"{redis_prefix}:k")) == b"v"
        stats = redis.statistics()
    assert (stats.commands, stats.errors, stats.available) == (2, 0, True)


async def test_coredis_alone_wraps_a_users_exception(redis_server: RedisServer) -> None:
    """Why `open_redis` exists: the bare client turns `KeyError` into a group."""
    with pytest.raises(ExceptionGroup):
        async with coredis.Redis.from_url(redis_server.url):
            raise KeyError("mine")


async def test_a_users_exception_passes_through_unchanged(redis_server: RedisServer) -> None:
    error = KeyError("mine")

    async def uses_redis() -> None:
        async with open_redis(redis_server.url) as redis:
            await redis.run(lambda r: r.ping())
            raise error

    with pytest.raises(KeyError) as info:
        await uses_redis()
    assert info.value is error


async def test_cancellation_passes_through(redis_server: RedisServer) -> None:
    with trio.move_on_after(0.05) as scope:
        async with open_redis(redis_server.url):
            await trio.sleep_forever()
    assert scope.cancelled_caught


@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_an_outage_is_counted_and_the_connection_recovers(
    private_redis_server: RedisServer,
) -> None:
    async with open_redis(private_redis_server.url) as redis:
        await redis.run(lambda r: r.ping())
        private_redis_server.stop()
        with pytest.raises(RedisUnavailableError, match="Redis did not answer"):
            await redis.run(lambda r: r.ping())
        down = redis.statistics()
        private_redis_server.start()
        await redis.run(lambda r: r.ping())
        up = redis.statistics()
    assert (down.errors, down.available) == (1, False)
    assert down.last_error is not None
    assert (up.errors, up.available, up.commands) == (1, True, 2)
    gc.collect()  # coredis's leaked streams of the failed connection warn here, filtered


async def test_a_slow_command_times_out(redis_server: RedisServer, redis_prefix: str) -> None:
    async with open_redis(redis_server.url, timeout=0.05) as redis:
        with pytest.raises(RedisUnavailableError, match="TooSlowError"):
            # A pop that waits on an empty list: a reply slower than the timeout.
            await redis.run(lambda r: r.blpop([f"{redis_prefix}:empty"], timeout=1))
        assert redis.statistics().errors == 1


@pytest.mark.parametrize("timeout", [0, -1.0, True])
async def test_a_bad_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(CacheConfigError, match="`timeout` must be a number > 0"):
        async with open_redis("redis://127.0.0.1:1", timeout=timeout):
            pass
