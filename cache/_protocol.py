"""`StepCache`: everything the engine may call on a cache, and the records it exchanges.

The engine sees a cache only through this protocol, so any object with these four methods
can serve a run (the in-memory `Cache`, or a network store). Its public types:

- `CacheHit`: a lookup that found the step's value, with the seconds a hit saves;
- `CacheMiss`: a lookup that found nothing; handed back to `store` with the value;
- `CacheStatistics`: a snapshot of the counters.

A lookup names the step by its `StepIdentity` (from `specroute.cache`): the step's name and
function, or an explicit cache name. Pass both to `make_key` with the options' `version`
and `depends_on`, and the key keeps every one of them apart.

The contract (checked for every implementation by `tests/cache/test_contract.py`):

1. A hit's `value` is the step's own value (for a router, its `Route`), a private copy:
   changing it never changes what a later lookup gets, and neither does changing the
   value after it was stored.
2. `store(miss, value, seconds=s)` makes later lookups with the same inputs hit with
   that value and `seconds == s`.
3. A namespace is a hard partition: a lookup never sees another namespace's entries; nor
   does a lookup see the entries of another step identity, version or `depends_on`.
4. `compute_once` shares one computation between concurrent callers with equal keys and
   stores nothing, so a failed computation is never stored; a failure reaches every
   waiting caller as `ComputationFailedError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import numpy as np
    from numpy.typing import NDArray

    from ._key import CacheKey, StepIdentity
    from ._options import CacheOptions

__all__ = ["CacheHit", "CacheMiss", "CacheStatistics", "StepCache"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class CacheHit:
    """A lookup that found a value.

    Args:
        value: The step's value (for a router: its `Route`), a private copy the caller may
            change.
        seconds: How long computing the value took when it was stored: what the hit saves.
        kind: `"exact"` or `"semantic"`.
        key: The key of the lookup's own inputs.
        similarity: The cosine similarity for a semantic hit, `None` for an exact one.
        matched_key: The key the value was stored under (`key` itself for an exact hit).
        embedding: For a semantic hit, the embedding of this lookup's own semantic input,
            so a hit that turns out wrong can be stored under its own answer
            (`CacheMiss(key=hit.key, exact=..., embedding=hit.embedding)`) without
            embedding again; `None` for an exact hit.
    """

    value: Any
    seconds: float
    kind: Literal["exact", "semantic"]
    key: CacheKey
    similarity: float | None
    matched_key: CacheKey
    embedding: NDArray[np.float32] | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True, eq=False)
class CacheMiss:
    """A lookup that found nothing; hand it to `StepCache.store` with the value once computed.

    Args:
        key: The key of the lookup's inputs.
        exact: Whether the value goes into the exact cache.
        embedding: The embedding of the semantic input, so storing need not embed again
            (`None` when the step has no semantic lookup).
    """

    key: CacheKey
    exact: bool
    embedding: NDArray[np.float32] | None


@attrs.frozen(kw_only=True)
class CacheStatistics:
    """A snapshot of a cache's counters.

    Args:
        exact_hits: Lookups answered by the exact cache.
        semantic_hits: Lookups answered by the semantic cache.
        misses: Lookups that found nothing.
        stores: Values stored.
        evictions: Entries dropped to make room, in either cache
            (`exact_evictions + semantic_evictions` for `Cache`).
        expirations: Exact entries dropped because their TTL passed.
        entries: Entries in the exact cache.
        semantic_entries: Entries in the semantic cache.
        in_flight: Shared computations running now.
        exact_evictions: Exact entries dropped to make room.
        semantic_evictions: Semantic entries dropped to make room (past the whole cache's
            bound or a namespace's).
    """

    exact_hits: int
    semantic_hits: int
    misses: int
    stores: int
    evictions: int
    expirations: int
    entries: int
    semantic_entries: int
    in_flight: int
    # Defaulted so implementations written before the split keep constructing it.
    exact_evictions: int = 0
    semantic_evictions: int = 0

    @property
    def hits(self) -> int:
        """Lookups answered by either cache."""
        return self.exact_hits + self.semantic_hits


class StepCache(Protocol):
    """Everything the engine calls on a cache: lookup, compute once, store, statistics.

    The engine looks a step's inputs up; on a miss it computes the value through
    `compute_once` (so concurrent misses share one computation) and, once the value is
    final (never for a failure, and for a speculative branch only once it has won), stores
    it with how long it took. `Cache` (from `open_cache()`) is the in-memory implementation.
    """

    async def lookup(
        self, step: StepIdentity, options: CacheOptions, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        """Look a step's inputs up.

        Args:
            step: The step's identity (`StepIdentity.of`): entries are shared only between
                equal identities.
            options: The step's cache options; its `version` and `depends_on` are part of
                the key.
            namespace: The tenant; lookups never see another namespace's entries.
            inputs: The step's arguments by name.

        Returns:
            A `CacheHit`, or a `CacheMiss` to pass to `store` once the value is known.
        """

    async def compute_once(self, key: CacheKey, compute: Callable[[], Awaitable[T]]) -> T:
        """Run `compute()` once for all concurrent callers with this key; store nothing.

        Args:
            key: The key of the miss (`CacheMiss.key`).
            compute: Computes the step's value.

        Returns:
            The value, shared by every concurrent caller with the same key.

        Raises:
            ComputationFailedError: The computation raised; `__cause__` is its exception.
        """

    async def store(self, miss: CacheMiss, value: Any, *, seconds: float) -> None:
        """Store a step's final value for the lookup that missed.

        Args:
            miss: What `lookup` returned.
            value: The step's value; later changes to it do not reach the cache.
            seconds: How long computing the value took; a later hit reports it.
        """

    def statistics(self) -> CacheStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment.
        """
