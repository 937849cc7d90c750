"""`SemanticIndex`: vectors under ids, grouped by partition and namespace, with bounds.

The index holds no values, only ids, so one index serves the in-process `SemanticCache`
(ids are `CacheKey`s) and a cache whose values live elsewhere, such as a Redis stream of
inserts and deletions (ids are the store's entry ids). Its invariants:

1. A lookup sees only the vectors of the partition it names, and returns the nearest one
   if its cosine similarity reaches the threshold (exactly below `AnnConfig.min_entries`
   entries in the partition; above, sketch filtering may skip an entry at the threshold
   with probability at most `AnnConfig.miss_rate`).
2. Each namespace holds at most `namespace_maxsize` entries (when set): past it, that
   namespace's least recently used entry goes.
3. The whole index holds at most `maxsize` entries: past it, the least recently used entry
   of the namespace holding the most entries goes (of two equally large, the one whose
   least recently used entry is older). So a namespace at or under its fair share never
   loses an entry to another namespace's traffic: `maxsize / namespaces` entries each.
4. Every id that leaves the index to make room is returned by the call that evicted it,
   so the caller can drop what it keeps under that id.
"""

from __future__ import annotations

import collections
import itertools
import math
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs
import numpy as np

from ._ann import AnnConfig
from ._errors import EmbeddingError
from ._validators import at_least
from ._vectors import PartitionVectors

if TYPE_CHECKING:
    from collections.abc import Hashable

    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_SEMANTIC_MAXSIZE",
    "SIMILARITY_TOLERANCE",
    "IndexMatch",
    "SemanticIndex",
    "SemanticIndexConfig",
    "normalized",
]

K = TypeVar("K", bound="Hashable")

DEFAULT_SEMANTIC_MAXSIZE = 10_000
# A vector's float32 similarity with itself can come out a few ulps below 1, so a hit
# needs `similarity >= threshold - SIMILARITY_TOLERANCE`; threshold 1 then means "the same
# vector up to rounding".
SIMILARITY_TOLERANCE = 1e-5


@attrs.frozen(kw_only=True)
class SemanticIndexConfig:
    """The bounds of a `SemanticIndex` and when its partitions leave brute force.

    Args:
        maxsize: Most entries over all namespaces. When full, the least recently used
            entry of the largest namespace goes, so each namespace keeps at least its fair
            share (`maxsize` divided by the namespaces that hold entries).
        namespace_maxsize: Most entries of one namespace (`None`: only the fair share
            above limits it).
        ann: When a partition switches from brute force to sketch filtering (`None`:
            never). Without numpy >= 2.0 (the `ann` extra) every partition stays brute
            force.
    """

    maxsize: int = attrs.field(default=DEFAULT_SEMANTIC_MAXSIZE, validator=at_least(1))
    namespace_maxsize: int | None = attrs.field(default=None, validator=at_least(1))
    ann: AnnConfig | None = attrs.field(
        factory=AnnConfig,
        validator=attrs.validators.optional(attrs.validators.instance_of(AnnConfig)),
    )


@attrs.frozen(kw_only=True)
class IndexMatch(Generic[K]):
    """The nearest entry a `SemanticIndex.lookup` found.

    Args:
        id: The id the entry was inserted under.
        similarity: Cosine similarity between the query and the entry, at most 1.
    """

    id: K
    similarity: float


@attrs.define(eq=False)
class _Entry:
    partition: str
    namespace: str
    tick: int


@attrs.define(eq=False)
class SemanticIndex(Generic[K]):
    """Vectors under ids, searched by cosine similarity within a partition, with bounds.

    Vectors are normalized on the way in; a partition holds vectors of one dimension.
    Inserting or finding an entry makes it the most recently used.

    Args:
        config: The bounds and the switch from brute force.
    """

    _config: SemanticIndexConfig = attrs.field(alias="config", factory=SemanticIndexConfig)
    _entries: dict[K, _Entry] = attrs.field(init=False, factory=dict)
    _partitions: dict[str, PartitionVectors[K]] = attrs.field(init=False, factory=dict)
    # Per namespace, its ids from least to most recently used.
    _namespaces: dict[str, collections.OrderedDict[K, None]] = attrs.field(init=False, factory=dict)
    _clock: itertools.count[int] = attrs.field(init=False, factory=itertools.count)

    @property
    def config(self) -> SemanticIndexConfig:
        """The bounds this index was built with."""
        return self._config

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._entries

    @property
    def partitions(self) -> int:
        """Partitions that hold entries."""
        return len(self._partitions)

    @property
    def approximate_partitions(self) -> int:
        """Partitions searched through sketch filtering rather than by brute force."""
        return sum(vectors.approximate for vectors in self._partitions.values())

    def dimension(self, partition: str) -> int | None:
        """The dimension of the vectors `partition` holds.

        Args:
            partition: The partition.

        Returns:
            Their dimension, or `None` if the partition holds no entries.
        """
        vectors = self._partitions.get(partition)
        return None if vectors is None else vectors.dim

    def namespace_size(self, namespace: str) -> int:
        """Entries held for `namespace`.

        Args:
            namespace: The namespace.

        Returns:
            How many entries it holds.
        """
        order = self._namespaces.get(namespace)
        return 0 if order is None else len(order)

    def insert(self, id_: K, vector: ArrayLike, *, partition: str, namespace: str) -> list[K]:
        """Insert or replace the vector under `id_`, then evict past the bounds.

        Args:
            id_: The entry's id; an entry already under it is replaced (and may move to
                another partition or namespace).
            vector: The entry's embedding (normalized here).
            partition: Only lookups naming this partition see the entry.
            namespace: The tenant whose bound the entry counts against.

        Returns:
            The ids evicted to make room, in eviction order; never `id_` itself.

        Raises:
            EmbeddingError: The vector is zero or not finite, or its dimension differs
                from the partition's.
        """
        row = normalized(vector, id_)
        vectors = self._partitions.get(partition)
        if vectors is not None and row.shape[0] != vectors.dim:
            raise _dimension_error(id_, row.shape[0], vectors.dim)
        if id_ in self._entries:
            self.delete(id_)
            vectors = self._partitions.get(partition)
        if vectors is None:
            vectors = self._partitions[partition] = PartitionVectors(
                row.shape[0], ann=self._config.ann
            )
        vectors.set(id_, row)
        self._entries[id_] = _Entry(partition, namespace, next(self._clock))
        self._namespaces.setdefault(namespace, collections.OrderedDict())[id_] = None
        return self._evict_past_bounds(namespace)

    def lookup(self, partition: str, vector: ArrayLike, threshold: float) -> IndexMatch[K] | None:
        """Find the entry of `partition` nearest to `vector`, if close enough.

        Args:
            partition: Where to search.
            vector: The query's embedding (normalized here).
            threshold: The least cosine similarity that counts, in (0, 1].

        Returns:
            The nearest entry if its similarity reaches `threshold`, else `None`. A match
            becomes the most recently used entry.

        Raises:
            EmbeddingError: The vector is zero or not finite, or its dimension differs
                from the partition's.
        """
        query = normalized(vector, partition)
        vectors = self._partitions.get(partition)
        if vectors is None:
            return None
        if query.shape[0] != vectors.dim:
            raise _dimension_error(partition, query.shape[0], vectors.dim)
        nearest = vectors.nearest(query, threshold - SIMILARITY_TOLERANCE)
        if nearest is None:
            return None
        found, similarity = nearest
        if similarity < threshold - SIMILARITY_TOLERANCE:
            return None
        self.touch(found)
        return IndexMatch(id=found, similarity=min(similarity, 1.0))

    def touch(self, id_: K) -> bool:
        """Make the entry under `id_` the most recently used.

        Args:
            id_: The entry's id.

        Returns:
            Whether there was such an entry.
        """
        entry = self._entries.get(id_)
        if entry is None:
            return False
        entry.tick = next(self._clock)
        self._namespaces[entry.namespace].move_to_end(id_)
        return True

    def delete(self, id_: K) -> bool:
        """Remove the entry under `id_`, if any.

        Args:
            id_: The entry's id.

        Returns:
            Whether an entry was removed.
        """
        entry = self._entries.pop(id_, None)
        if entry is None:
            return False
        vectors = self._partitions[entry.partition]
        vectors.remove(id_)
        if not len(vectors):
            del self._partitions[entry.partition]
        order = self._namespaces[entry.namespace]
        del order[id_]
        if not order:
            del self._namespaces[entry.namespace]
        return True

    def evict(self, count: int = 1) -> list[K]:
        """Evict up to `count` entries by the fair-share rule, as if the index were full.

        Args:
            count: How many entries to evict.

        Returns:
            The evicted ids, in eviction order.
        """
        evicted = []
        for _ in range(count):
            if not self._entries:
                break
            evicted.append(self._evict_from(self._largest_namespace()))
        return evicted

    def clear(self) -> None:
        """Remove every entry."""
        self._entries.clear()
        self._partitions.clear()
        self._namespaces.clear()

    def _evict_past_bounds(self, namespace: str) -> list[K]:
        evicted: list[K] = []
        bound = self._config.namespace_maxsize
        if bound is not None:
            while self.namespace_size(namespace) > bound:
                evicted.append(self._evict_from(namespace))
        while len(self._entries) > self._config.maxsize:
            evicted.append(self._evict_from(self._largest_namespace()))
        return evicted

    def _largest_namespace(self) -> str:
        # O(namespaces) per eviction: namespaces are tenants, far fewer than entries.
        def weight(name: str) -> tuple[int, int]:
            order = self._namespaces[name]
            oldest = self._entries[next(iter(order))].tick
            return len(order), -oldest

        return max(self._namespaces, key=weight)

    def _evict_from(self, namespace: str) -> K:
        oldest = next(iter(self._namespaces[namespace]))
        self.delete(oldest)
        return oldest


def normalized(vector: ArrayLike, where: object) -> NDArray[np.float32]:
    """`vector` as a unit float32 row; `where` names it in the error.

    Raises:
        EmbeddingError: The vector is zero or not finite.
    """
    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    # A dot product rather than `np.linalg.norm`: a quarter less time on the lookup path,
    # which normalizes every query (bench/cache.py profile).
    norm = math.sqrt(float(row @ row))
    if not math.isfinite(norm) or norm == 0.0:
        raise EmbeddingError(
            f"the embedding for {where} has norm {norm}; an embedder must return finite,"
            " non-zero vectors"
        )
    return row / np.float32(norm)


def _dimension_error(where: object, got: int, held: int) -> EmbeddingError:
    return EmbeddingError(
        f"the embedding for {where} has dimension {got}, but its partition holds vectors of"
        f" dimension {held}; bump the step's cache version when changing embedders"
    )
