"""The vectors of one partition: a dense matrix searched by brute force, or sketch-filtered.

A partition starts as a normalized float32 matrix, dense from row 0: a lookup is one
matrix-vector product over exactly the rows that exist (exact, never approximate), and
removing a row moves the last row into its place, so the matrix never has holes. When it
reaches `AnnConfig.min_entries` and numpy has `bitwise_count`, the rows move at once into
a `SketchRows` store (`_ann.py`; at 2,000 rows that takes milliseconds, no build to spread
over inserts), which keeps the same dense order and the same removal by moving the last
row. The partition keeps the sketches until it empties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import attrs
import numpy as np

from ._ann import SketchRows, ann_available

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
    _matrix: NDArray[np.float32] = attrs.field(init=False)
    # Row n of the matrix, or of the sketch store once switched, holds `_ids[n]`.
    _ids: list[K] = attrs.field(init=False, factory=list)
    _rows: dict[K, int] = attrs.field(init=False, factory=dict)
    _sketched: SketchRows | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._matrix = np.empty((_INITIAL_ROWS, self.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def approximate(self) -> bool:
        """Whether lookups go through the sketch filter rather than brute force."""
        return self._sketched is not None

    def set(self, id_: K, row: NDArray[np.float32]) -> None:
        index = self._rows.get(id_)
        sketched = self._sketched
        if index is not None:
            if sketched is None:
                self._matrix[index] = row
            else:
                sketched.replace(index, row)
            return
        self._rows[id_] = len(self._ids)
        self._ids.append(id_)
        if sketched is not None:
            sketched.append(row)
            return
        self._matrix_append(row)
        ann = self._ann
        if ann is not None and len(self._ids) >= ann.min_entries and ann_available():
            self._sketched = SketchRows.of(self._matrix[: len(self._ids)], ann)
            self._matrix = np.empty((0, self.dim), dtype=np.float32)

    def remove(self, id_: K) -> None:
        index = self._rows.pop(id_)
        last = len(self._ids) - 1
        moved = self._ids.pop()
        if index != last:
            self._ids[index] = moved
            self._rows[moved] = index
        if self._sketched is not None:
            self._sketched.remove(index)
        elif index != last:
            self._matrix[index] = self._matrix[last]

    def nearest(self, query: NDArray[np.float32], threshold: float) -> tuple[K, float] | None:
        """The nearest id and its cosine similarity, or `None` if none can reach `threshold`.

        Brute force always returns the nearest row (the caller compares it with the
        threshold); the sketch filter returns the nearest of the rows it keeps.
        """
        if not self._ids:
            return None
        if self._sketched is not None:
            found = self._sketched.nearest(query, threshold)
            if found is None:
                return None
            return self._ids[found[0]], found[1]
        similarities = self._matrix[: len(self._ids)] @ query
        index = int(np.argmax(similarities))
        return self._ids[index], float(similarities[index])

    def _matrix_append(self, row: NDArray[np.float32]) -> None:
        index = len(self._ids) - 1
        if index == self._matrix.shape[0]:
            grown = np.empty((2 * index, self.dim), dtype=np.float32)
            grown[:index] = self._matrix
            self._matrix = grown
        self._matrix[index] = row
