"""The semantic cache: the nearest stored entry by cosine similarity, partitioned by step.

Each partition (a key's `partition`: step identity, version, dependencies, namespace) keeps
its vectors as the rows of one normalized float32 matrix, dense from row 0: a lookup is one
matrix-vector product over exactly the rows that exist (brute force, so the nearest entry
is exact, never approximate). Removing a row moves the last row into its place, so the
matrix never has holes to skip.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from ._errors import EmbeddingError
from ._validators import at_least
from ._values import Stored, snapshot

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ._key import CacheKey

__all__ = [
    "DEFAULT_SEMANTIC_MAXSIZE",
    "SIMILARITY_TOLERANCE",
    "SemanticCache",
    "SemanticCacheConfig",
    "SemanticCacheStatistics",
    "SemanticMatch",
]

DEFAULT_SEMANTIC_MAXSIZE = 10_000
# A vector's float32 similarity with itself can come out a few ulps below 1, so a hit
# needs `similarity >= threshold - SIMILARITY_TOLERANCE`; threshold 1 then means "the same
# vector up to rounding".
SIMILARITY_TOLERANCE = 1e-5
_INITIAL_ROWS = 16

_PartitionId = str


@attrs.frozen(kw_only=True)
class SemanticCacheConfig:
    """Settings of a `SemanticCache`.

    Args:
        maxsize: Most entries kept over all partitions; the least recently used goes first.
    """

    maxsize: int = attrs.field(default=DEFAULT_SEMANTIC_MAXSIZE, validator=at_least(1))


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
        evictions: Entries dropped to make room.
    """

    entries: int
    partitions: int
    hits: int
    misses: int
    stores: int
    evictions: int


def _normalized(vector: ArrayLike, where: object) -> NDArray[np.float32]:
    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(row))
    if not np.isfinite(norm) or norm == 0.0:
        raise EmbeddingError(
            f"the embedding for {where} has norm {norm}; an embedder must return finite,"
            " non-zero vectors"
        )
    return row / np.float32(norm)


@attrs.define(eq=False)
class _Partition:
    """The vectors of one (step, version, namespace): dense rows and the key of each row."""

    matrix: NDArray[np.float32]
    keys: list[CacheKey] = attrs.Factory(list)
    rows: dict[CacheKey, int] = attrs.Factory(dict)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def set(self, key: CacheKey, row: NDArray[np.float32]) -> None:
        index = self.rows.get(key)
        if index is None:
            index = len(self.keys)
            if index == self.matrix.shape[0]:
                grown = np.empty((2 * index, self.dim), dtype=np.float32)
                grown[:index] = self.matrix
                self.matrix = grown
            self.keys.append(key)
            self.rows[key] = index
        self.matrix[index] = row

    def remove(self, key: CacheKey) -> None:
        index = self.rows.pop(key)
        last = len(self.keys) - 1
        moved = self.keys.pop()
        if index != last:
            self.matrix[index] = self.matrix[last]
            self.keys[index] = moved
            self.rows[moved] = index

    def nearest(self, query: NDArray[np.float32]) -> tuple[CacheKey, float]:
        similarities = self.matrix[: len(self.keys)] @ query
        index = int(np.argmax(similarities))
        return self.keys[index], float(similarities[index])


@attrs.define(eq=False)
class SemanticCache:
    """Step results found by the meaning of a text, within one partition of keys.

    A search returns the stored entry nearest to the query vector (cosine similarity) if it
    reaches the threshold, and only among entries whose key has the same `partition` as the
    query's key: the same step identity, version, dependencies and namespace. Results are
    copied in and out like `ExactCache`'s.

    Args:
        config: The bound on entries.
    """

    _config: SemanticCacheConfig = attrs.field(alias="config", factory=SemanticCacheConfig)
    _partitions: dict[_PartitionId, _Partition] = attrs.field(init=False, factory=dict)
    # Every entry, least recently used first.
    _entries: collections.OrderedDict[CacheKey, Stored] = attrs.field(
        init=False, factory=collections.OrderedDict
    )
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
        query = _normalized(vector, key)
        partition = self._partitions.get(_partition_of(key))
        if partition is None:
            self._misses += 1
            return None
        _check_dimension(partition, query, key)
        matched, similarity = partition.nearest(query)
        if similarity < threshold - SIMILARITY_TOLERANCE:
            self._misses += 1
            return None
        self._hits += 1
        self._entries.move_to_end(matched)
        return SemanticMatch(
            key=matched, value=self._entries[matched].value(), similarity=min(similarity, 1.0)
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
        self._entries.move_to_end(key)
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
        row = _normalized(vector, key)
        stored = snapshot(value, where=key)
        partition_id = _partition_of(key)
        partition = self._partitions.get(partition_id)
        if partition is None:
            matrix = np.empty((_INITIAL_ROWS, row.shape[0]), dtype=np.float32)
            partition = self._partitions[partition_id] = _Partition(matrix)
        _check_dimension(partition, row, key)
        partition.set(key, row)
        self._entries[key] = stored
        self._entries.move_to_end(key)
        self._stores += 1
        while len(self._entries) > self._config.maxsize:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self._evictions += 1

    def discard(self, key: CacheKey) -> bool:
        """Remove the entry under `key`, if any.

        Args:
            key: The key to remove.

        Returns:
            Whether an entry was removed.
        """
        if key not in self._entries:
            return False
        self._remove(key)
        return True

    def clear(self) -> None:
        """Remove every entry; the counters keep counting."""
        self._entries.clear()
        self._partitions.clear()

    def statistics(self) -> SemanticCacheStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment.
        """
        return SemanticCacheStatistics(
            entries=len(self._entries),
            partitions=len(self._partitions),
            hits=self._hits,
            misses=self._misses,
            stores=self._stores,
            evictions=self._evictions,
        )

    def _remove(self, key: CacheKey) -> None:
        del self._entries[key]
        partition_id = _partition_of(key)
        partition = self._partitions[partition_id]
        partition.remove(key)
        if not partition.keys:
            del self._partitions[partition_id]


def _partition_of(key: CacheKey) -> _PartitionId:
    return key.partition


def _check_dimension(partition: _Partition, row: NDArray[np.float32], key: CacheKey) -> None:
    if row.shape[0] != partition.dim:
        raise EmbeddingError(
            f"the embedding for {key} has dimension {row.shape[0]}, but step"
            f" {key.step!r} (version {key.version!r}) holds vectors of dimension"
            f" {partition.dim}; bump the step's cache version when changing embedders"
        )
