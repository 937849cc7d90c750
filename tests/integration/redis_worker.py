"""One worker process of `test_redis_workers.py`: planner-style flows run concurrently, with
the cache and the provider limits shared through Redis. Prints one JSON line of what it saw.

    python tests/integration/redis_worker.py BASE_URL REDIS_URL PREFIX INDEX
"""

from __future__ import annotations

import collections
import json
import sys

import trio
from specroute.cache import CacheHit, CacheOptions, RedisCacheConfig, open_redis, open_redis_cache
from specroute.engine import Flow, Route, router, step
from specroute.engine.llm import (
    LLMClient,
    Provider,
    ProviderLimits,
    SharedLimits,
    SharedLimitsConfig,
    open_llm_client,
)

# Shared by the test, which checks the server against them.
MAX_IN_FLIGHT = 3
REQUESTS_PER_WINDOW = 8
WINDOW = 1.0
WORKERS = 4
FLOWS_PER_WORKER = 6
REQUESTS = [
    "generate changelog", "summarize open issues by label", "list stale pull requests",
    "draft release notes", "generate changelog for v2", "triage new bugs",
    "count merged pull requests", "summarize failing builds",
]  # fmt: skip
PROBE = "Find flaky tests in the nightly run"
PROBE_PARAPHRASE = "find flaky tests in the nightly run!"

COMPUTED: collections.Counter[str] = collections.Counter()
CLIENT: list[LLMClient] = []

DISCOVERY_CACHE = CacheOptions(semantic="user_input", depends_on={"model": "hold-0.1"})


@step(cache=DISCOVERY_CACHE)
async def discovery(user_input: str) -> Route:
    COMPUTED[user_input] += 1
    await CLIENT[0].complete(f"discover: {user_input}", model="hold-0.1", max_tokens=8)
    if "changelog" in user_input:
        return Route("reuse", workflow={"name": "changelog", "nodes": ["git-log", "llm"]})
    return Route("generate")


@step(output="result")
async def reuse_workflow(workflow: dict[str, object]) -> str:
    return f"reused {workflow['name']}"


@step(output="plan")
async def plan(user_input: str) -> str:
    await CLIENT[0].complete(f"plan: {user_input}", model="hold-0.05", max_tokens=8)
    return f"plan for {user_input}"


@step(output="result")
async def generate_workflow(plan: str) -> str:
    return f"generated from {plan}"


planner = Flow(
    [
        router(
            discovery,
            {
                "reuse": Flow([reuse_workflow], name="reuse", outputs=["result"]),
                "generate": Flow([plan, generate_workflow], name="generate", outputs=["result"]),
            },
            handoff={"reuse": ["workflow"]},
        )
    ],
    name="planner",
    inputs=["user_input"],
)


async def main(base_url: str, redis_url: str, prefix: str, index: int) -> None:
    async with open_redis(redis_url) as redis:
        shared = SharedLimits(
            redis=redis,
            config=SharedLimitsConfig(
                key="acct", max_in_flight=MAX_IN_FLIGHT, requests_per_window=REQUESTS_PER_WINDOW,
                window=WINDOW, workers=WORKERS, prefix=prefix,
            ),
        )  # fmt: skip
        provider = Provider.openai(
            api_key="test", base_url=base_url, limits=ProviderLimits(), shared=shared
        )
        config = RedisCacheConfig(prefix=prefix)
        async with (
            open_llm_client(provider) as client,
            open_redis_cache(redis, config=config) as cache,
        ):
            CLIENT.append(client)
            async with trio.open_nursery() as nursery:
                for j in range(FLOWS_PER_WORKER):
                    request = REQUESTS[(2 * index + j) % len(REQUESTS)]
                    nursery.start_soon(_run, cache, request)
            probe_hit = await _probe(cache, index)
            stats = cache.statistics()
            flight = cache.shared_statistics().flight
    report = {
        "computed": dict(COMPUTED),
        "probe_hit": probe_hit,
        "exact_hits": stats.exact_hits,
        "handed_off": flight.handed_off,
        "admitted": shared.statistics().admitted,
        "fallbacks": shared.statistics().local_fallbacks,
    }
    print(json.dumps(report))


async def _run(cache: object, request: str) -> None:
    result = await planner.run(user_input=request, mode="sequential", cache=cache, namespace="acme")  # type: ignore[arg-type]
    assert result.outputs["result"], result


async def _probe(cache: object, index: int) -> bool:
    """Worker 0 stores the probe; the others look its paraphrase up until it hits."""
    if index == 0:
        await planner.run(user_input=PROBE, mode="sequential", cache=cache, namespace="probe")  # type: ignore[arg-type]
        return False
    identity = discovery.cache_identity
    assert identity is not None
    with trio.move_on_after(15):
        while True:
            found = await cache.lookup(  # type: ignore[attr-defined]
                identity, DISCOVERY_CACHE, "probe", {"user_input": PROBE_PARAPHRASE}
            )
            if isinstance(found, CacheHit):
                return found.kind == "semantic"
            await trio.sleep(0.02)
    return False


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
