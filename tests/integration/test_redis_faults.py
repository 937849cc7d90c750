"""Redis killed and restarted while flows run on the shared cache and shared limits: every
run finishes with the right answer, the outage is counted, and sharing resumes."""

from __future__ import annotations

import collections
import gc
from typing import TYPE_CHECKING

import pytest
import trio
from specroute.cache import CacheOptions, RedisCacheConfig, open_redis, open_redis_cache
from specroute.engine import Flow, step
from specroute.engine.llm import SharedLimits, SharedLimitsConfig

if TYPE_CHECKING:
    from tests.conftest import RedisServer

pytestmark = [
    pytest.mark.integration,
    # coredis leaves the memory streams of connections that failed to open for the garbage
    # collector (its own leak, on the outage path only).
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
]

COMPUTED: collections.Counter[int] = collections.Counter()
LIMITS: list[SharedLimits] = []


@step(cache=CacheOptions(depends_on={"model": "m"}))
async def square(n: int) -> int:
    COMPUTED[n] += 1
    async with LIMITS[0].request(tokens=10):
        await trio.sleep(0.01)
    return n * n


flow = Flow([square], name="squares", inputs=["n"], outputs=["square"])


async def test_runs_stay_correct_through_a_redis_restart(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    results: list[tuple[int, int]] = []
    async with open_redis(private_redis_server.url, timeout=0.2) as redis:
        LIMITS[:] = [
            SharedLimits(
                redis=redis,
                config=SharedLimitsConfig(
                    key="acct", max_in_flight=4, workers=2, prefix=redis_prefix
                ),
            )
        ]
        config = RedisCacheConfig(prefix=redis_prefix)
        async with open_redis_cache(redis, config=config) as cache:

            async def runs(start: int) -> None:
                for i in range(start, start + 30):
                    n = i % 10
                    result = await flow.run(n=n, mode="sequential", cache=cache)  # type: ignore[arg-type]
                    results.append((n, result.outputs["square"]))
                    await trio.sleep(0.01)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(runs, 0)
                nursery.start_soon(runs, 5)
                await trio.sleep(0.2)
                private_redis_server.stop()
                await trio.sleep(0.3)
                down = (redis.statistics(), cache.shared_statistics(), LIMITS[0].statistics())
                private_redis_server.start()
            after = cache.statistics()
            # After the restart (an empty Redis), the cache fills and hits again.
            await flow.run(n=3, mode="sequential", cache=cache)  # type: ignore[arg-type]
            hit = await flow.run(n=3, mode="sequential", cache=cache)  # type: ignore[arg-type]
            recovered = redis.statistics()
    gc.collect()
    assert len(results) == 60
    assert all(square == n * n for n, square in results)
    redis_stats, cache_stats, limit_stats = down
    assert redis_stats.errors > 0
    assert cache_stats.bypassed > 0
    assert limit_stats.local_fallbacks > 0
    assert after.exact_hits > 0
    assert hit.outputs["square"] == 9
    assert recovered.available
    assert cache.statistics().exact_hits > after.exact_hits
