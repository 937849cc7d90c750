"""Cache benchmark: exact gets, semantic lookups beside their memory floor, insert rates,
and the HNSW graph large partitions switch to (lookup time, recall, memory per million).

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/cache.py [--million]

`--million` adds the 1M-entry graph (a build of several minutes per dtype on 2 cores).

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
    CacheOptions,
    ExactCache,
    ExactCacheConfig,
    HashingEmbedder,
    SemanticCache,
    SemanticCacheConfig,
    ann_available,
    make_key,
)
from specroute.cache._ann import HnswVectors

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

DIMENSION = 384
RNG = np.random.default_rng(0)
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
    rows = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def perturbed(rows: NDArray[np.float32], similarity: float, rng: np.random.Generator) -> Any:
    """Copies of `rows` at exactly `similarity` to their source: the known true neighbours."""
    noise = rng.standard_normal(rows.shape, dtype=np.float32)
    noise -= np.sum(noise * rows, axis=1, keepdims=True) * rows
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return similarity * rows + np.sqrt(1 - similarity**2) * noise


def ann_rows(table: Table, sizes: list[int], dtypes: list[str]) -> None:
    """HNSW graphs as a partition builds them: lookup, recall at the threshold, memory.

    Lookup time is given twice: wall-clock median, and the median CPU time of the calling
    thread, which on a shared machine leaves out the time other processes held the core.
    """
    rng = np.random.default_rng(1)
    for size in sizes:
        rows = unit_rows(size, rng)
        picks = rng.integers(0, size, 300)
        for dtype in dtypes:
            start = time.perf_counter()
            graph = HnswVectors.build(
                AnnConfig(dtype=dtype),  # type: ignore[arg-type]
                np.arange(size, dtype=np.uint64),
                rows,
            )
            build = time.perf_counter() - start
            samples = []
            cpu = []
            recalls = []
            for similarity in (0.95, 0.97, 0.99):
                # Threshold just under the pair's similarity: brute force always hits the
                # source row, so recall is the share of those hits the graph also makes.
                threshold = similarity - 0.02
                queries = perturbed(rows[picks], similarity, rng)
                found = 0
                for query, source in zip(queries, picks, strict=True):
                    start = time.perf_counter()
                    start_cpu = time.thread_time()
                    label, score = graph.nearest(query)
                    cpu.append(time.thread_time() - start_cpu)
                    samples.append(time.perf_counter() - start)
                    found += label == source and score >= threshold
                recalls.append(found / len(picks))
            per_million = graph.memory_bytes / size * 1e6
            target = {100_000: "< 1 ms", 1_000_000: "< 2 ms"}.get(size, "")
            table.add_row(
                f"HNSW {dtype} lookup, {size:,}",
                _us(statistics.median(samples)),
                target,
                f"CPU {_us(statistics.median(cpu))}; p99 {_us(float(np.percentile(samples, 99)))};"
                " recall"
                f" {'/'.join(f'{r:.3f}' for r in recalls)} at sim 0.95/0.97/0.99;"
                f" {per_million / 2**30:.2f} GiB per 1M; build {build:.0f} s",
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
    exact = queries @ rows.T
    truth = np.argmax(exact, axis=1)
    answered = np.max(exact, axis=1) >= threshold
    for dtype in ("f32", "f16", "i8"):
        graph = HnswVectors.build(
            AnnConfig(dtype=dtype), np.arange(len(stored), dtype=np.uint64), rows
        )
        found = 0
        for query, expected, hit in zip(queries, truth, answered, strict=True):
            if hit:
                label, score = graph.nearest(query)
                found += label == expected and score >= threshold
        table.add_row(
            f"HNSW {dtype} recall, labelled pairs",
            f"{found / answered.sum():.3f}",
            ">= 0.99",
            f"{answered.sum()} brute-force hits at {threshold} among {len(pairs)} queries,"
            f" {len(stored)} entries",
        )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--million", action="store_true", help="add the 1M-entry graph")
    parser.add_argument("--ann-only", action="store_true", help="only the HNSW rows")
    parser.add_argument("--dtypes", default="f32,f16,i8", help="HNSW dtypes to measure")
    parser.add_argument(
        "--ann-sizes", default="10000,100000", help="comma-separated HNSW sizes (default 10k,100k)"
    )
    args = parser.parse_args()
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
        sizes = [int(size) for size in args.ann_sizes.split(",")]
        ann_rows(table, sizes + ([1_000_000] if args.million else []), args.dtypes.split(","))
    else:
        table.add_row("HNSW rows", "skipped", "", "pip install 'specroute[ann]'")
    console = Console()
    console.print(table)
    console.print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    console.print(
        f"memory bandwidth (numpy copy, read + write): {bandwidth / 1e9:.1f} GB/s;"
        f" a lookup's floor is its n x {DIMENSION} float32 matrix read at that rate."
        " A matrix that fits in the last-level cache (1k, 10k) can beat this DRAM floor."
    )


if __name__ == "__main__":
    main()
