"""`SharedLimits` against a real redis-server: two workers (two connections) share one
in-flight cap and one sliding window; an outage falls back to each worker's share."""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import MakeClient, openai_answer
from specroute.cache import open_redis
from specroute.engine.llm import (
    LLMConfigError,
    Provider,
    ProviderLimits,
    SharedLimits,
    SharedLimitsConfig,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.conftest import RedisServer


@contextlib.asynccontextmanager
async def workers(
    url: str, config: SharedLimitsConfig, n: int
) -> AsyncIterator[list[SharedLimits]]:
    """`n` workers' views of one account, each on its own connection."""
    async with contextlib.AsyncExitStack() as stack:
        limits = []
        for _ in range(n):
            redis = await stack.enter_async_context(open_redis(url))
            limits.append(SharedLimits(redis=redis, config=config))
        yield limits


class Gauge:
    """Counts requests inside their limits' block, and when each was admitted."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.admitted: list[float] = []

    async def send(self, limits: SharedLimits, hold: float, tokens: int = 1) -> None:
        async with limits.request(tokens):
            self.admitted.append(trio.current_time())
            self.now += 1
            self.most = max(self.most, self.now)
            await trio.sleep(hold)
            self.now -= 1


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


async def test_the_in_flight_cap_holds_across_workers(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = SharedLimitsConfig(key="acct", max_in_flight=2, prefix=redis_prefix)
    gauge = Gauge()
    async with workers(redis_server.url, config, 2) as (one, two):
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(gauge.send, (one, two)[i % 2], 0.05)
        stats = [one.statistics(), two.statistics()]
    assert gauge.most == 2
    assert sum(s.admitted for s in stats) == 6
    assert sum(s.waits for s in stats) > 0


async def test_no_sliding_window_sees_more_than_the_limit(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = SharedLimitsConfig(key="acct", requests_per_window=4, window=0.3, prefix=redis_prefix)
    gauge = Gauge()
    async with workers(redis_server.url, config, 2) as (one, two):
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(gauge.send, (one, two)[i % 2], 0.0)
    # Admission times are read in this process a little after Redis admitted them, so a
    # window here is a few ms shorter than Redis's.
    assert most_in_any_window(gauge.admitted, 0.3 - 0.02) <= 4
    assert trio.current_time() - start >= 0.6 - 0.02  # 10 requests need three windows


async def test_tokens_per_window_count_reservations(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    config = SharedLimitsConfig(key="acct", tokens_per_window=100, window=0.3, prefix=redis_prefix)
    gauge = Gauge()
    async with workers(redis_server.url, config, 2) as (one, two):
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(gauge.send, (one, two)[i % 2], 0.0, 50)
        with pytest.raises(LLMConfigError, match="never fit the shared `tokens_per_window`=100"):
            await gauge.send(one, 0.0, 101)
    assert most_in_any_window(gauge.admitted, 0.3 - 0.02) <= 2


@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_an_outage_falls_back_to_each_workers_share(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    config = SharedLimitsConfig(
        key="acct", max_in_flight=4, requests_per_window=4, window=0.3, workers=2,
        prefix=redis_prefix,
    )  # fmt: skip
    gauge = Gauge()
    async with workers(private_redis_server.url, config, 1) as (one,):
        await gauge.send(one, 0.0)
        private_redis_server.stop()
        gauge.admitted.clear()
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(gauge.send, one, 0.05)
        assert gauge.most <= 2  # this worker's half of the cap
        assert most_in_any_window(gauge.admitted, 0.3 - 0.02) <= 2  # and of the window
        private_redis_server.start()
        await gauge.send(one, 0.0)
        stats = one.statistics()
    assert (stats.local_fallbacks, stats.admitted) == (4, 2)
    gc.collect()  # coredis's leaked streams of the failed connections warn here, filtered


async def test_a_provider_with_shared_limits_sends_through_them(
    redis_server: RedisServer, redis_prefix: str, make_client: MakeClient
) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=openai_answer("ok", prompt_tokens=5, completion_tokens=1))

    config = SharedLimitsConfig(key="acct", max_in_flight=1, prefix=redis_prefix)
    async with open_redis(redis_server.url) as redis:
        shared = SharedLimits(redis=redis, config=config)
        provider = Provider.openai(
            api_key="k", base_url="http://test/v1", limits=ProviderLimits(), shared=shared
        )
        client = make_client(answer, provider=provider)
        for _ in range(3):
            await client.complete("hi", model="gpt-4o", max_tokens=5)
    assert shared.statistics().admitted == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"key": "a"}, "no limit is set"),
        ({"key": "", "max_in_flight": 1}, "`key` must be a non-empty str"),
        ({"key": "a", "max_in_flight": 0}, "max_in_flight"),
        ({"key": "a", "max_in_flight": 1, "window": 0}, "`window` must be a number > 0"),
        ({"key": "a", "max_in_flight": 1, "workers": 0}, "workers"),
    ],
)
def test_config_errors_name_the_setting(settings: dict[str, object], message: str) -> None:
    # The int checks are the provider's own (`_checks.py`), which raise ValueError.
    with pytest.raises((LLMConfigError, ValueError), match=message):
        SharedLimitsConfig(**settings)  # type: ignore[arg-type]
