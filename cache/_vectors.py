"""The vectors of one partition: a dense matrix searched by brute force, or an HNSW graph.

A partition starts as a normalized float32 matrix, dense from row 0: a lookup is one
matrix-vector product over exactly the rows that exist (exact, never approximate), and
removing a row moves the last row into its place, so the matrix never has holes. When it
reaches `AnnConfig.min_entries` and usearch is installed, it starts an HNSW graph
(`_ann.py`): new vectors go into the graph, and each insert also moves
`_MOVED_PER_INSERT` rows from the end of the matrix into it, so no single insert pays for
building the whole graph (at 20k entries that build took seconds). Until the matrix is
empty a lookup takes the nearer of the matrix's best row and the graph's answer. The
partition keeps its graph until it empties.
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
# Rows moved from the matrix into the graph per insert: a 20k-row matrix empties within
# 2,500 inserts, while each insert does at most 9 graph insertions.
_MOVED_PER_INSERT = 8


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
        return len(self._ids) + len(self._labels)

    @property
    def in_graph(self) -> int:
        """How many vectors the HNSW graph holds (the rest are still matrix rows)."""
        return len(self._labels)

    @property
    def approximate(self) -> bool:
        """Whether lookups go through the HNSW graph."""
        return self._graph is not None

    def set(self, id_: K, row: NDArray[np.float32]) -> None:
        graph = self._graph
        if graph is None and self._ann is not None and len(self) >= self._ann.min_entries:
            graph = self._start_graph(self._ann)
        if graph is None:
            self._matrix_set(id_, row)
            return
        if id_ in self._rows:
            self._matrix_remove(id_)
        self._graph_set(graph, id_, row)
        for _ in range(min(_MOVED_PER_INSERT, len(self._ids))):
            moved = self._ids[-1]
            moved_row = self._matrix_rows()[-1].copy()
            self._matrix_remove(moved)
            self._graph_set(graph, moved, moved_row)

    def remove(self, id_: K) -> None:
        if id_ in self._rows:
            self._matrix_remove(id_)
            return
        label = self._labels.pop(id_)
        del self._by_label[label]
        assert self._graph is not None
        self._graph.remove(label)

    def nearest(self, query: NDArray[np.float32]) -> tuple[K, float]:
        """The nearest id and its cosine similarity; the partition must not be empty."""
        best: tuple[K, float] | None = None
        if self._ids:
            similarities = self._matrix_rows() @ query
            index = int(np.argmax(similarities))
            best = self._ids[index], float(similarities[index])
        if self._graph is not None and self._labels:
            label, similarity = self._graph.nearest(query)
            if best is None or similarity > best[1]:
                best = self._by_label[label], similarity
        assert best is not None
        return best

    def _matrix_rows(self) -> NDArray[np.float32]:
        assert self._matrix is not None
        return self._matrix[: len(self._ids)]

    def _matrix_set(self, id_: K, row: NDArray[np.float32]) -> None:
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

    def _matrix_remove(self, id_: K) -> None:
        matrix = self._matrix
        assert matrix is not None
        index = self._rows.pop(id_)
        last = len(self._ids) - 1
        moved = self._ids.pop()
        if index != last:
            matrix[index] = matrix[last]
            self._ids[index] = moved
            self._rows[moved] = index
        if not self._ids and self._graph is not None:
            # Every row is in the graph now: give the matrix's memory back.
            self._matrix = np.empty((_INITIAL_ROWS, self.dim), dtype=np.float32)

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

    def _start_graph(self, ann: AnnConfig) -> HnswVectors | None:
        if not ann_available():
            return None
        empty = np.empty((0, self.dim), dtype=np.float32)
        self._graph = HnswVectors.build(ann, np.empty(0, dtype=np.uint64), empty)
        return self._graph
