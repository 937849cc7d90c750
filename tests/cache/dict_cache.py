"""`DictCache`: the least a `StepCache` can be, so the contract test has a second subject.

Exact lookups only, one dict, values pickled in and out; single flight comes from
`open_single_flight`, as a network-backed cache would do it too.
"""

from __future__ import annotations

import contextlib
import pickle
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from specroute.cache import (
    CacheHit,
    CacheKey,
    CacheMiss,
    CacheOptions,
    CacheStatistics,
    SingleFlight,
    StepIdentity,
    make_key,
    open_single_flight,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

T = TypeVar("T")


@attrs.frozen
class _Entry:
    pickled: bytes
    seconds: float


@attrs.define(eq=False)
class DictCache:
    """An exact-only `StepCache` over a plain dict; build it with `open_dict_cache()`."""

    _flight: SingleFlight = attrs.field(alias="flight")
    _entries: dict[CacheKey, _Entry] = attrs.field(init=False, factory=dict)
    _hits: int = attrs.field(init=False, default=0)
    _misses: int = attrs.field(init=False, default=0)
    _stores: int = attrs.field(init=False, default=0)

    async def lookup(
        self, step: StepIdentity, options: CacheOptions, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        key = make_key(step, options.version, namespace, inputs, depends_on=options.depends_on)
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            return CacheMiss(key=key, exact=True, embedding=None)
        self._hits += 1
        return CacheHit(
            value=pickle.loads(entry.pickled),
            seconds=entry.seconds,
            kind="exact",
            key=key,
            similarity=None,
            matched_key=key,
        )

    async def compute_once(self, key: CacheKey, compute: Callable[[], Awaitable[T]]) -> T:
        return await self._flight.run(key, compute)

    async def store(self, miss: CacheMiss, value: Any, *, seconds: float) -> None:
        self._entries[miss.key] = _Entry(pickle.dumps(value), seconds)
        self._stores += 1

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            exact_hits=self._hits,
            semantic_hits=0,
            misses=self._misses,
            stores=self._stores,
            evictions=0,
            expirations=0,
            entries=len(self._entries),
            semantic_entries=0,
            in_flight=self._flight.statistics().in_flight,
        )


@contextlib.asynccontextmanager
async def open_dict_cache() -> AsyncIterator[DictCache]:
    """Open a `DictCache` whose shared computations run in a nursery this block owns."""
    async with open_single_flight() as flight:
        yield DictCache(flight=flight)
