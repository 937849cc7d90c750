"""`AnnConfig` and the HNSW graph a large partition switches to (extra `specroute[ann]`).

A brute-force lookup reads every stored vector: 0.2-1 ms at 10k entries of 384 dimensions,
15-25 ms at 100k. Past `AnnConfig.min_entries` a partition moves its vectors into an HNSW
graph (usearch), whose lookup visits a few hundred vectors whatever the size. usearch was
chosen over hnswlib and faiss-cpu by `bench/cache.py`: it was the fastest to build and to
search of the three at equal recall, it stores vectors as float16 or 8-bit integers, and it
removes entries in place (faiss's HNSW cannot remove one). Without usearch installed,
every partition stays brute force: slower past the switch size, never wrong.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._validators import at_least

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["DEFAULT_ANN_MIN_ENTRIES", "AnnConfig", "HnswVectors", "ann_available"]

# Where an HNSW lookup overtakes brute force with room to spare (`bench/cache.py`: brute
# force at 10k entries measured 0.2-1 ms on a busy 2-core machine, the graph 40-90 µs). The
# switch builds the graph once from the partition's rows, a one-off pause of about a second
# at this size, so it is not done for caches that never grow this large.
DEFAULT_ANN_MIN_ENTRIES = 20_000


@attrs.frozen(kw_only=True)
class AnnConfig:
    """When a partition of the semantic cache switches from brute force to an HNSW graph.

    A lookup in the graph is approximate: it can miss the true nearest entry. Measured by
    `bench/cache.py` on queries made as perturbed copies of stored vectors (similarity
    0.95-0.99 to their source), the graph with the defaults finds an entry at or above the
    threshold for at least 99% of the queries for which brute force does. The similarity
    reported for a hit is computed in the graph's `dtype`: float16 is within about 1e-3 of
    float32, 8-bit within about 1e-2, so a pair within that distance of the threshold may
    fall either side of it.

    Args:
        min_entries: Entries at which a partition switches to the graph; it stays in the
            graph until it empties.
        dtype: How the graph stores vectors: `"f32"` (1,536 bytes each at 384 dimensions),
            `"f16"` (768 bytes) or `"i8"` (384 bytes); the graph's links add about 150
            bytes per entry.
        connectivity: Links per node in the graph (HNSW's M).
        expansion_add: Candidates examined while inserting (HNSW's efConstruction).
        expansion_search: Candidates examined while searching (HNSW's ef): more is slower
            and finds the true nearest entry more often.
    """

    min_entries: int = attrs.field(default=DEFAULT_ANN_MIN_ENTRIES, validator=at_least(2))
    dtype: Literal["f32", "f16", "i8"] = attrs.field(
        default="f16", validator=attrs.validators.in_(("f32", "f16", "i8"))
    )
    connectivity: int = attrs.field(default=16, validator=at_least(2))
    expansion_add: int = attrs.field(default=128, validator=at_least(1))
    expansion_search: int = attrs.field(default=64, validator=at_least(1))


def _usearch_index() -> Any:
    try:
        return importlib.import_module("usearch.index")
    except ImportError:
        return None


def ann_available() -> bool:
    """Whether the `ann` extra (usearch) is installed, so large partitions use HNSW.

    Returns:
        `True` if `usearch` imports.
    """
    return _usearch_index() is not None


@attrs.define(eq=False)
class HnswVectors:
    """Normalized vectors under integer labels in a usearch HNSW graph (cosine metric)."""

    _index: Any

    @classmethod
    def build(
        cls, config: AnnConfig, labels: NDArray[np.uint64], rows: NDArray[np.float32]
    ) -> HnswVectors:
        """A graph holding `rows` under `labels`; requires `ann_available()`."""
        module = _usearch_index()
        index = module.Index(
            ndim=int(rows.shape[1]),
            metric="cos",
            dtype=config.dtype,
            connectivity=config.connectivity,
            expansion_add=config.expansion_add,
            expansion_search=config.expansion_search,
        )
        if len(labels):
            index.add(labels, rows)
        return cls(index)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, label: int, row: NDArray[np.float32]) -> None:
        self._index.add(label, row, threads=1)

    def remove(self, label: int) -> None:
        self._index.remove(label)

    def nearest(self, query: NDArray[np.float32]) -> tuple[int, float]:
        """The label of the nearest vector and its cosine similarity (graph not empty)."""
        matches = self._index.search(query, 1, threads=1)
        return int(matches.keys[0]), 1.0 - float(matches.distances[0])

    @property
    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)
