"""`Cache`: the in-memory `StepCache` (exact then semantic lookup, store, single flight)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._embedders import Embedder, HashingEmbedder, embed_input
from ._exact import ExactCache
from ._flight import SingleFlight, open_single_flight
from ._key import CacheKey, make_key
from ._protocol import CacheHit, CacheMiss, CacheStatistics
from ._semantic import SemanticCache

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    import numpy as np
    from numpy.typing import NDArray

    from ._key import StepIdentity
    from ._options import CacheOptions

__all__ = ["Cache", "CacheEntry", "open_cache"]

T = TypeVar("T")


@attrs.frozen
class CacheEntry:
    """What `Cache` keeps per stored lookup: the step's value and how long it took.

    The exact and semantic caches snapshot the whole entry and copy it out on every get,
    so the value a hit hands out is a private copy.
    """

    value: Any
    seconds: float

    def __reduce__(self) -> tuple[type[CacheEntry], tuple[Any, float]]:
        # Pickled as a call, like a tuple: attrs' default (a state dict set slot by slot)
        # made unpickling a hit about twice as slow.
        return (CacheEntry, (self.value, self.seconds))


@attrs.define(eq=False)
class Cache:
    """The in-memory `StepCache`: exact then semantic lookup, store, single flight.

    Build it with `open_cache()`, which owns the nursery its shared computations run in.
    The caller decides when to store: a speculative branch's results must be stored only
    once its branch wins. Each value is kept with the seconds it took, as a `CacheEntry`.

    Args:
        exact: The exact cache.
        semantic: The semantic cache.
        embedder: Embeds the semantic input of a step.
        flight: Shares computations between concurrent misses.
    """

    _exact: ExactCache = attrs.field(alias="exact")
    _semantic: SemanticCache = attrs.field(alias="semantic")
    _embedder: Embedder = attrs.field(alias="embedder")
    _flight: SingleFlight = attrs.field(alias="flight")
    _exact_hits: int = attrs.field(init=False, default=0)
    _semantic_hits: int = attrs.field(init=False, default=0)
    _misses: int = attrs.field(init=False, default=0)
    _stores: int = attrs.field(init=False, default=0)

    async def lookup(
        self, step: StepIdentity, options: CacheOptions, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        """Look a step's inputs up: by exact key first, then by meaning.

        Args:
            step: The step's identity (`StepIdentity.of`): entries are shared only between
                equal identities.
            options: The step's cache options; its `version` and `depends_on` are part of
                the key.
            namespace: The tenant; lookups never see another namespace's entries.
            inputs: The step's arguments by name.

        Returns:
            A `CacheHit`, or a `CacheMiss` to pass to `store` once the result is known.

        Raises:
            UnencodableInputError: An input cannot be part of a key.
            SemanticInputError: The semantic input is missing or not a `str`.
            EmbeddingError: The embedder failed.
        """
        key = make_key(step, options.version, namespace, inputs, depends_on=options.depends_on)
        if options.exact:
            entry: CacheEntry | None = self._exact.get(key)
            if entry is not None:
                self._exact_hits += 1
                return CacheHit(
                    value=entry.value,
                    seconds=entry.seconds,
                    kind="exact",
                    key=key,
                    similarity=None,
                    matched_key=key,
                )
        embedding = None
        if options.semantic is not None:
            embedding = await self._embed(step.name, options.semantic, inputs)
            # No await from here to the return: the index cannot change under the search.
            match = self._semantic.search(key, embedding, options.threshold)
            if match is not None:
                self._semantic_hits += 1
                found: CacheEntry = match.value
                return CacheHit(
                    value=found.value,
                    seconds=found.seconds,
                    kind="semantic",
                    key=key,
                    similarity=match.similarity,
                    matched_key=match.key,
                    embedding=embedding,
                )
        self._misses += 1
        return CacheMiss(key=key, exact=options.exact, embedding=embedding)

    async def store(self, miss: CacheMiss, value: Any, *, seconds: float) -> None:
        """Store a step's result for the lookup that missed.

        Call it only for a result that is final: never for a failure, and for a speculative
        branch only once that branch has won. It does not await: an in-memory store is done
        when it returns, and it is `async` only because `StepCache` allows a network store.
        A miss with nowhere to go (not `exact` and no `embedding`) stores nothing and is not
        counted in `statistics().stores`.

        Args:
            miss: What `lookup` returned.
            value: The step's result; it is snapshotted, so later changes do not reach it.
            seconds: How long computing the result took; a later hit reports it.

        Raises:
            UncacheableValueError: The result cannot be pickled.
        """
        if not miss.exact and miss.embedding is None:
            return
        entry = CacheEntry(value, seconds)
        if miss.exact:
            self._exact.put(miss.key, entry)
        if miss.embedding is not None:
            self._semantic.put(miss.key, miss.embedding, entry)
        self._stores += 1

    async def compute_once(self, key: CacheKey, compute: Callable[[], Awaitable[T]]) -> T:
        """Run `compute()` once for all concurrent callers with this key; store nothing.

        Args:
            key: The key of the miss (from `CacheMiss.key`).
            compute: Computes the step's result.

        Returns:
            The result, shared by every concurrent caller with the same key.

        Raises:
            ComputationFailedError: The computation raised; `__cause__` is its exception.
        """
        return await self._flight.run(key, compute)

    def statistics(self) -> CacheStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment.
        """
        exact = self._exact.statistics()
        semantic = self._semantic.statistics()
        return CacheStatistics(
            exact_hits=self._exact_hits,
            semantic_hits=self._semantic_hits,
            misses=self._misses,
            stores=self._stores,
            evictions=exact.evictions + semantic.evictions,
            expirations=exact.expirations,
            entries=exact.entries,
            semantic_entries=semantic.entries,
            in_flight=self._flight.statistics().in_flight,
            exact_evictions=exact.evictions,
            semantic_evictions=semantic.evictions,
        )

    async def _embed(self, step: str, name: str, inputs: Mapping[str, Any]) -> NDArray[np.float32]:
        return await embed_input(self._embedder, step, name, inputs)


@contextlib.asynccontextmanager
async def open_cache(
    *,
    exact: ExactCache | None = None,
    semantic: SemanticCache | None = None,
    embedder: Embedder | None = None,
) -> AsyncIterator[Cache]:
    """Open a `Cache` whose shared computations run in a nursery this block owns.

    Args:
        exact: The exact cache (default: `ExactCache()`, built here so a TTL reads the
            run's clock).
        semantic: The semantic cache (default: an empty `SemanticCache()`).
        embedder: The embedder for semantic lookups (default: `HashingEmbedder()`).

    Yields:
        The cache.
    """
    async with open_single_flight() as flight:
        yield Cache(
            exact=exact if exact is not None else ExactCache(),
            semantic=semantic if semantic is not None else SemanticCache(),
            embedder=embedder if embedder is not None else HashingEmbedder(),
            flight=flight,
        )
