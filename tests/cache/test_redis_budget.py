"""`SharedWasteBudget`: workers on one Redis never risk more than the budget together, and
`plan()` spends from it without awaiting."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import pytest
import trio
from specroute.cache import (
    CacheConfigError,
    SharedWasteBudget,
    open_redis,
    open_shared_waste_budget,
)
from specroute.routes import WasteBudget

if TYPE_CHECKING:
    from tests.conftest import RedisServer


async def test_two_workers_share_one_budget(redis_server: RedisServer, redis_prefix: str) -> None:
    spent = [0.0, 0.0]
    async with (
        open_redis(redis_server.url) as one,
        open_redis(redis_server.url) as two,
        open_shared_waste_budget(
            one, key="acct", dollars_per_minute=1.0, chunk=0.1, prefix=redis_prefix
        ) as first,
        open_shared_waste_budget(
            two, key="acct", dollars_per_minute=1.0, chunk=0.1, prefix=redis_prefix
        ) as second,
    ):
        assert isinstance(first, WasteBudget)
        with trio.move_on_after(1.5):
            while True:
                for index, budget in enumerate((first, second)):
                    if budget.spend(0.05, trio.current_time()):
                        spent[index] += 0.05
                await trio.sleep(0.01)
    # Within one minute, both together risked at most the budget, and each got a share.
    assert sum(spent) <= 1.0 + 1e-9
    assert sum(spent) >= 0.9
    assert min(spent) > 0


@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_an_outage_refills_each_worker_by_its_share(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    private_redis_server.stop()
    async with (
        open_redis(private_redis_server.url) as redis,
        open_shared_waste_budget(
            redis, key="acct", dollars_per_minute=60.0, workers=4, prefix=redis_prefix
        ) as budget,
    ):
        await trio.sleep(1.0)
        # 60 $/min over 4 workers: 0.25 $/s here, so about 0.25 $ in one second.
        assert 0.1 <= budget.available(trio.current_time()) <= 0.3
    gc.collect()


async def test_settings_are_checked(redis_server: RedisServer) -> None:
    async with open_redis(redis_server.url) as redis:
        with pytest.raises(CacheConfigError, match="`workers` must be an int >= 1"):
            async with open_shared_waste_budget(redis, key="a", dollars_per_minute=1, workers=0):
                pass
        with pytest.raises(ValueError, match="dollars_per_minute"):
            SharedWasteBudget(0.0)
