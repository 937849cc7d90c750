"""The exact cache: LRU with optional TTL on cachetools, bounded by entries and bytes."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import attrs
import cachetools
import trio

from ._validators import at_least, positive
from ._values import Stored, snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._key import CacheKey

__all__ = ["DEFAULT_MAXSIZE", "ExactCache", "ExactCacheConfig", "ExactCacheStatistics"]

DEFAULT_MAXSIZE = 10_000


@attrs.frozen(kw_only=True)
class ExactCacheConfig:
    """Settings of an `ExactCache`.

    Args:
        maxsize: Most entries kept; the least recently used goes first.
        max_bytes: Most bytes of stored results kept (`None`: no byte bound). A result
            larger than this on its own is not stored.
        ttl: Seconds an entry lives after it is stored (`None`: entries never expire).
    """

    maxsize: int = attrs.field(default=DEFAULT_MAXSIZE, validator=at_least(1))
    max_bytes: int | None = attrs.field(default=None, validator=at_least(1))
    ttl: float | None = attrs.field(default=None, validator=positive)


@attrs.frozen(kw_only=True)
class ExactCacheStatistics:
    """A snapshot of an `ExactCache`'s counters.

    Args:
        entries: Live entries held now.
        size_bytes: Bytes of stored results held now.
        hits: Gets that found an entry.
        misses: Gets that found none.
        stores: Results stored.
        evictions: Entries dropped to make room.
        expirations: Entries dropped because their TTL passed.
        rejected: Results not stored because they alone exceed `max_bytes`.
    """

    entries: int
    size_bytes: int
    hits: int
    misses: int
    stores: int
    evictions: int
    expirations: int
    rejected: int


def _stored_size(stored: Stored) -> int:
    return stored.size


class _CountingLRU(cachetools.LRUCache[Any, Stored]):
    evictions = 0

    def popitem(self) -> tuple[Any, Stored]:
        item = super().popitem()
        self.evictions += 1
        return item


class _CountingTTL(cachetools.TTLCache[Any, Stored]):
    evictions = 0
    expirations = 0

    def popitem(self) -> tuple[Any, Stored]:
        item = super().popitem()
        self.evictions += 1
        return item

    def expire(self, time: float | None = None) -> list[tuple[Any, Stored]]:
        expired = super().expire(time)
        self.expirations += len(expired)
        return expired


def default_timer() -> Callable[[], float]:
    """The clock a timed cache reads when none is given.

    Inside a trio run this is `trio.current_time`, so a test's `MockClock` drives expiry;
    outside one (a sync script) it is `time.monotonic`. It is chosen once, when the cache is
    built: the two clocks are not comparable, and neither are the clocks of two trio runs,
    so build a timed cache inside the run that uses it, or pass `timer=` yourself.
    """
    try:
        trio.current_time()
    except RuntimeError:
        return time.monotonic
    return trio.current_time


@attrs.define(eq=False)
class ExactCache:
    """An LRU cache of step results by exact key, with optional TTL and byte bound.

    Results are snapshotted on `put` and copied on every `get` (see `_values`), so no caller
    can change what another caller gets. Namespaces are part of every `CacheKey`, so one
    tenant's entries are never found by another's keys.

    Args:
        config: Bounds and TTL.
        timer: Clock for TTL expiry, in seconds (default: see `default_timer`).
    """

    _config: ExactCacheConfig = attrs.field(alias="config", factory=ExactCacheConfig)
    _timer: Callable[[], float] | None = attrs.field(alias="timer", default=None)
    _data: _CountingLRU | _CountingTTL = attrs.field(init=False)
    _hits: int = attrs.field(init=False, default=0)
    _misses: int = attrs.field(init=False, default=0)
    _stores: int = attrs.field(init=False, default=0)
    _rejected: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        # cachetools bounds one measure; it counts bytes here and `put` bounds the entries.
        config = self._config
        max_bytes = sys.maxsize if config.max_bytes is None else config.max_bytes
        if config.ttl is None:
            self._data = _CountingLRU(max_bytes, getsizeof=_stored_size)
        else:
            timer = self._timer if self._timer is not None else default_timer()
            self._data = _CountingTTL(max_bytes, config.ttl, timer=timer, getsizeof=_stored_size)

    @property
    def config(self) -> ExactCacheConfig:
        """The settings this cache was built with."""
        return self._config

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: CacheKey, default: Any = None) -> Any:
        """Return a private copy of the result stored under `key`, marking it recently used.

        Args:
            key: The key to look up.
            default: What to return when there is no live entry.

        Returns:
            The stored result (a copy the caller may change), or `default`.
        """
        stored = self._data.get(key)
        if stored is None:
            self._misses += 1
            return default
        self._hits += 1
        return stored.value()

    def put(self, key: CacheKey, value: Any) -> bool:
        """Store a snapshot of `value` under `key`, evicting old entries to make room.

        Args:
            key: The key to store under; an existing entry is replaced.
            value: The result; later changes to it do not reach the cache.

        Returns:
            `False` if the result alone exceeds `max_bytes` and was not stored.

        Raises:
            UncacheableValueError: The result cannot be pickled.
        """
        stored = snapshot(value, where=key)
        max_bytes = self._config.max_bytes
        if max_bytes is not None and stored.size > max_bytes:
            self._rejected += 1
            self._data.pop(key, None)
            return False
        data = self._data
        data[key] = stored
        if len(data) > self._config.maxsize:
            while self._live_entries() > self._config.maxsize:
                data.popitem()
        self._stores += 1
        return True

    def discard(self, key: CacheKey) -> bool:
        """Remove the entry under `key`, if any.

        Args:
            key: The key to remove.

        Returns:
            Whether a live entry was removed.
        """
        return self._data.pop(key, None) is not None

    def clear(self) -> None:
        """Remove every entry; the counters keep counting."""
        self._data.clear()

    def statistics(self) -> ExactCacheStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment; later activity does not change the snapshot.
        """
        data = self._data
        return ExactCacheStatistics(
            entries=self._live_entries(),
            size_bytes=int(data.currsize),
            hits=self._hits,
            misses=self._misses,
            stores=self._stores,
            evictions=data.evictions,
            expirations=data.expirations if isinstance(data, _CountingTTL) else 0,
            rejected=self._rejected,
        )

    def _live_entries(self) -> int:
        if isinstance(self._data, _CountingTTL):
            self._data.expire()
        return len(self._data)
