"""Shared state on Redis: exact get/set and semantic lookups against in-process, and the
speed-up of N worker processes over one on a mixed workload.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/redis.py [--workers 4] [--miss-seconds 1]

It starts its own redis-server (Debian's package: `make redis-server`) on 127.0.0.1 on a
free port, without persistence, and stops it at the end.

The mixed workload: each worker process's cache first holds `WARM` topics (untimed). Then
`--requests` requests (seeded) go round-robin to the workers, each a router step (cached,
exact and semantic) then a 20 ms branch step, 8 flows at a time per worker: new topics
(`--misses`: a "model call" of `--miss-seconds` through one `SharedLimits` provider account
in Redis), repeats of new topics (`--again`: computed once over all workers by the shared
single flight, perhaps while another worker computes them), new variants of warm topics
(`--near`: semantic hits) and repeats of warm ones (exact hits). One worker against N
workers, the N either sharing one Redis cache or each with its own in-memory cache.

Each worker reports when its share is done and the parent times that line: an earlier
version timed each process to its exit, and tearing down an interpreter takes 1-3 s per
process on two busy cores, which hid the speed-up (0.95x at 4 workers). The "model" column
is the speed-up this workload allows with zero overhead (the same flows in virtual time on
one in-process cache): waits on repeats still in flight and the last round of misses keep
it below N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio
import trio.testing
from rich.console import Console
from rich.table import Table
from specroute.cache import (
    CacheHit,
    CacheMiss,
    CacheOptions,
    RedisCacheConfig,
    RedisConnection,
    StepIdentity,
    open_cache,
    open_redis,
    open_redis_cache,
)
from specroute.engine import Flow, Route, router, step
from specroute.engine.llm import SharedLimits, SharedLimitsConfig

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
FLOWS_PER_WORKER = 8
# Topics every cache has seen before the timed part (yesterday's traffic).
WARM = 50
COMPUTED: list[str] = []
# Each miss is one request to the provider account all workers share: a cap on requests in
# flight above what the workers reach together (8 each), so it limits nothing here but is
# checked and taken in Redis on every miss, as in production.
MAX_IN_FLIGHT = 64


class Unlimited:
    """The provider account of the zero-overhead model: no limits, nothing asked."""

    @contextlib.asynccontextmanager
    async def request(self, tokens: int) -> AsyncIterator[None]:
        yield


LIMITS: SharedLimits | Unlimited = Unlimited()


class TopicEmbedder:
    """Embeds "topic T variant V" as topic T's vector nudged by variant V: the variants of a
    topic are near (cosine about 0.99), topics far apart. The bench times caching, not
    embedding, so the vectors are drawn once and kept."""

    def __init__(self) -> None:
        self.topics: dict[int, NDArray[np.float64]] = {}
        self.nudges = 0.1 * np.random.default_rng(10**9).standard_normal((64, DIMENSION))

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        rows = []
        for text in texts:
            _, topic, _, variant = text.split()
            base = self.topics.get(int(topic))
            if base is None:
                base = np.random.default_rng(int(topic)).standard_normal(DIMENSION)
                self.topics[int(topic)] = base
            nudge = self.nudges[int(variant) % len(self.nudges)]
            rows.append((base + nudge).astype(np.float32))
        return np.stack(rows)


@step(
    cache=CacheOptions(
        semantic="request", threshold=0.95, on_semantic_hit="trust", depends_on={"model": "b"}
    )
)
async def discovery(request: str) -> Route:
    """The cached router: on a miss, one request to the (simulated) provider."""
    COMPUTED.append(request)
    async with LIMITS.request(tokens=100):
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
async def worker_cache(redis: RedisConnection, shared: bool, prefix: str) -> AsyncIterator[Any]:
    if shared:
        config = RedisCacheConfig(prefix=prefix)
        async with open_redis_cache(redis, config=config, embedder=TopicEmbedder()) as cache:
            yield cache
    else:
        async with open_cache(embedder=TopicEmbedder()) as cache:
            yield cache


async def serve(requests: list[str], cache: Any) -> None:
    """Run one worker's requests, `FLOWS_PER_WORKER` at a time."""
    limiter = trio.CapacityLimiter(FLOWS_PER_WORKER)

    async def one(request: str) -> None:
        async with limiter:
            await FLOW.run(request=request, mode="sequential", cache=cache)

    async with trio.open_nursery() as nursery:
        for request in requests:
            nursery.start_soon(one, request)


async def zero_overhead(requests: list[str], n: int) -> float:
    """The workload's own limit: seconds `n` workers take in virtual time with one
    in-process cache, no Redis and no CPU cost; only waiting on the provider counts."""
    global LIMITS
    LIMITS = Unlimited()
    async with open_cache(embedder=TopicEmbedder()) as cache:
        await serve([f"topic {topic} variant 0" for topic in range(WARM)], cache)
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(serve, requests[i::n], cache)
        return trio.current_time() - start


async def worker(requests: list[str], url: str, shared: bool, prefix: str) -> None:
    global LIMITS
    async with open_redis(url) as redis, worker_cache(redis, shared, prefix) as cache:
        LIMITS = SharedLimits(redis, SharedLimitsConfig(key=prefix, max_in_flight=MAX_IN_FLIGHT))
        # Warm the cache untimed (a shared one is warmed by whichever worker comes first).
        await serve([f"topic {topic} variant 0" for topic in range(WARM)], cache)
        COMPUTED.clear()
        # Imported, connected and warm: say so, and start when every worker is ready.
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)
        cpu = time.process_time()
        commands = redis.statistics().commands
        await serve(requests, cache)
        # Reported the moment the work is done: the parent times this line, not the
        # process's exit (tearing down an interpreter takes a second or more each).
        report = {
            "computed": len(COMPUTED),
            "cpu": time.process_time() - cpu,
            "commands": redis.statistics().commands - commands,
        }
        print(json.dumps(report), flush=True)


def workload(requests: int, misses: float, near: float, again: float) -> list[str]:
    """`requests` texts after a warm-up of `WARM` topics (one text each, already cached):
    a share `misses` of new topics, `again` of repeats of a new topic asked before (on
    another worker, perhaps still computing), `near` of new variants of a warm topic
    (semantic hits), and the rest repeats of a warm text (exact hits)."""
    rng = random.Random(0)
    texts: list[str] = []
    new: list[str] = []
    for _ in range(requests):
        draw = rng.random()
        if draw < misses or (draw < misses + again and not new):
            new.append(f"topic {WARM + len(new)} variant 0")
            texts.append(new[-1])
        elif draw < misses + again:
            texts.append(rng.choice(new))
        elif draw < misses + again + near:
            texts.append(f"topic {rng.randrange(WARM)} variant {rng.randrange(1, 10**6)}")
        else:
            texts.append(f"topic {rng.randrange(WARM)} variant 0")
    return texts


@attrs.frozen(kw_only=True)
class WorkersRun:
    """What one setup's workers did, together."""

    seconds: float
    computed: int
    cpu: float
    commands: int


def run_workers(n: int, url: str, requests: list[str], shared: bool, prefix: str) -> WorkersRun:
    """Wall seconds from the start signal to the last worker's result, misses computed and
    CPU seconds over all workers.

    Workers import and connect first (a second or more each on a busy machine), then all
    start together, and each reports the moment its share is done; the processes' exits are
    not timed. Request i goes to worker i mod n, as a round-robin balancer would send it.
    """
    shares = [requests[i::n] for i in range(n)]
    argv = [sys.executable, __file__, "--worker", url, str(int(shared)), prefix, str(MISS_SECONDS)]
    processes = [
        subprocess.Popen([*argv, json.dumps(share)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
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
    reports = []
    for process in processes:
        assert process.stdout is not None
        reports.append(json.loads(process.stdout.readline()))
    seconds = time.perf_counter() - start
    for process in processes:
        process.wait()
    computed = sum(report["computed"] for report in reports)
    return WorkersRun(
        seconds=seconds,
        computed=computed,
        cpu=sum(report["cpu"] for report in reports),
        commands=sum(report["commands"] for report in reports),
    )


def mixed_workload(url: str, args: argparse.Namespace, console: Console) -> None:
    requests = workload(args.requests, args.misses, args.near, args.again)
    title = (
        f"mixed workload: {args.requests} requests ({args.misses:.0%} new topics,"
        f" {args.again:.0%} repeats of new ones, {args.near:.0%} near and the rest exact"
        f" repeats of {WARM} warm ones), {MISS_SECONDS} s misses,"
        f" {FLOWS_PER_WORKER} flows per worker"
    )
    table = Table(title=title)
    columns = ("setup", "wall s", "misses computed", "CPU s", "Redis calls", "speed-up", "model")
    for column in columns:
        table.add_column(column)
    n = args.workers
    one = run_workers(1, url, requests, True, "bench-1")
    setups = [
        ("1 worker, Redis cache", one),
        (f"{n} workers, one Redis", run_workers(n, url, requests, True, "bench-n")),
        (f"{n} workers, own caches", run_workers(n, url, requests, False, "bench-own")),
    ]
    model_one = trio.run(
        zero_overhead, requests, 1, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    model_n = trio.run(
        zero_overhead, requests, n, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    models = [1.0, model_one / model_n, math.nan]
    for (name, run), model in zip(setups, models, strict=True):
        speed_up = f"{one.seconds / run.seconds:.2f}x"
        row = [f"{run.seconds:.2f}", str(run.computed), f"{run.cpu:.2f}", str(run.commands)]
        row.append(speed_up)
        table.add_row(name, *row, "" if math.isnan(model) else f"{model:.2f}x")
    console.print(table)
    console.print(
        f"model: the speed-up the workload itself allows, with zero overhead ({model_one:.1f} s"
        f" for one worker, {model_n:.1f} s for {n}, in virtual time, one in-process cache):"
        " the gap to it is the library's and the machine's."
    )


def main() -> None:
    global MISS_SECONDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--misses", type=float, default=0.3)
    parser.add_argument("--again", type=float, default=0.1)
    parser.add_argument("--near", type=float, default=0.2)
    parser.add_argument("--miss-seconds", type=float, default=MISS_SECONDS)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--skip-latency", action="store_true", help="only the mixed workload")
    args = parser.parse_args()
    MISS_SECONDS = args.miss_seconds
    console = Console()
    with redis_server() as url:
        if not args.skip_latency:
            table = Table(title="cache operations (one process, 127.0.0.1 Redis)")
            for column in ("cache", "operation", "latency"):
                table.add_column(column)
            for row in trio.run(cache_latencies, url, args.entries):
                table.add_row(*row)
            console.print(table)
        mixed_workload(url, args, console)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, shared, prefix, miss, share = sys.argv[2:]
        MISS_SECONDS = float(miss)
        trio.run(worker, json.loads(share), url, shared == "1", prefix)
    else:
        main()
