"""The semantic cache: the nearest stored entry by cosine similarity, partitioned by step.

The vectors live in a `SemanticIndex` (ids are the entries' `CacheKey`s), one partition per
key `partition` (step identity, version, dependencies, namespace): brute force over a dense
float32 matrix for small partitions, sketch filtering past `AnnConfig.min_entries` (numpy
>= 2.0, the `ann` extra). This module adds the values, copied in and out, and the counters.
A semantic hit is a guess that another request meant the same thing: see `CacheOptions` for
how often such guesses were right on the labelled pairs the tests ship.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ._errors import EmbeddingError
from ._semantic_index import (
    DEFAULT_SEMANTIC_MAXSIZE,
    SIMILARITY_TOLERANCE,
    SemanticIndex,
    SemanticIndexConfig,
    normalized,
)
from ._values import Stored, snapshot

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ._key import CacheKey

__all__ = [
    "DEFAULT_SEMANTIC_MAXSIZE",
    "SIMILARITY_TOLERANCE",
    "SemanticCache",
    "SemanticCacheConfig",
    "SemanticCacheStatistics",
    "SemanticMatch",
]


@attrs.frozen(kw_only=True)
class SemanticCacheConfig(SemanticIndexConfig):
    """Settings of a `SemanticCache`: those of the `SemanticIndex` that holds its vectors.

    Args:
        maxsize: Most entries over all namespaces (default 10,000). When full, the least
            recently used entry of the namespace holding the most entries goes, so one
            tenant's traffic never evicts the entries of a tenant at or under its fair
            share (`maxsize` divided by the namespaces holding entries).
        namespace_maxsize: Most entries of any one namespace (`None`: only the fair share
            limits it); past it, that namespace's least recently used entry goes.
        ann: When a partition switches from brute force to approximate sketch filtering
            (`None`: never); used only with numpy >= 2.0 (the `ann` extra).
    """


@attrs.frozen(kw_only=True)
class SemanticMatch:
    """The entry a semantic lookup found.

    Args:
        key: The key the matched entry was stored under.
        value: A private copy of the matched entry's result.
        similarity: Cosine similarity between the query and the matched entry.
    """

    key: CacheKey
    value: Any
    similarity: float


@attrs.frozen(kw_only=True)
class SemanticCacheStatistics:
    """A snapshot of a `SemanticCache`'s counters.

    Args:
        entries: Entries held now.
        partitions: Non-empty partitions (one per step identity, version, dependencies and
            namespace).
        hits: Searches that found an entry at or above the threshold.
        misses: Searches that found none.
        stores: Results stored.
        evictions: Entries dropped to make room (over the whole cache, or past a
            namespace's own bound).
        approximate_partitions: Partitions searched through sketch filtering.
    """

    entries: int
    partitions: int
    hits: int
    misses: int
    stores: int
    evictions: int
    approximate_partitions: int = 0


@attrs.define(eq=False)
class SemanticCache:
    """Step results found by the meaning of a text, within one partition of keys.

    A search returns the stored entry nearest to the query vector (cosine similarity) if it
    reaches the threshold, and only among entries whose key has the same `partition` as the
    query's key: the same step identity, version, dependencies and namespace. Results are
    copied in and out like `ExactCache`'s. A hit is a guess that the two texts ask the same
    thing, not a proof.

    Args:
        config: The bounds on entries and the switch from brute force.
    """

    _config: SemanticCacheConfig = attrs.field(alias="config", factory=SemanticCacheConfig)
    _index: SemanticIndex[CacheKey] = attrs.field(
        init=False, default=attrs.Factory(lambda self: SemanticIndex(self._config), takes_self=True)
    )
    _entries: dict[CacheKey, Stored] = attrs.field(init=False, factory=dict)
    _hits: int = attrs.field(init=False, default=0)
    _misses: int = attrs.field(init=False, default=0)
    _stores: int = attrs.field(init=False, default=0)
    _evictions: int = attrs.field(init=False, default=0)

    @property
    def config(self) -> SemanticCacheConfig:
        """The settings this cache was built with."""
        return self._config

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def search(self, key: CacheKey, vector: ArrayLike, threshold: float) -> SemanticMatch | None:
        """Find the entry nearest to `vector` in the partition of `key`.

        Args:
            key: The query's own key; its `partition` picks where to search.
            vector: The query's embedding (any length; it is normalized here).
            threshold: The least cosine similarity that counts as a hit, in (0, 1].

        Returns:
            The nearest entry if its similarity reaches `threshold`, else `None`.

        Raises:
            EmbeddingError: The vector is zero or not finite, or its dimension differs
                from the vectors already in the partition.
        """
        query = normalized(vector, key)
        self._check_dimension(key, query.shape[0])
        match = self._index.lookup(key.partition, query, threshold)
        if match is None:
            self._misses += 1
            return None
        self._hits += 1
        return SemanticMatch(
            key=match.id, value=self._entries[match.id].value(), similarity=match.similarity
        )

    def get(self, key: CacheKey, default: Any = None) -> Any:
        """Return a private copy of the result stored under exactly `key`.

        Args:
            key: The key to look up.
            default: What to return when there is no entry.

        Returns:
            The stored result (a copy), or `default`.
        """
        stored = self._entries.get(key)
        if stored is None:
            return default
        self._index.touch(key)
        return stored.value()

    def put(self, key: CacheKey, vector: ArrayLike, value: Any) -> None:
        """Store a snapshot of `value` under `key`, found later by vectors near `vector`.

        Args:
            key: The key to store under; an existing entry is replaced.
            vector: The embedding of the entry's text.
            value: The result; later changes to it do not reach the cache.

        Raises:
            EmbeddingError: The vector is zero, not finite, or of the wrong dimension.
            UncacheableValueError: The result cannot be pickled.
        """
        row = normalized(vector, key)
        self._check_dimension(key, row.shape[0])
        stored = snapshot(value, where=key)
        evicted = self._index.insert(key, row, partition=key.partition, namespace=key.namespace)
        self._entries[key] = stored
        for gone in evicted:
            del self._entries[gone]
        self._stores += 1
        self._evictions += len(evicted)

    def discard(self, key: CacheKey) -> bool:
        """Remove the entry under `key`, if any.

        Args:
            key: The key to remove.

        Returns:
            Whether an entry was removed.
        """
        if not self._index.delete(key):
            return False
        del self._entries[key]
        return True

    def clear(self) -> None:
        """Remove every entry; the counters keep counting."""
        self._entries.clear()
        self._index.clear()

    def statistics(self) -> SemanticCacheStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment.
        """
        return SemanticCacheStatistics(
            entries=len(self._entries),
            partitions=self._index.partitions,
            hits=self._hits,
            misses=self._misses,
            stores=self._stores,
            evictions=self._evictions,
            approximate_partitions=self._index.approximate_partitions,
        )

    def _check_dimension(self, key: CacheKey, dimension: int) -> None:
        held = self._index.dimension(key.partition)
        if held is not None and dimension != held:
            raise EmbeddingError(
                f"the embedding for {key} has dimension {dimension}, but step"
                f" {key.step!r} (version {key.version!r}) holds vectors of dimension"
                f" {held}; bump the step's cache version when changing embedders"
            )
