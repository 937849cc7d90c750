"""`SharedHedgeState`: one hedge budget for every worker, kept in Redis.

The budget is earned per call (`Hedge.max_extra` of a hedge each) and spent per hedge, and
the race decides whether to hedge without awaiting, so it cannot ask Redis then. Instead
each worker spends from a local allotment, as `HedgeState` does, and a background task
(inside `open_shared_hedge_state`) moves credit through a pool in Redis: it adds what this
worker's calls earned since the last round (the pool never holds more than `Hedge.burst`
hedges in all), and takes back a little for this worker to spend. A hedge earned by one
worker's calls may so be sent by another's, and the workers together never send more than
`max_extra` of their calls in all (plus the burst).

While Redis does not answer, what a worker's calls earn goes straight to its own
allotment: each worker then hedges its own calls' share, which still adds up to
`max_extra` of all calls.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import attrs
import trio
from specroute.cache import RedisUnavailableError
from specroute.cache._redis_client import open_passing_nursery

from ._errors import LLMConfigError
from ._hedge import _UNIT, Hedge, HedgeState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from coredis.commands import Script
    from specroute.cache import RedisConnection

__all__ = ["SharedHedgeState", "open_shared_hedge_state"]

# Seconds between rounds with Redis.
_SYNC_EVERY = 0.1
# Hedges a worker holds ready to spend, at most, between rounds.
_HOLD = 2

# KEYS[1]: the pool, in millionths of a hedge. ARGV: earned here, wanted here, the cap.
_EXCHANGE = """
local pool = tonumber(redis.call('GET', KEYS[1]) or '0')
pool = math.min(pool + tonumber(ARGV[1]), tonumber(ARGV[3]))
local grant = math.max(0, math.min(tonumber(ARGV[2]), pool))
redis.call('SET', KEYS[1], pool - grant)
return grant
"""


@attrs.define(eq=False)
class SharedHedgeState(HedgeState):
    """A `HedgeState` whose budget is shared through Redis with every worker that names the
    same key. Build it with `open_shared_hedge_state`; give it to clients as any
    `HedgeState` (`open_llm_client(..., hedge_state=shared)`). Latencies stay per worker."""

    # Credit earned by this worker's calls and not yet added to the pool.
    _unsynced: int = attrs.field(init=False, default=0)
    _burst: int = attrs.field(init=False, default=0)
    _offline: bool = attrs.field(init=False, default=False)

    def _earn(self, hedge: Hedge) -> None:
        self._calls += 1
        self._burst = round(hedge.burst * _UNIT)
        earned = round(hedge.max_extra * _UNIT)
        if self._offline:
            self._credit = min(self._burst, self._credit + earned)
        else:
            self._unsynced += earned

    async def _exchange(self, redis: RedisConnection, script: Script[bytes], name: str) -> None:
        earned, self._unsynced = self._unsynced, 0
        wanted = max(0, _HOLD * _UNIT - self._credit)
        args: list[Any] = [earned, wanted, max(self._burst, _UNIT)]
        try:
            granted = await redis.evaluate(script, [name], args)
        except RedisUnavailableError:
            # Keep what this worker's calls earned for its own hedges until Redis is back.
            self._offline = True
            self._credit = min(max(self._burst, _UNIT), self._credit + earned)
        else:
            self._offline = False
            self._credit += int(granted)


@contextlib.asynccontextmanager
async def open_shared_hedge_state(
    redis: RedisConnection, *, key: str, prefix: str = "specroute"
) -> AsyncIterator[SharedHedgeState]:
    """Open a hedge state whose budget is shared through Redis; it is synced in this block.

    Args:
        redis: The connection (`specroute.cache.open_redis`).
        key: The budget's name; workers with equal keys share it.
        prefix: Prefix of the Redis names.

    Yields:
        The state.

    Raises:
        LLMConfigError: `key` is empty.
    """
    if not isinstance(key, str) or not key:
        raise LLMConfigError(f"`key` must be a non-empty str, got {key!r}")
    state = SharedHedgeState()
    script: Script[bytes] = redis.script(_EXCHANGE)
    name = f"{{{prefix}:hedge:{key}}}"
    # An exception from the block leaves it as itself, not in an `ExceptionGroup`.
    async with open_passing_nursery() as nursery:
        nursery.start_soon(_sync, state, redis, script, name)
        yield state


async def _sync(
    state: SharedHedgeState, redis: RedisConnection, script: Script[bytes], name: str
) -> None:
    while True:
        await state._exchange(redis, script, name)
        await trio.sleep(_SYNC_EVERY)
