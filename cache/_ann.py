"""`AnnConfig` and the HNSW graph a large partition switches to (extra `specroute[ann]`).

A brute-force lookup reads every stored vector, so its time grows with the partition.
Past `AnnConfig.min_entries` a partition moves its vectors into an HNSW graph (usearch),
whose lookup time grows with the logarithm of the size. Measured on this project's
shared 2-core machine (CPU time per lookup, 384 dimensions, random unit vectors, ef 64):
faiss-cpu 310 µs and hnswlib 370 µs at 10k entries, usearch 970 µs (float32), 655 µs
(float16) and 420 µs (8-bit). usearch was chosen all the same because it is the one of the
three that both removes an entry in place (a full cache removes one per insert; faiss's
HNSW cannot remove) and stores vectors as float16 or 8-bit integers (hnswlib keeps float32:
1.5 GB per million vectors before its links). Without usearch installed, every partition
stays brute force: slower past the switch size, never wrong.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._errors import CacheConfigError
from ._validators import at_least

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["DEFAULT_ANN_MIN_ENTRIES", "AnnConfig", "HnswVectors", "ann_available", "expansion_for"]

# Where the graph clearly beats brute force (CPU time per lookup on the shared 2-core
# machine, graph vs float32 matrix: about equal at 5k entries, 1.2 vs 1.5 ms at 10k, 1.2-1.4
# vs 3.0 ms at 20k). Above the default `maxsize` of 10,000, so a default cache stays exact.
DEFAULT_ANN_MIN_ENTRIES = 20_000
# Candidates searched: 64 kept recall 1.000 up to 20k random vectors, 256 was needed at 100k.
_MIN_EXPANSION = 64
_MAX_EXPANSION = 512


_DTYPES = ("f32", "f16", "i8")


def _one_of_dtypes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _DTYPES:
        raise CacheConfigError(
            f"`{attribute.name}` must be one of 'f32', 'f16', 'i8', got {value!r}"
        )


@attrs.frozen(kw_only=True)
class AnnConfig:
    """When a partition of the semantic cache switches from brute force to an HNSW graph.

    A lookup in the graph is approximate: it can miss the entry brute force finds. Measured
    by `bench/cache.py` with the defaults (connectivity 16, expansion 128 to add and 64 to
    search):

    - Labelled pairs (HashingEmbedder, threshold 0.95): of the queries brute force answers,
      the graph gives the same answer for 99.7% with `"f32"` (two runs), 98.9% and 99.7%
      with `"f16"` (two runs: a graph built on several threads differs run to run), 98.2%
      with `"i8"` (two runs). Smaller storage rounds the similarity (about 1e-3 for
      float16, 1e-2 for 8-bit), so pairs that close to the threshold fall either side of
      it: that is what float16 and 8-bit cost, and why `"f32"` is the default.
    - Perturbed copies of random 384-dimensional unit vectors (similarity 0.95-0.99 to
      their source, threshold 0.02 below; random vectors are the hardest case for HNSW):
      with 64 candidates searched, recall 0.993-1.000 at 10k and 20k entries but 0.87 at 100k;
      at 100k, 128 candidates gave 0.973, 256 gave 0.997 and 512 gave 1.000, each doubling
      the lookup's time. So by default the candidates grow with the graph (see
      `expansion_search`).

    Memory per million entries of 384 dimensions (usearch's own count at 100k entries,
    vectors plus links): about 0.8 GiB for `"i8"`, 1.4 GiB for `"f16"`, and 2.1 GiB for
    `"f32"` (estimated as float16 plus the 0.7 GiB of wider vectors). The index's ids and
    recency order add Python objects per entry on top.

    Args:
        min_entries: Entries at which a partition switches to the graph; it stays in the
            graph until it empties.
        dtype: How the graph stores vectors: `"f32"` (1,536 bytes each at 384 dimensions),
            `"f16"` (768 bytes) or `"i8"` (384 bytes).
        connectivity: Links per node in the graph (HNSW's M).
        expansion_add: Candidates examined while inserting (HNSW's efConstruction).
        expansion_search: Candidates examined while searching (HNSW's ef): more is slower
            and finds the true nearest entry more often. `None` (the default): 64 per
            25,000 entries in the graph, at least 64 and at most 512, so 256 at 100k.
    """

    min_entries: int = attrs.field(default=DEFAULT_ANN_MIN_ENTRIES, validator=at_least(2))
    dtype: Literal["f32", "f16", "i8"] = attrs.field(default="f32", validator=_one_of_dtypes)
    connectivity: int = attrs.field(default=16, validator=at_least(2))
    expansion_add: int = attrs.field(default=128, validator=at_least(1))
    expansion_search: int | None = attrs.field(default=None, validator=at_least(1))


@functools.cache
def _usearch_index() -> Any:
    # Cached: a failed import is retried in full each time, and this runs on inserts.
    try:
        return importlib.import_module("usearch.index")
    except ImportError:
        return None


def expansion_for(entries: int) -> int:
    """The candidates a search examines by default in a graph of `entries` entries."""
    return min(_MAX_EXPANSION, max(_MIN_EXPANSION, _MIN_EXPANSION * entries // 25_000))


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
    # `None`: scaled with the graph's size by `expansion_for`.
    _expansion: int | None = None

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
            expansion_search=config.expansion_search or _MIN_EXPANSION,
        )
        if len(labels):
            index.add(labels, rows)
        return cls(index, config.expansion_search)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, label: int, row: NDArray[np.float32]) -> None:
        self._index.add(label, row, threads=1)

    def remove(self, label: int) -> None:
        self._index.remove(label)

    def nearest(self, query: NDArray[np.float32]) -> tuple[int, float]:
        """The label of the nearest vector and its cosine similarity (graph not empty)."""
        if self._expansion is None:
            self._index.expansion_search = expansion_for(len(self._index))
        matches = self._index.search(query, 1, threads=1)
        return int(matches.keys[0]), 1.0 - float(matches.distances[0])

    @property
    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)
