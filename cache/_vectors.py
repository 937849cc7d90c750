"""The vectors of one partition: a dense matrix searched by brute force, or an HNSW graph.

A partition starts as a normalized float32 matrix, dense from row 0: a lookup is one
matrix-vector product over exactly the rows that exist (exact, never approximate), and
removing a row moves the last row into its place, so the matrix never has holes. When it
reaches `AnnConfig.min_entries` and usearch is installed, its rows move into an HNSW graph
(`_ann.py`) and the matrix is dropped; it stays in the graph until it empties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import attrs
import numpy as np

from ._ann import HnswVectors, ann_available

if TYPE_CHECKING:
    from collections.abc import Hashable

    from numpy.typing import NDArray

    from ._ann import AnnConfig

__all__ = ["PartitionVectors"]

K = TypeVar("K", bound="Hashable")

_INITIAL_ROWS = 16


@attrs.define(eq=False)
class PartitionVectors(Generic[K]):
    """Normalized vectors of one dimension under hashable ids, with a nearest-id search."""

    dim: int
    _ann: AnnConfig | None = attrs.field(alias="ann")
    _matrix: NDArray[np.float32] | None = attrs.field(init=False, default=None)
    _ids: list[K] = attrs.field(init=False, factory=list)
    _rows: dict[K, int] = attrs.field(init=False, factory=dict)
    # The graph's integer labels, used once the partition has switched to HNSW.
    _graph: HnswVectors | None = attrs.field(init=False, default=None)
    _labels: dict[K, int] = attrs.field(init=False, factory=dict)
    _by_label: dict[int, K] = attrs.field(init=False, factory=dict)
    _next_label: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._matrix = np.empty((_INITIAL_ROWS, self.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._labels) if self._graph is not None else len(self._ids)

    @property
    def approximate(self) -> bool:
        """Whether lookups go through the HNSW graph."""
        return self._graph is not None

    def set(self, id_: K, row: NDArray[np.float32]) -> None:
        if self._graph is not None:
            self._graph_set(self._graph, id_, row)
            return
        matrix = self._matrix
        assert matrix is not None
        index = self._rows.get(id_)
        if index is None:
            index = len(self._ids)
            if index == matrix.shape[0]:
                grown = np.empty((2 * index, self.dim), dtype=np.float32)
                grown[:index] = matrix
                matrix = self._matrix = grown
            self._ids.append(id_)
            self._rows[id_] = index
        matrix[index] = row
        if self._ann is not None and len(self._ids) >= self._ann.min_entries and ann_available():
            self._switch(self._ann, matrix)

    def remove(self, id_: K) -> None:
        if self._graph is not None:
            label = self._labels.pop(id_)
            del self._by_label[label]
            self._graph.remove(label)
            return
        matrix = self._matrix
        assert matrix is not None
        index = self._rows.pop(id_)
        last = len(self._ids) - 1
        moved = self._ids.pop()
        if index != last:
            matrix[index] = matrix[last]
            self._ids[index] = moved
            self._rows[moved] = index

    def nearest(self, query: NDArray[np.float32]) -> tuple[K, float]:
        """The nearest id and its cosine similarity; the partition must not be empty."""
        if self._graph is not None:
            label, similarity = self._graph.nearest(query)
            return self._by_label[label], similarity
        assert self._matrix is not None
        similarities = self._matrix[: len(self._ids)] @ query
        index = int(np.argmax(similarities))
        return self._ids[index], float(similarities[index])

    def _graph_set(self, graph: HnswVectors, id_: K, row: NDArray[np.float32]) -> None:
        old = self._labels.get(id_)
        if old is not None:
            # A replaced vector gets a fresh label: usearch keeps one vector per label.
            del self._by_label[old]
            graph.remove(old)
        label = self._next_label
        self._next_label += 1
        self._labels[id_] = label
        self._by_label[label] = id_
        graph.add(label, row)

    def _switch(self, ann: AnnConfig, matrix: NDArray[np.float32]) -> None:
        count = len(self._ids)
        labels = np.arange(count, dtype=np.uint64)
        self._graph = HnswVectors.build(ann, labels, matrix[:count])
        self._labels = {id_: n for n, id_ in enumerate(self._ids)}
        self._by_label = dict(enumerate(self._ids))
        self._next_label = count
        self._matrix = None
        self._ids = []
        self._rows = {}
