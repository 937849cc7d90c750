"""Shared state on Redis: exact get/set and semantic lookups against in-process, and the
speed-up of N worker processes over one on a mixed workload.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/redis.py [--workers 4] [--miss-seconds 1]

It starts its own redis-server (Debian's package: `make redis-server`) on 127.0.0.1 on a
free port, without persistence, and stops it at the end.

The mixed workload: `--requests` planner-style requests drawn (seeded) from `--distinct`
distinct ones, each a router step (cached; on a miss a `--miss-seconds` "model call", 1 s
by default) then a 20 ms branch step; each worker runs its share with 8 flows at a time.
One worker against N workers, the N either sharing one Redis cache or each with its own
in-memory cache: sharing computes each distinct miss once over all workers, private caches
once per worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import trio
from rich.console import Console
from rich.table import Table
from specroute.cache import (
    CacheHit,
    CacheMiss,
    CacheOptions,
    RedisCacheConfig,
    StepIdentity,
    open_cache,
    open_redis,
    open_redis_cache,
)
from specroute.engine import Flow, Route, router, step

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from numpy.typing import NDArray

DIMENSION = 384
RESULT = {"route": "search", "workflow": ["discover", "browse", "answer"], "score": 0.93}
CALLS = 2000


@contextlib.contextmanager
def redis_server() -> Any:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench/redis.py: error: redis-server is not installed; run `make redis-server`")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


class FixedEmbedder:
    """Returns a stored vector per text: the benchmark times lookups, not embedding."""

    def __init__(self) -> None:
        self.vectors: dict[str, NDArray[np.float32]] = {}
        self.rng = np.random.default_rng(0)

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        rows = []
        for text in texts:
            if text not in self.vectors:
                self.vectors[text] = self.rng.standard_normal(DIMENSION).astype(np.float32)
            rows.append(self.vectors[text])
        return np.stack(rows)


async def per_call(function: Callable[[], Awaitable[Any]], calls: int = CALLS) -> list[float]:
    """Seconds of each of `calls` awaited calls."""
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        await function()
        seconds.append(time.perf_counter() - start)
    return seconds


def summary(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    median = statistics.median(ordered) * 1e6
    p99 = ordered[int(0.99 * (len(ordered) - 1))] * 1e6
    return f"median {median:.0f} us, p99 {p99:.0f} us"


async def cache_latencies(url: str, entries: int) -> list[tuple[str, str, str]]:
    """Exact hit, store, and semantic hit at `entries`, in-process against Redis."""
    rows = []
    exact = CacheOptions()
    semantic = CacheOptions(exact=False, semantic="text", threshold=0.99)
    identity = StepIdentity("bench")
    embedder = FixedEmbedder()
    async with (
        open_cache(embedder=embedder) as memory,
        open_redis(url) as redis,
        open_redis_cache(
            redis, config=RedisCacheConfig(max_entries=entries + 10), embedder=embedder
        ) as shared,
    ):
        await redis.run(lambda r: r.set("bench:bare", b"v" * 100))

        async def bare_get() -> None:
            await redis.run(lambda r: r.get("bench:bare"))

        rows.append(("coredis alone", "GET (the floor)", summary(await per_call(bare_get))))
        for name, cache in (("in-process Cache", memory), ("RedisCache", shared)):
            miss = await cache.lookup(identity, exact, "acme", {"n": -1})
            assert isinstance(miss, CacheMiss)
            await cache.store(miss, RESULT, seconds=1.0)

            async def hit(cache: Any = cache) -> None:
                assert isinstance(await cache.lookup(identity, exact, "acme", {"n": -1}), CacheHit)

            async def store(cache: Any = cache, miss: CacheMiss = miss) -> None:
                await cache.store(miss, RESULT, seconds=1.0)

            rows.append((name, "exact hit", summary(await per_call(hit))))
            rows.append((name, "store", summary(await per_call(store))))
            await fill(cache, identity, semantic, entries)

            async def near(cache: Any = cache) -> None:
                found = await cache.lookup(identity, semantic, "acme", {"text": "t7"})
                assert isinstance(found, CacheHit)

            label = f"semantic hit, {entries} x {DIMENSION}"
            rows.append((name, label, summary(await per_call(near, 500))))
    return rows


async def fill(cache: Any, identity: StepIdentity, options: CacheOptions, entries: int) -> None:
    """Store `entries` semantic entries, 32 at a time (a Redis store is a round trip)."""
    limiter = trio.CapacityLimiter(32)

    async def one(n: int) -> None:
        async with limiter:
            found = await cache.lookup(identity, options, "acme", {"text": f"t{n}"})
            assert isinstance(found, CacheMiss)
            await cache.store(found, RESULT, seconds=1.0)

    async with trio.open_nursery() as nursery:
        for n in range(entries):
            nursery.start_soon(one, n)


# The mixed workload, run by each worker process.
MISS_SECONDS = 1.0
BRANCH_SECONDS = 0.02
COMPUTED: list[str] = []


@step(cache=CacheOptions(depends_on={"model": "bench"}))
async def discovery(request: str) -> Route:
    COMPUTED.append(request)
    await trio.sleep(MISS_SECONDS)
    return Route("answer")


@step(output="answer")
async def answer(request: str) -> str:
    await trio.sleep(BRANCH_SECONDS)
    return request.upper()


FLOW = Flow(
    [router(discovery, {"answer": Flow([answer], name="answer", outputs=["answer"])})],
    name="mixed",
    inputs=["request"],
)


@contextlib.asynccontextmanager
async def worker_cache(url: str | None, prefix: str) -> AsyncIterator[Any]:
    if url is None:
        async with open_cache() as cache:
            yield cache
    else:
        async with open_redis(url) as redis:
            config = RedisCacheConfig(prefix=prefix)
            async with open_redis_cache(redis, config=config) as cache:
                yield cache


async def worker(requests: list[str], url: str | None, prefix: str) -> None:
    limiter = trio.CapacityLimiter(8)
    async with worker_cache(url, prefix) as cache:
        # Imported and connected: say so, and start when every worker is ready.
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)

        async def one(request: str) -> None:
            async with limiter:
                await FLOW.run(request=request, mode="sequential", cache=cache)

        async with trio.open_nursery() as nursery:
            for request in requests:
                nursery.start_soon(one, request)
    print(json.dumps({"computed": len(COMPUTED)}))


def workload(requests: int, distinct: int) -> list[str]:
    rng = random.Random(0)
    return [f"request {rng.randrange(distinct)}" for _ in range(requests)]


def run_workers(
    n: int, url: str | None, requests: list[str], prefix: str, miss: float
) -> tuple[float, int]:
    """Wall seconds from the start signal to the last worker's result, and misses computed.

    Workers import and connect first (a second or more each on a busy machine), then all
    start together, so the figure is the workload's, not Python's start-up.
    """
    shares = [requests[i::n] for i in range(n)]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(share), url or "", prefix, str(miss)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for share in shares
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
    start = time.perf_counter()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.flush()
    computed = 0
    for process in processes:
        assert process.stdout is not None
        out = process.stdout.read()
        process.wait()
        computed += json.loads(out.decode().strip().splitlines()[-1])["computed"]
    return time.perf_counter() - start, computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--distinct", type=int, default=50)
    parser.add_argument("--miss-seconds", type=float, default=1.0)
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    console = Console()
    with redis_server() as url:
        table = Table(title="cache operations (one process, 127.0.0.1 Redis)")
        for column in ("cache", "operation", "latency"):
            table.add_column(column)
        for row in trio.run(cache_latencies, url, args.entries):
            table.add_row(*row)
        console.print(table)

        requests = workload(args.requests, args.distinct)
        table = Table(title=f"mixed workload: {args.requests} requests, {args.distinct} distinct")
        for column in ("setup", "wall s", "misses computed", "speed-up"):
            table.add_column(column)
        one, one_computed = run_workers(1, url, requests, "bench-1", args.miss_seconds)
        table.add_row("1 worker, Redis cache", f"{one:.2f}", str(one_computed), "1.00x")
        shared, shared_computed = run_workers(
            args.workers, url, requests, "bench-n", args.miss_seconds
        )
        table.add_row(
            f"{args.workers} workers, one Redis cache",
            f"{shared:.2f}",
            str(shared_computed),
            f"{one / shared:.2f}x",
        )
        private, private_computed = run_workers(args.workers, None, requests, "", args.miss_seconds)
        table.add_row(
            f"{args.workers} workers, own in-memory caches",
            f"{private:.2f}",
            str(private_computed),
            f"{one / private:.2f}x",
        )
        console.print(table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        share = json.loads(sys.argv[2])
        MISS_SECONDS = float(sys.argv[5])
        trio.run(worker, share, sys.argv[3] or None, sys.argv[4])
    else:
        main()
