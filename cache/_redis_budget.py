"""`SharedWasteBudget`: one speculation waste budget for every worker, kept in Redis.

A policy's `plan()` is synchronous and spends from its `WasteBudget` without awaiting, so
the shared budget cannot ask Redis from inside it. Instead each worker holds a small local
allotment that `plan()` spends from, and a background task (inside
`open_shared_waste_budget`) tops it up ahead of need: it reserves `chunk` dollars at a time
from a sliding-window log in Redis (one Lua script; at most `dollars_per_minute` reserved in
any 60 s over all workers). What a worker reserved and has not spent is not available to
the others until its minute passes, so the workers together never risk more than the
budget, and may risk a little less.

While Redis does not answer, a worker refills its allotment locally at
`dollars_per_minute / workers`, so N workers still stay within the budget.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING, Any

import attrs
import trio
from specroute.routes import WasteBudget

from ._errors import CacheConfigError
from ._redis_client import open_passing_nursery
from ._redis_errors import RedisUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from coredis.commands import Script

    from ._redis_client import RedisConnection

__all__ = ["SharedWasteBudget", "open_shared_waste_budget"]

_NANO = 1_000_000_000
_WINDOW_MS = 60_000
# Seconds between top-ups of the local allotment.
_REFILL_EVERY = 0.25

_RESERVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
local sum = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  sum = sum + tonumber(string.match(member, ':(%d+)$'))
end
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[4]) - sum)
if grant <= 0 then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. grant)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return grant
"""


@attrs.define(eq=False)
class SharedWasteBudget(WasteBudget):
    """A `WasteBudget` shared by every worker that names the same key on one Redis.

    Build it with `open_shared_waste_budget`; give it to `PredictivePolicy(budget=...)` as
    any `WasteBudget`. `available` and `spend` read only the local allotment (no await).

    Args:
        dollars_per_minute: The budget over all workers.
    """

    _allotment: float = attrs.field(init=False, default=0.0)

    def available(self, now: float) -> float:
        """Dollars this worker may still risk now (its allotment)."""
        return self._allotment

    def spend(self, dollars: float, now: float) -> bool:
        """Take `dollars` from the allotment if it holds them; say whether it did."""
        if dollars > self._allotment:
            return False
        self._allotment -= dollars
        return True

    def grant(self, dollars: float) -> None:
        """Add dollars reserved for this worker to its allotment."""
        self._allotment += dollars


@contextlib.asynccontextmanager
async def open_shared_waste_budget(
    redis: RedisConnection,
    *,
    key: str,
    dollars_per_minute: float,
    workers: int = 1,
    chunk: float | None = None,
    prefix: str = "specroute",
) -> AsyncIterator[SharedWasteBudget]:
    """Open a waste budget shared through Redis; its allotment is topped up in this block.

    Args:
        redis: The connection.
        key: The budget's name; workers with equal keys share it.
        dollars_per_minute: The budget over all workers.
        workers: How many workers share it (each refills `1/workers` locally in an outage).
        chunk: Dollars reserved per top-up (default: a fiftieth of the budget); a worker
            holds at most about two chunks unspent.
        prefix: Prefix of the Redis names.

    Yields:
        The budget.

    Raises:
        CacheConfigError: A setting is out of range.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise CacheConfigError(f"`workers` must be an int >= 1, got {workers!r}")
    size = dollars_per_minute / 50 if chunk is None else chunk
    if not size > 0:
        raise CacheConfigError(f"`chunk` must be a number > 0, got {chunk!r}")
    budget = SharedWasteBudget(dollars_per_minute)
    script: Script[bytes] = redis.script(_RESERVE)
    name = f"{{{prefix}:waste:{key}}}"
    async with open_passing_nursery() as nursery:
        nursery.start_soon(_top_up, redis, script, name, budget, size, workers)
        yield budget


async def _top_up(
    redis: RedisConnection,
    script: Script[bytes],
    name: str,
    budget: SharedWasteBudget,
    chunk: float,
    workers: int,
) -> None:
    local_rate = budget.dollars_per_minute / workers / 60  # dollars per second, in an outage
    while True:
        if budget.available(0.0) < chunk:
            args: list[Any] = [secrets.token_hex(8), round(chunk * _NANO), _WINDOW_MS]
            args.append(round(budget.dollars_per_minute * _NANO))
            try:
                granted = await redis.evaluate(script, [name], args)
            except RedisUnavailableError:
                budget.grant(min(chunk, local_rate * _REFILL_EVERY))
            else:
                budget.grant(int(granted) / _NANO)
        await trio.sleep(_REFILL_EVERY)
