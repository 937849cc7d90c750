"""The shared state's errors (`cache/_redis_errors.py`): both under `CacheError`, siblings,
and each raised where its docstring says, with what went wrong kept as the cause."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
from specroute.cache import (
    CacheConfigError,
    CacheError,
    RedisUnavailableError,
    UncacheableValueError,
    UndecodableValueError,
    open_redis,
)
from specroute.cache._redis_codec import TypeRegistry, decode
from specroute.routes import SpecrouteError

if TYPE_CHECKING:
    from tests.conftest import RedisServer


@pytest.mark.parametrize("error", [RedisUnavailableError, UndecodableValueError])
def test_each_is_a_cache_error_under_the_root(error: type[Exception]) -> None:
    assert issubclass(error, CacheError)
    assert issubclass(error, SpecrouteError)
    # Not a setting out of range: code that catches `ValueError` for bad settings misses it.
    assert not issubclass(error, ValueError | CacheConfigError)


def test_redis_failing_and_bad_data_are_siblings_not_one_another() -> None:
    assert not issubclass(RedisUnavailableError, UndecodableValueError)
    assert not issubclass(UndecodableValueError, RedisUnavailableError)
    # A value read back is not a value being stored.
    assert not issubclass(UndecodableValueError, UncacheableValueError)
    assert not issubclass(UncacheableValueError, UndecodableValueError)


async def test_a_command_redis_is_too_slow_for_is_unavailable_with_the_cause_kept(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with open_redis(redis_server.url, timeout=0.05) as redis:
        with pytest.raises(CacheError) as caught:
            # A pop that waits on an empty list: a reply slower than the timeout.
            await redis.run(lambda r: r.blpop([f"{redis_prefix}:empty"], timeout=1))
    assert type(caught.value) is RedisUnavailableError
    assert isinstance(caught.value.__cause__, trio.TooSlowError)


def test_bytes_this_library_did_not_write_are_undecodable() -> None:
    with pytest.raises(CacheError) as caught:
        decode(b"\x80pickle-or-garbage", TypeRegistry.of(()))
    assert type(caught.value) is UndecodableValueError
