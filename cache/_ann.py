"""`AnnConfig` and the sketch-filtered store a large partition switches to.

A brute-force lookup reads every stored float32 vector (1,536 bytes at 384 dimensions), so
its time grows with the partition: 13-23 ms at 100k entries on the shared 2-core machine.
Past `AnnConfig.min_entries` a partition keeps, beside each vector, a 256-bit sign sketch
(Charikar's SimHash: bit j is whether the vector lies on the positive side of random
hyperplane j). Two unit vectors at angle θ differ in each bit with probability θ/π
whatever the data (Charikar 2002, after Goemans-Williamson), so the number of differing
bits is binomial and a bound on it keeps every entry at or above the threshold with a
stated probability. A lookup:

1. counts differing bits over the first 64 or 128 bits of every sketch (8 or 16 bytes an
   entry rather than 1,536) and keeps the entries within the bound;
2. counts them over all 256 bits for those survivors and keeps those within the bound
   (both passes are the scan of `_sketch_scan`: one compiled loop with numba, else numpy);
3. computes the exact cosine similarity of the few left from the stored vectors and takes
   the best, so a hit's similarity, and so the threshold decision, is that of the stored
   vector, never of the sketch.

Each bound is the least count that an entry exactly at the threshold exceeds with
probability at most `miss_rate / 2`, so of the entries brute force would answer, at most
`miss_rate` (1e-4 by default) are missed, fewer the farther above the threshold they are.

Tried first, on the same machine (random 384-dimensional unit vectors, perturbed copies at
similarity 0.85/0.9/0.95 as queries, CPU time per lookup): usearch HNSW graphs, the
previous design. At 20k entries a float32 graph took 1.5-2.7 ms (connectivity 16-32,
64 candidates) and a 8-bit one 0.5 ms at recall 0.96-0.99; a graph over 384-bit sign codes
0.25 ms at recall 0.997-1.0; at 100k the binary graph needed 384 candidates for recall
0.957-0.997 in 2.9 ms, and building it took 3 minutes (the float32 graph at 20k: 1-2
minutes). Random high-dimensional vectors give HNSW no structure to navigate, and the
threshold leaves a sketch filter little to keep: at 100k the sketch store answers in
0.22-0.54 ms (best of 5 runs, every dtype and threshold) with recall 1.000 and switches on
with no build. At 1M numpy's passes over the sketches took 1.7-5.4 ms; the compiled scan
(`_sketch_scan`, numba) brought it to 0.4-1.4 ms, every dtype and threshold. faiss-cpu was
not tried again as an index: its HNSW cannot remove an entry, and a full cache removes one
per insert; its binary flat index scanned no faster than numpy (README, "Large caches").
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np

from ._errors import CacheConfigError
from ._sketch_scan import WORDS, SketchQuery, build_in_background, compiled_kernel, scan
from ._validators import at_least

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_ANN_MIN_ENTRIES",
    "DEFAULT_MISS_RATE",
    "AnnConfig",
    "SketchRows",
    "ann_available",
    "bits_bound",
    "prepare_ann",
]

# Where the sketch store becomes faster than brute force (bench/cache.py, "switch" rows,
# median CPU per lookup in two runs at load 5-10: brute force 119-129 µs against the
# sketches' 144-149 at 1,000 entries, 175-410 against 163-185 at 2,000, 346-638 against
# 157-172 at 4,000, 1,432 against 180 at 8,000).
DEFAULT_ANN_MIN_ENTRIES = 2_000
DEFAULT_MISS_RATE = 1e-4
# 256 sketch bits: at threshold 0.83 an entry at the threshold differs in about 48 of them
# and an unrelated one in 128, so the second pass leaves almost only true neighbours.
_BITS = 64 * WORDS
# The first pass reads 64 bits an entry where that lets through at most this share of
# unrelated (orthogonal) entries, else 128: at threshold 0.83, 64 bits let 5% through and
# the second pass over them cost more than a wider first pass (0.9 against 0.5 ms at 100k);
# at 0.93, 0.06% (0.3 against 0.5 ms).
_NARROW_PASS_SHARE = 0.002
# The hyperplanes are drawn from a fixed seed, so every process sketches alike.
_PLANES_SEED = 20_150_415
_INITIAL_ROWS = 1_024
_CODE_CHUNK = 65_536

_DTYPES = ("f32", "f16", "i8")
_NUMPY_DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8}
_HNSW_SETTINGS = ("connectivity", "expansion_add", "expansion_search")


def _one_of_dtypes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _DTYPES:
        raise CacheConfigError(
            f"`{attribute.name}` must be one of 'f32', 'f16', 'i8', got {value!r}"
        )


def _probability(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, float | int) or isinstance(value, bool) or not 0 < value < 1:
        raise CacheConfigError(f"`{attribute.name}` must be in (0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class AnnConfig:
    """When a partition of the semantic cache leaves brute force, and how it stores vectors.

    Past `min_entries` a lookup filters the partition by 256-bit sign sketches and computes
    exact similarities only for the entries the filter keeps (see the module `_ann`). It is
    approximate only in what it may skip: an entry at the threshold is skipped with
    probability at most `miss_rate`. Measured by `bench/cache.py` (random 384-dimensional
    vectors, queries at similarity 0.85/0.9/0.95, threshold 0.02 below): recall 1.000 at
    100k and 1M entries with every dtype. On the labelled pairs
    at 0.95: 1.000 with `"f32"` and `"f16"`, 0.966 with `"i8"` (which also made 32 hits
    brute force does not: its rounding moves pairs across the threshold).

    Memory per million entries of 384 dimensions: 1.46 GiB for `"f32"` (1,536 bytes of
    vector and 32 of sketch each), 0.75 GiB for `"f16"` and 0.39 GiB for `"i8"` (one float32
    scale per row), plus the ids and recency order of the index.

    Args:
        min_entries: Entries at which a partition switches from brute force; it keeps the
            sketches until it empties.
        dtype: How vectors are stored once switched: `"f32"` (exact), `"f16"` (similarity
            within about 1e-3) or `"i8"` (within about 1e-2, one scale per row). The
            rounding only matters for entries that close to the threshold.
        miss_rate: The largest expected share (over the random hyperplanes) of entries
            exactly at the threshold that the sketch filter skips, in (0, 1).
        connectivity: Deprecated and ignored (the HNSW graph is gone); warns when set.
        expansion_add: Deprecated and ignored; warns when set.
        expansion_search: Deprecated and ignored; warns when set.
    """

    min_entries: int = attrs.field(default=DEFAULT_ANN_MIN_ENTRIES, validator=at_least(2))
    dtype: Literal["f32", "f16", "i8"] = attrs.field(default="f32", validator=_one_of_dtypes)
    miss_rate: float = attrs.field(default=DEFAULT_MISS_RATE, validator=_probability)
    connectivity: int | None = attrs.field(default=None, validator=at_least(2))
    expansion_add: int | None = attrs.field(default=None, validator=at_least(1))
    expansion_search: int | None = attrs.field(default=None, validator=at_least(1))

    def __attrs_post_init__(self) -> None:
        for name in _HNSW_SETTINGS:
            if getattr(self, name) is not None:
                warnings.warn(
                    f"`AnnConfig({name}=...)` is ignored: the HNSW graph gave way to sketch"
                    " filtering, which has no graph to tune; drop the argument",
                    DeprecationWarning,
                    stacklevel=3,
                )


def ann_available() -> bool:
    """Whether large partitions can leave brute force (numpy 2's `bitwise_count`).

    Returns:
        `True` if numpy has `bitwise_count` (numpy >= 2.0, the `ann` extra).
    """
    return hasattr(np, "bitwise_count")


def prepare_ann() -> bool:
    """Build the sketch filter's compiled scan now rather than in a thread when the
    process's first partition switches (0.6-2 s once per process; it blocks, so call it at
    start-up or through `trio.to_thread.run_sync`).

    Returns:
        `True` if the compiled scan is ready; `False` without numba or if numba failed to
        build it (a `RuntimeWarning` says why), and lookups then use numpy's scan.
    """
    return compiled_kernel() is not None


@functools.lru_cache(maxsize=256)
def bits_bound(bits: int, threshold: float, miss: float) -> int:
    """The least count of differing sketch bits that a vector at `threshold` exceeds with
    probability at most `miss` (binomial in `bits` with p = angle / pi)."""
    p = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    total = 0.0
    for count in range(bits + 1):
        total += math.comb(bits, count) * p**count * (1 - p) ** (bits - count)
        if total >= 1 - miss:
            return count
    return bits


@functools.lru_cache(maxsize=256)
def _first_pass_words(threshold: float, miss: float) -> int:
    """1 or 2: the 64-bit words the first pass reads at `threshold` (`_NARROW_PASS_SHARE`)."""
    bound = bits_bound(64, threshold, miss)
    unrelated = sum(math.comb(64, count) for count in range(bound + 1)) / 2**64
    return 1 if unrelated <= _NARROW_PASS_SHARE else 2


@functools.cache
def _planes(dim: int) -> NDArray[np.float32]:
    return np.random.default_rng(_PLANES_SEED).standard_normal((dim, _BITS), dtype=np.float32)


@attrs.define(eq=False)
class SketchRows:
    """Rows 0..n-1 of stored vectors with their sign sketches; removal moves the last row.

    Requires `ann_available()`. Rows are unit float32 vectors on the way in. One store
    serves one thread at a time, as the whole index does.
    """

    dim: int
    _dtype: Literal["f32", "f16", "i8"] = attrs.field(alias="dtype")
    _miss_rate: float = attrs.field(alias="miss_rate")
    _size: int = attrs.field(init=False, default=0)
    _store: NDArray[Any] = attrs.field(init=False)
    # int8 rows are the vector times 127 / its largest component; this is that divisor.
    _scales: NDArray[np.float32] = attrs.field(init=False)
    # Word-major: one pass reads one contiguous array of 64-bit words.
    _codes: NDArray[np.uint64] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        build_in_background()
        self._store = np.empty((_INITIAL_ROWS, self.dim), dtype=_NUMPY_DTYPES[self._dtype])
        self._scales = np.empty(_INITIAL_ROWS, dtype=np.float32)
        self._codes = np.empty((WORDS, _INITIAL_ROWS), dtype=np.uint64)

    @classmethod
    def of(cls, rows: NDArray[np.float32], config: AnnConfig) -> SketchRows:
        """A store holding `rows` (unit float32) in order, as `config` says."""
        store = cls(int(rows.shape[1]), dtype=config.dtype, miss_rate=config.miss_rate)
        store._reserve(len(rows))
        for start in range(0, len(rows), _CODE_CHUNK):
            block = rows[start : start + _CODE_CHUNK]
            store._write(start, block)
        store._size = len(rows)
        return store

    def __len__(self) -> int:
        return self._size

    @property
    def bytes_per_row(self) -> int:
        """Stored bytes per row: vector, scale and sketch."""
        return int(self._store.itemsize * self.dim + self._scales.itemsize + 8 * WORDS)

    def append(self, row: NDArray[np.float32]) -> None:
        self._reserve(self._size + 1)
        self._write(self._size, row.reshape(1, -1))
        self._size += 1

    def replace(self, index: int, row: NDArray[np.float32]) -> None:
        self._write(index, row.reshape(1, -1))

    def remove(self, index: int) -> None:
        """Drop row `index`, moving the last row into its place."""
        last = self._size - 1
        if index != last:
            self._store[index] = self._store[last]
            self._scales[index] = self._scales[last]
            self._codes[:, index] = self._codes[:, last]
        self._size = last

    def row(self, index: int) -> NDArray[np.float32]:
        """Row `index` as stored, widened to float32."""
        return self._widened(np.array([index])).reshape(-1)

    def nearest(self, query: NDArray[np.float32], threshold: float) -> tuple[int, float] | None:
        """The row nearest to `query` among those the sketches keep at `threshold`, with
        its similarity from the stored vector; `None` if none of them reaches `threshold`."""
        size = self._size
        if not size:
            return None
        code = np.packbits(query @ _planes(self.dim) > 0, bitorder="little").view(np.uint64)
        half = self._miss_rate / 2
        words = _first_pass_words(threshold, half)
        first, full = bits_bound(64 * words, threshold, half), bits_bound(_BITS, threshold, half)
        kept = scan(self._codes, size, SketchQuery(code, words, first, full))
        if not len(kept):
            return None
        similarities = self._widened(kept) @ query
        best = int(np.argmax(similarities))
        if similarities[best] < threshold:
            return None
        return int(kept[best]), float(similarities[best])

    def _widened(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        stored = self._store[rows].astype(np.float32)
        if self._dtype == "i8":
            stored *= self._scales[rows, None]
        return stored

    def _write(self, start: int, rows: NDArray[np.float32]) -> None:
        end = start + len(rows)
        if self._dtype == "i8":
            scales = np.max(np.abs(rows), axis=1) / np.float32(127)
            self._scales[start:end] = scales
            self._store[start:end] = np.rint(rows / scales[:, None])
        else:
            self._store[start:end] = rows
        self._codes[:, start:end] = _sketch(rows)

    def _reserve(self, rows: int) -> None:
        capacity = self._store.shape[0]
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity)
        store = np.empty((capacity, self.dim), dtype=self._store.dtype)
        store[: self._size] = self._store[: self._size]
        scales = np.empty(capacity, dtype=np.float32)
        scales[: self._size] = self._scales[: self._size]
        codes = np.empty((WORDS, capacity), dtype=np.uint64)
        codes[:, : self._size] = self._codes[:, : self._size]
        self._store, self._scales, self._codes = store, scales, codes


def _sketch(rows: NDArray[np.float32]) -> NDArray[np.uint64]:
    """Word-major sign sketches of `rows`: shape (`WORDS`, rows)."""
    bits = (rows @ _planes(rows.shape[1])) > 0
    packed = np.packbits(bits, axis=1, bitorder="little")
    return np.ascontiguousarray(packed.view(np.uint64).T)
