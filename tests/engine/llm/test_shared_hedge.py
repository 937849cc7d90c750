"""`SharedHedgeState` against a real redis-server: two workers (two connections) share one
hedge budget; together they never hedge more than `max_extra` of their calls (plus the
burst), and a worker whose Redis is gone hedges only its own calls' share."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest
import trio
from specroute.cache import open_redis
from specroute.engine.llm import (
    Hedge,
    LLMConfigError,
    SharedHedgeState,
    open_shared_hedge_state,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.conftest import RedisServer

HEDGE = Hedge(max_extra=0.1, burst=4.0)


@contextlib.asynccontextmanager
async def workers(url: str, key: str, n: int) -> AsyncIterator[list[SharedHedgeState]]:
    async with contextlib.AsyncExitStack() as stack:
        states = []
        for _ in range(n):
            redis = await stack.enter_async_context(open_redis(url))
            states.append(await stack.enter_async_context(open_shared_hedge_state(redis, key=key)))
        yield states


def spend_all(state: SharedHedgeState) -> int:
    spent = 0
    while state._spend():
        spent += 1
    return spent


async def test_a_hedge_earned_by_one_workers_calls_can_be_sent_by_another(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with workers(redis_server.url, redis_prefix, 2) as (busy, idle):
        for _ in range(30):  # 30 calls earn 3 hedges, into the shared pool
            busy._earn(HEDGE)
        await trio.sleep(0.5)  # a few rounds: the pool fills, then the idle worker's share
        assert spend_all(idle) >= 1  # the idle worker made no call, yet may hedge
        await trio.sleep(0.5)  # let every round settle
        spend_all(busy)
        spend_all(idle)
    # Never more than the calls earned between them (3), whoever sends them.
    assert busy.statistics().hedges_started + idle.statistics().hedges_started <= 3


async def test_together_the_workers_never_pass_the_budget(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with workers(redis_server.url, redis_prefix, 3) as states:
        for _ in range(10):
            for state in states:
                for _ in range(10):  # 10 calls a round each: one hedge a round each
                    state._earn(HEDGE)
                spend_all(state)
            await trio.sleep(0.15)
        for state in states:
            spend_all(state)
    calls = sum(s.statistics().calls for s in states)
    hedges = sum(s.statistics().hedges_started for s in states)
    assert calls == 300
    assert hedges <= calls * HEDGE.max_extra + HEDGE.burst
    assert hedges >= 20  # and the budget is used, not lost in the pool


async def test_without_redis_each_worker_hedges_its_own_share(redis_prefix: str) -> None:
    # Nothing listens on port 9: every round fails, so credit stays local.
    async with (
        open_redis("redis://127.0.0.1:9", timeout=0.05) as redis,
        open_shared_hedge_state(redis, key=redis_prefix) as state,
    ):
        for _ in range(10):
            state._earn(HEDGE)  # before the first failed round: held for the pool
        await trio.sleep(0.3)
        for _ in range(10):
            state._earn(HEDGE)
        assert spend_all(state) == 2  # its own 20 calls' share, no more


async def test_a_key_is_required(redis_server: RedisServer) -> None:
    async with open_redis(redis_server.url) as redis:
        with pytest.raises(LLMConfigError, match="`key` must be a non-empty str"):
            async with open_shared_hedge_state(redis, key=""):
                pass
