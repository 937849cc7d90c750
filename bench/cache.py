"""Cache benchmark: exact gets, semantic lookups beside their memory floor, insert rates,
and the sketch-filtered store large partitions switch to (lookup time, recall, memory).

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/cache.py [--ann-only] [--size 1000000]
[--scan numpy]

`--size 1000000` measures 1M entries (filling the cache through `put` takes minutes per
dtype on 2 cores; pass `--dtypes f32` to measure one).

One BLAS thread: a lookup is one matrix-vector product, and on a busy machine waking
BLAS worker threads costs more than the product (10k lookups measured 8 ms with threads
under load, 0.2-0.4 ms without).

The floor of a lookup is the bytes it must read divided by the memory bandwidth this script
measures with a large numpy copy; a brute-force semantic lookup can be no faster.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table
from specroute.cache import (
    AnnConfig,
    CacheKey,
    CacheOptions,
    ExactCache,
    ExactCacheConfig,
    HashingEmbedder,
    SemanticCache,
    SemanticCacheConfig,
    SemanticIndex,
    SemanticIndexConfig,
    SemanticMatch,
    _sketch_scan,
    ann_available,
    make_key,
)
from specroute.cache._ann import DEFAULT_MISS_RATE, SketchRows
from specroute.cache._semantic_index import SIMILARITY_TOLERANCE

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

DIMENSION = 384
RNG = np.random.default_rng(0)
SIMILARITIES = (0.85, 0.9, 0.95)
RESULT = {"route": "search", "workflow": ["discover", "browse", "answer"], "score": 0.93}


def per_call(function: Callable[[], Any], calls: int, repeats: int = 5) -> float:
    """Best mean seconds per call over `repeats` runs of `calls` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def copy_bandwidth() -> float:
    """Bytes per second moved (read + write) by a 256 MB numpy copy, best of 5."""
    source = np.ones(64 * 2**20, dtype=np.float32)
    target = np.empty_like(source)
    seconds = min(_timed(lambda: np.copyto(target, source)) for _ in range(5))
    return 2 * source.nbytes / seconds


def _timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def exact_rows(table: Table) -> None:
    cache = ExactCache(ExactCacheConfig(maxsize=200_000))
    keys = [make_key("discovery", "1", "acme", {"request": f"request {n}"}) for n in range(100_000)]
    start = time.perf_counter()
    for key in keys:
        cache.put(key, RESULT)
    insert = (time.perf_counter() - start) / len(keys)
    picks = [keys[i] for i in RNG.integers(0, len(keys), 1000)]
    iterator = iter(picks * 1000)
    get = per_call(lambda: cache.get(next(iterator)), 1000)
    text_cache = ExactCache(ExactCacheConfig(maxsize=200_000))
    for key in keys:
        text_cache.put(key, "search")
    iterator = iter(picks * 1000)
    get_text = per_call(lambda: text_cache.get(next(iterator)), 1000)
    make = per_call(lambda: make_key("discovery", "1", "acme", {"request": "hello"}), 10_000)
    data = pickle.dumps(RESULT)
    unpickle = per_call(lambda: pickle.loads(data), 10_000)
    deep = per_call(lambda: copy.deepcopy(RESULT), 10_000)
    table.add_row("exact get, dict hit, 100k", _us(get), "< 10 µs", "")
    table.add_row("exact get, str hit, 100k", _us(get_text), "", "")
    table.add_row("  copy: pickle.loads", _us(unpickle), "", "")
    table.add_row("  copy: deepcopy (not used)", _us(deep), "", "")
    table.add_row("make_key, one str input", _us(make), "", "")
    table.add_row("exact put, 100k", _us(insert), "", f"{1 / insert:,.0f} /s")


def semantic_rows(table: Table, bandwidth: float) -> None:
    for size in (1_000, 10_000, 100_000):
        # ann=None: these rows measure brute force at every size.
        cache = SemanticCache(SemanticCacheConfig(maxsize=size, ann=None))
        vectors = RNG.standard_normal((size, DIMENSION)).astype(np.float32)
        keys = [make_key("discovery", "1", "acme", {"n": n}) for n in range(size)]
        start = time.perf_counter()
        for key, vector in zip(keys, vectors, strict=True):
            cache.put(key, vector, RESULT)
        insert = (time.perf_counter() - start) / size
        query_key = make_key("discovery", "1", "acme", {"n": -1})
        queries = RNG.standard_normal((50, DIMENSION)).astype(np.float32)
        samples = []
        for query in queries:
            start = time.perf_counter()
            cache.search(query_key, query, 0.95)
            samples.append(time.perf_counter() - start)
        lookup = statistics.median(samples)
        floor = size * DIMENSION * 4 / bandwidth
        target = "< 1 ms" if size == 10_000 else ""
        table.add_row(
            f"semantic lookup, {size:,}",
            _us(lookup),
            target,
            f"floor {_us(floor)} ({lookup / floor:.1f}x)",
        )
        table.add_row(f"semantic put, {size:,}", _us(insert), "", f"{1 / insert:,.0f} /s")


def unit_rows(count: int, rng: np.random.Generator) -> NDArray[np.float32]:
    rows = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, 100_000):
        block = rng.standard_normal((min(100_000, count - start), DIMENSION), dtype=np.float32)
        rows[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return rows


def perturbed(rows: NDArray[np.float32], similarity: float, rng: np.random.Generator) -> Any:
    """Copies of `rows` at exactly `similarity` to their source: the known true neighbours."""
    noise = rng.standard_normal(rows.shape, dtype=np.float32)
    noise -= np.sum(noise * rows, axis=1, keepdims=True) * rows
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (similarity * rows + np.sqrt(1 - similarity**2) * noise).astype(np.float32)


def brute_force_truth(
    rows: NDArray[np.float32], queries: NDArray[np.float32]
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Each query's nearest row and its similarity, by brute force in blocks."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.zeros(len(queries), dtype=np.intp)
    for start in range(0, len(rows), 100_000):
        similarities = queries @ rows[start : start + 100_000].T
        block_best = np.argmax(similarities, axis=1)
        block_max = similarities[np.arange(len(queries)), block_best]
        better = block_max > best
        best[better] = block_max[better]
        where[better] = block_best[better] + start
    return where, best


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def filled_cache(
    rows: NDArray[np.float32], ann: AnnConfig | None
) -> tuple[SemanticCache, list[CacheKey], float]:
    """A cache holding `rows` under keys n = 0.., its keys, and its RSS growth in bytes."""
    before = _rss()
    cache = SemanticCache(SemanticCacheConfig(maxsize=len(rows), ann=ann))
    keys = [make_key("discovery", "1", "acme", {"n": n}) for n in range(len(rows))]
    for key, row in zip(keys, rows, strict=True):
        cache.put(key, row, "search")
    return cache, keys, float(_rss() - before)


def timed_lookups(
    cache: SemanticCache, queries: NDArray[np.float32], threshold: float
) -> tuple[float, float, list[SemanticMatch | None]]:
    """Median wall and CPU seconds per `cache.search` (the public path), and the answers."""
    query_key = make_key("discovery", "1", "acme", {"n": -1})
    wall = []
    cpu = []
    answers = []
    for query in queries:
        start = time.perf_counter()
        start_cpu = time.thread_time()
        answers.append(cache.search(query_key, query, threshold))
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(wall), statistics.median(cpu), answers


def ann_rows(table: Table, sizes: list[int], dtypes: list[str], repeats: int) -> None:
    """The sketch-filtered store through `SemanticCache.search`: time, recall, memory.

    Queries are perturbed copies of stored vectors at similarity 0.85, 0.9 and 0.95, each
    searched at a threshold 0.02 below its similarity; recall is the share of the queries
    brute force answers (its nearest entry reaches the threshold) that the cache answers
    with the same entry. Times are per run the median over the queries; each group runs
    `repeats` times and the table gives the best and the median of those runs, wall clock
    and CPU time of the calling thread (which leaves out time other processes held the core
    on this shared machine). Below 0.9 the first pass reads 128 sketch bits, else 64.
    """
    rng = np.random.default_rng(1)
    for size in sizes:
        rows = unit_rows(size, rng)
        picks = rng.integers(0, size, 300)
        groups = [(s, perturbed(rows[picks[n::3]], s, rng)) for n, s in enumerate(SIMILARITIES)]
        truths = [brute_force_truth(rows, queries) for _, queries in groups]
        for position, dtype in enumerate(dtypes):
            start = time.perf_counter()
            cache, keys, grown = filled_cache(rows, AnnConfig(dtype=dtype))  # type: ignore[arg-type]
            fill = time.perf_counter() - start
            stored = SketchRows(DIMENSION, dtype=dtype, miss_rate=DEFAULT_MISS_RATE)  # type: ignore[arg-type]
            target = {100_000: "< 1 ms", 1_000_000: "< 2 ms"}.get(size, "")
            for group, ((similarity, queries), (where, best)) in enumerate(
                zip(groups, truths, strict=True)
            ):
                threshold = round(similarity - 0.02, 2)
                runs = [timed_lookups(cache, queries, threshold) for _ in range(repeats)]
                walls = [run[0] for run in runs]
                cpus = [run[1] for run in runs]
                recall = _recall(runs[0][2], [keys[n] for n in where], best, threshold)
                table.add_row(
                    f"sketch {dtype} lookup, {size:,}, threshold {threshold}",
                    f"{_us(min(walls))} / {_us(statistics.median(walls))}",
                    target,
                    f"CPU {_us(min(cpus))} / {_us(statistics.median(cpus))} (best / median of"
                    f" {repeats}); recall {recall:.3f} on copies at {similarity}"
                    + (
                        f"; vectors + sketches {stored.bytes_per_row * 1e6 / 2**30:.2f} GiB"
                        f" per 1M; fill {fill:.0f} s"
                        if group == 0
                        else ""
                    )
                    + (
                        f"; whole cache RSS {grown / size * 1e6 / 2**30:.2f} GiB per 1M"
                        if group == 0 and position == 0
                        else ""
                    ),
                )
            del cache


def hnsw_rows(table: Table, sizes: list[int], repeats: int) -> None:
    """The design the sketch store replaced: a usearch HNSW graph (`pip install usearch`).

    The same random vectors and perturbed queries as `ann_rows`; the graph alone (no cache
    around it), built on two threads, searched on one, at two search breadths.
    """
    try:
        # Optional: only this comparison needs it.
        from usearch.index import Index
    except ImportError:
        table.add_row("HNSW comparison", "skipped", "", "pip install usearch")
        return
    rng = np.random.default_rng(1)
    for size in sizes:
        rows = unit_rows(size, rng)
        picks = rng.integers(0, size, 300)
        groups = [(s, perturbed(rows[picks[n::3]], s, rng)) for n, s in enumerate(SIMILARITIES)]
        for dtype in ("f32", "i8"):
            start = time.perf_counter()
            index = Index(ndim=DIMENSION, metric="cos", dtype=dtype, expansion_add=128)
            index.add(np.arange(size, dtype=np.uint64), rows, threads=2)
            build = time.perf_counter() - start
            for expansion in (64, 256):
                index.expansion_search = expansion
                cpus = []
                found = 0
                for run in range(repeats):
                    samples = []
                    for n, (_, queries) in enumerate(groups):
                        for query, source in zip(queries, picks[n::3], strict=True):
                            start_cpu = time.thread_time()
                            label = int(index.search(query, 1, threads=1).keys[0])
                            samples.append(time.thread_time() - start_cpu)
                            found += run == 0 and label == source
                    cpus.append(statistics.median(samples))
                table.add_row(
                    f"HNSW (usearch) {dtype}, {size:,}, {expansion} candidates",
                    "",
                    "",
                    f"CPU {_us(min(cpus))} / {_us(statistics.median(cpus))} (best / median of"
                    f" {repeats}); recall {found / len(picks):.3f} over sim"
                    f" {'/'.join(str(s) for s in SIMILARITIES)}; build {build:.0f} s",
                )


def _recall(
    answers: list[SemanticMatch | None],
    truth: list[CacheKey],
    best: NDArray[np.float32],
    threshold: float,
) -> float:
    """Of the queries brute force answers, the share answered with the same entry."""
    answered = best >= threshold
    same = np.array(
        [
            answer is not None and answer.key == key
            for answer, key in zip(answers, truth, strict=True)
        ]
    )
    return float(np.sum(same & answered) / max(1, int(np.sum(answered))))


def switch_rows(table: Table, sizes: list[int], repeats: int) -> None:
    """Brute force against the sketch store at small sizes: where the switch pays."""
    rng = np.random.default_rng(2)
    for size in sizes:
        rows = unit_rows(size, rng)
        queries = perturbed(rows[rng.integers(0, size, 200)], 0.9, rng)
        cells = []
        for ann in (None, AnnConfig(min_entries=2)):
            cache, _, _ = filled_cache(rows, ann)
            cpus = [timed_lookups(cache, queries, 0.88)[1] for _ in range(repeats)]
            cells.append(f"{_us(min(cpus))} / {_us(statistics.median(cpus))}")
        table.add_row(
            f"switch: brute force vs sketch, {size:,}",
            "",
            "",
            f"CPU {cells[0]} vs {cells[1]} (best / median of {repeats})",
        )


def labelled_pair_rows(table: Table) -> None:
    """Recall at the default threshold on the labelled pairs the tests ship (hashing)."""
    path = Path(__file__).parent.parent / "tests" / "cache" / "labelled_pairs.tsv"
    pairs = [
        line.split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    # Every distinct first text is stored; every second text is a query.
    stored = sorted({pair[1] for pair in pairs})
    embedder = HashingEmbedder()
    rows = embedder.encode(stored)
    queries = embedder.encode([pair[2] for pair in pairs])
    threshold = CacheOptions().threshold
    where, best = brute_force_truth(rows, queries)
    answered = best >= threshold - SIMILARITY_TOLERANCE
    for dtype in ("f32", "f16", "i8"):
        index: SemanticIndex[int] = SemanticIndex(
            SemanticIndexConfig(ann=AnnConfig(min_entries=2, dtype=dtype))  # type: ignore[arg-type]
        )
        for n, row in enumerate(rows):
            index.insert(n, row, partition="p", namespace="n")
        found = 0
        extra = 0
        for query, expected, top, hit in zip(queries, where, best, answered, strict=True):
            match = index.lookup("p", query, threshold)
            found += (
                bool(hit)
                and match is not None
                and (match.id == expected or query @ rows[match.id] >= top - SIMILARITY_TOLERANCE)
            )
            extra += not hit and match is not None
        table.add_row(
            f"sketch {dtype} recall, labelled pairs",
            f"{found / answered.sum():.3f}",
            ">= 0.99",
            f"{answered.sum()} brute-force hits at {threshold} among {len(pairs)} queries,"
            f" {len(stored)} entries; {extra} hits brute force does not make",
        )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ann-only", action="store_true", help="only the approximate rows")
    parser.add_argument("--dtypes", default="f32,f16,i8", help="storage dtypes to measure")
    parser.add_argument(
        "--size",
        default="100000",
        help="comma-separated sizes of the approximate rows (1000000: about 3 min a dtype)",
    )
    parser.add_argument(
        "--switch-sizes", default="1000,2000,4000,8000,16000", help="sizes of the switch rows"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row")
    parser.add_argument(
        "--compare-hnsw", action="store_true", help="add usearch HNSW graphs at --size"
    )
    parser.add_argument(
        "--scan",
        choices=("compiled", "numpy"),
        default="compiled",
        help="the sketch scan: numba's compiled loop (built before timing) or numpy's passes",
    )
    args = parser.parse_args()
    if args.scan == "numpy":
        _sketch_scan._built.started = True  # never build the loop: every scan is numpy's
    elif _sketch_scan.compiled_kernel() is None:
        args.scan = "numpy (numba is not installed)"
    bandwidth = copy_bandwidth()
    table = Table(title="specroute.cache")
    table.add_column("operation")
    table.add_column("time per op", justify="right")
    table.add_column("target")
    table.add_column("note")
    if not args.ann_only:
        exact_rows(table)
        semantic_rows(table, bandwidth)
    if ann_available():
        labelled_pair_rows(table)
        switch_rows(
            table, [int(size) for size in args.switch_sizes.split(",") if size], args.repeats
        )
        sizes = [int(size) for size in args.size.split(",")]
        ann_rows(table, sizes, args.dtypes.split(","), args.repeats)
        if args.compare_hnsw:
            hnsw_rows(table, sizes, args.repeats)
    else:
        table.add_row("approximate rows", "skipped", "", "needs numpy >= 2.0 (specroute[ann])")
    console = Console()
    console.print(table)
    console.print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    console.print(f"sketch scan: {args.scan}")
    console.print(f"load average at the end: {os.getloadavg()}")
    console.print(
        f"memory bandwidth (numpy copy, read + write): {bandwidth / 1e9:.1f} GB/s;"
        f" a lookup's floor is its n x {DIMENSION} float32 matrix read at that rate."
        " A matrix that fits in the last-level cache (1k, 10k) can beat this DRAM floor."
    )


if __name__ == "__main__":
    main()
