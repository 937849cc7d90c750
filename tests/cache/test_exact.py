"""ExactCache: settings, TTL under a fake timer, the byte bound, copies, statistics."""

from __future__ import annotations

import threading
import time

import pytest
import trio
from specroute.cache import (
    CacheConfigError,
    ExactCache,
    ExactCacheConfig,
    UncacheableValueError,
    make_key,
)


class FakeTimer:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def k(n: int, namespace: str = "acme") -> object:
    return make_key("step", "1", namespace, {"n": n})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maxsize": 0}, "`maxsize` must be an int >= 1, got 0"),
        ({"maxsize": True}, "`maxsize` must be an int >= 1, got True"),
        ({"max_bytes": 0}, "`max_bytes` must be an int >= 1, got 0"),
        ({"ttl": 0}, "`ttl` must be a number > 0, got 0"),
        ({"ttl": -1.5}, "`ttl` must be a number > 0, got -1.5"),
    ],
)
def test_bad_settings_are_refused_with_a_message(settings: dict[str, int], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        ExactCacheConfig(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_entries_expire_after_ttl() -> None:
    timer = FakeTimer()
    cache = ExactCache(ExactCacheConfig(ttl=10), timer=timer)
    cache.put(k(1), "one")
    timer.now = 9.9
    assert cache.get(k(1)) == "one"
    timer.now = 10.0
    assert cache.get(k(1)) is None
    assert cache.statistics().entries == 0
    assert cache.statistics().expirations == 1


def test_storing_again_restarts_the_ttl() -> None:
    timer = FakeTimer()
    cache = ExactCache(ExactCacheConfig(ttl=10), timer=timer)
    cache.put(k(1), "one")
    timer.now = 8
    cache.put(k(1), "uno")
    timer.now = 15
    assert cache.get(k(1)) == "uno"


def test_byte_bound_evicts_least_recently_used() -> None:
    blob = b"x" * 1000
    cache = ExactCache(ExactCacheConfig(max_bytes=3500))
    for n in range(3):
        cache.put(k(n), blob)
    cache.get(k(0))
    cache.put(k(3), blob)
    assert k(0) in cache
    assert k(1) not in cache
    stats = cache.statistics()
    assert stats.size_bytes <= 3500
    assert stats.evictions == 1


def test_a_value_larger_than_the_byte_bound_is_not_stored() -> None:
    cache = ExactCache(ExactCacheConfig(max_bytes=100))
    cache.put(k(1), "small")
    assert not cache.put(k(1), "x" * 1000)
    assert k(1) not in cache
    assert cache.statistics().rejected == 1


def test_count_bound_holds_with_a_byte_bound_too() -> None:
    cache = ExactCache(ExactCacheConfig(maxsize=2, max_bytes=10**6))
    for n in range(5):
        cache.put(k(n), n)
    assert len(cache) == 2
    assert [n for n in range(5) if k(n) in cache] == [3, 4]


def test_values_are_copied_in_and_out() -> None:
    cache = ExactCache()
    value = {"tags": ["a"]}
    cache.put(k(1), value)
    value["tags"].append("changed by the producer")
    first = cache.get(k(1))
    first["tags"].append("changed by a reader")
    assert cache.get(k(1)) == {"tags": ["a"]}


def test_unpicklable_value_is_refused_naming_the_key() -> None:
    cache = ExactCache()
    with pytest.raises(UncacheableValueError, match=r"step@1\[acme\]"):
        cache.put(k(1), {"lock": threading.Lock()})
    assert k(1) not in cache


def test_none_is_a_value_not_a_miss() -> None:
    cache = ExactCache()
    missing = object()
    cache.put(k(1), None)
    assert cache.get(k(1), missing) is None
    assert cache.get(k(2), missing) is missing


def test_default_timer_outside_trio_is_monotonic() -> None:
    cache = ExactCache(ExactCacheConfig(ttl=60))
    cache.put(k(1), "one")
    assert cache.get(k(1)) == "one"
    assert time.monotonic() > 0


async def test_default_timer_inside_trio_follows_the_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache = ExactCache(ExactCacheConfig(ttl=5))
    cache.put(k(1), "one")
    await trio.sleep(4)
    assert cache.get(k(1)) == "one"
    await trio.sleep(2)
    assert cache.get(k(1)) is None


def test_statistics_count_hits_misses_and_stores() -> None:
    cache = ExactCache()
    cache.put(k(1), 1)
    cache.get(k(1))
    cache.get(k(2))
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.stores, stats.entries) == (1, 1, 1, 1)
