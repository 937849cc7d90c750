"""Cache benchmark: exact gets, semantic lookups beside their memory floor, insert rates.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/cache.py

One BLAS thread: a lookup is one matrix-vector product, and on a busy machine waking
BLAS worker threads costs more than the product (10k lookups measured 8 ms with threads
under load, 0.2-0.4 ms without).

The floor of a lookup is the bytes it must read divided by the memory bandwidth this script
measures with a large numpy copy; a brute-force semantic lookup can be no faster.
"""

from __future__ import annotations

import copy
import os
import pickle
import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table
from specroute.cache import (
    ExactCache,
    ExactCacheConfig,
    SemanticCache,
    SemanticCacheConfig,
    make_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable

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
        cache = SemanticCache(SemanticCacheConfig(maxsize=size))
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


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main() -> None:
    bandwidth = copy_bandwidth()
    table = Table(title="specroute.cache")
    table.add_column("operation")
    table.add_column("time per op", justify="right")
    table.add_column("target")
    table.add_column("note")
    exact_rows(table)
    semantic_rows(table, bandwidth)
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
