"""`SharedLimits`: one provider account's limits enforced in Redis for every worker process.

Every worker that gives its `Provider` a `SharedLimits` with the same `key` on the same Redis
shares three limits, each checked and taken in one atomic Lua script (so two workers can
never both take the last unit):

- requests in flight: a sorted set of leases (lease id -> expiry). A request holds a lease
  while it runs and drops it when it ends; a worker that dies holding one loses it after
  `lease` seconds, so a crash never shrinks the cap for longer.
- requests and tokens per `window` seconds: sliding-window logs (sorted sets of admission
  times, in Redis's own clock), the rule of `_sliding.py`: in any `window` seconds at most
  the limit is admitted, never 2N as a refilled bucket allows. Tokens are the request's
  reservation (prompt estimate plus `max_tokens`), and unlike the local budget nothing is
  refunded, so the shared count errs on the side of the provider.

Waiting is cancellable: a worker that is refused sleeps for the time the script says the
window needs (or polls briefly for a free slot) and asks again.

Outage rule: while Redis does not answer, each worker enforces `1/workers` of every limit
locally (`workers` is the number of worker processes you run), so N workers together never
send more than the cap. When Redis is back, the shared log does not know what was admitted
locally meanwhile, so in the one window that straddles recovery the total may reach up to
twice a per-window limit; the in-flight cap holds throughout. `statistics()` counts the
outages.
"""

from __future__ import annotations

import math
import secrets
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import attrs
import trio
from specroute.cache import RedisUnavailableError

from ._checks import at_least_one, optional_at_least_one
from ._errors import LLMConfigError
from ._sliding import StrictBudget

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from coredis.commands import Script
    from specroute.cache import RedisConnection

__all__ = ["SharedLimits", "SharedLimitsConfig", "SharedLimitsStatistics"]

# Seconds a refused request waits before asking for a free slot again: slots free when
# another worker's request ends, which Redis does not announce.
_SLOT_POLL = 0.01

_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local cap = tonumber(ARGV[3])
local rcap = tonumber(ARGV[4])
local tcap = tonumber(ARGV[5])
local amount = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= cap then
    return {0, -1}
  end
end
local wait = 0
if rcap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  local n = redis.call('ZCARD', KEYS[2])
  if n + 1 > rcap then
    local oldest = redis.call('ZRANGE', KEYS[2], n - rcap, n - rcap, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if tcap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  local log = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  local total = 0
  for i = 1, #log, 2 do
    total = total + tonumber(string.match(log[i], ':(%d+)$'))
  end
  local over = total + amount - tcap
  if over > 0 then
    for i = 1, #log, 2 do
      over = over - tonumber(string.match(log[i], ':(%d+)$'))
      if over <= 0 then
        wait = math.max(wait, tonumber(log[i + 1]) + window - now)
        break
      end
    end
  end
end
if wait > 0 then
  return {0, wait}
end
if cap > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
if rcap > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], window)
end
if tcap > 0 then
  redis.call('ZADD', KEYS[3], now, ARGV[1] .. ':' .. amount)
  redis.call('PEXPIRE', KEYS[3], window)
end
return {1, 0}
"""
_RELEASE = "return redis.call('ZREM', KEYS[1], ARGV[1])"


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise LLMConfigError(f"`{attribute.name}` must be a number > 0, got {value!r}")


def _key(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise LLMConfigError(
            f"`{attribute.name}` must be a non-empty str naming the account (such as"
            f" 'openai-prod'), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class SharedLimitsConfig:
    """Limits of one provider account, shared by every worker that names the same `key`.

    Attributes:
        key: The account's name in Redis; workers with equal keys share the limits.
        max_in_flight: Requests in flight over all workers, at most (`None`: no cap).
        requests_per_window: Requests started in any `window` seconds (`None`: no limit).
        tokens_per_window: Tokens (prompt estimate plus `max_tokens`) reserved in any
            `window` seconds (`None`: no limit).
        window: The window's length in seconds (60 for per-minute limits).
        workers: How many worker processes share the account: during a Redis outage each
            enforces `1/workers` of every limit locally.
        lease: Seconds a request's in-flight slot lasts if its worker dies (it must exceed
            your longest request).
        prefix: Prefix of the Redis names.

    Raises:
        LLMConfigError: A setting is out of range, or no limit is set.
    """

    key: str = attrs.field(validator=_key)
    max_in_flight: int | None = attrs.field(default=None, validator=optional_at_least_one)
    requests_per_window: int | None = attrs.field(default=None, validator=optional_at_least_one)
    tokens_per_window: int | None = attrs.field(default=None, validator=optional_at_least_one)
    window: float = attrs.field(default=60.0, validator=_positive)
    workers: int = attrs.field(default=1, validator=at_least_one)
    lease: float = attrs.field(default=600.0, validator=_positive)
    prefix: str = attrs.field(default="specroute", validator=_key)

    def __attrs_post_init__(self) -> None:
        if (self.max_in_flight, self.requests_per_window, self.tokens_per_window) == (
            None,
            None,
            None,
        ):
            raise LLMConfigError(
                "no limit is set: give `max_in_flight`, `requests_per_window` or"
                " `tokens_per_window`"
            )


@attrs.frozen(kw_only=True)
class SharedLimitsStatistics:
    """Counters of one worker's use of the shared limits.

    Attributes:
        admitted: Requests admitted through Redis.
        waits: Times a request was refused and waited.
        local_fallbacks: Requests admitted by the local outage rule, Redis being down.
    """

    admitted: int
    waits: int
    local_fallbacks: int


@attrs.define(eq=False)
class SharedLimits:
    """The live shared limits of one account for this worker: give it to `Provider(shared=)`.

    Args:
        redis: The connection (`specroute.cache.open_redis`).
        config: The limits.
    """

    _redis: RedisConnection = attrs.field(alias="redis")
    config: SharedLimitsConfig
    _acquire: Script[bytes] = attrs.field(init=False)
    _release: Script[bytes] = attrs.field(init=False)
    _local_slots: trio.CapacityLimiter | None = attrs.field(init=False, default=None)
    _local_requests: StrictBudget | None = attrs.field(init=False, default=None)
    _local_tokens: StrictBudget | None = attrs.field(init=False, default=None)
    _admitted: int = attrs.field(init=False, default=0)
    _waits: int = attrs.field(init=False, default=0)
    _fallbacks: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._acquire = self._redis.script(_ACQUIRE)
        self._release = self._redis.script(_RELEASE)
        config = self.config
        if config.requests_per_window is not None:
            share = _part(config.requests_per_window, config.workers)
            self._local_requests = StrictBudget(share, config.window)
        if config.tokens_per_window is not None:
            share = _part(config.tokens_per_window, config.workers)
            self._local_tokens = StrictBudget(share, config.window)

    @asynccontextmanager
    async def request(self, tokens: int) -> AsyncIterator[None]:
        """Wait until every shared limit admits a request of `tokens`; hold its slot.

        Args:
            tokens: The request's reservation (prompt estimate plus `max_tokens`).

        Yields:
            Nothing; send the request inside the block.

        Raises:
            LLMConfigError: `tokens` exceeds the whole `tokens_per_window`.
        """
        limit = self.config.tokens_per_window
        if limit is not None and tokens > limit:
            raise LLMConfigError(
                f"a request reserving {tokens} tokens can never fit the shared"
                f" `tokens_per_window`={limit} of {self.config.key!r}; lower `max_tokens`"
                " or raise the limit"
            )
        lease = secrets.token_hex(8)
        try:
            await self._admit(lease, tokens)
        except RedisUnavailableError:
            self._fallbacks += 1
            async with self._fallback(tokens):
                yield
            return
        try:
            yield
        finally:
            # Shielded: a cancelled request must free its slot for the other workers now;
            # the command's timeout bounds it, and an outage leaves the lease to expire.
            with trio.CancelScope(shield=True), suppress(RedisUnavailableError):
                await self._redis.evaluate(self._release, [self._names()[0]], [lease])

    def statistics(self) -> SharedLimitsStatistics:
        """Return a snapshot of this worker's counters.

        Returns:
            The counters at this moment.
        """
        return SharedLimitsStatistics(
            admitted=self._admitted, waits=self._waits, local_fallbacks=self._fallbacks
        )

    async def _admit(self, lease: str, tokens: int) -> None:
        config = self.config
        args: list[Any] = [
            lease,
            _ms(config.lease),
            config.max_in_flight or 0,
            config.requests_per_window or 0,
            config.tokens_per_window or 0,
            tokens,
            _ms(config.window),
        ]
        while True:
            admitted, wait_ms = await self._redis.evaluate(self._acquire, self._names(), args)
            if admitted == 1:
                self._admitted += 1
                return
            self._waits += 1
            await trio.sleep(_SLOT_POLL if wait_ms < 0 else wait_ms / 1000)

    @asynccontextmanager
    async def _fallback(self, tokens: int) -> AsyncIterator[None]:
        """The outage rule: this worker's `1/workers` share of every limit, enforced here."""
        config = self.config
        if config.max_in_flight is not None and self._local_slots is None:
            self._local_slots = trio.CapacityLimiter(_part(config.max_in_flight, config.workers))
        if self._local_requests is not None:
            await self._local_requests.take(1)
        if self._local_tokens is not None:
            await self._local_tokens.take(min(tokens, self._local_tokens.capacity))
        if self._local_slots is None:
            yield
            return
        async with self._local_slots:
            yield

    def _names(self) -> list[str]:
        base = f"{{{self.config.prefix}:limits:{self.config.key}}}"
        return [f"{base}:in-flight", f"{base}:requests", f"{base}:tokens"]


def _part(limit: int, workers: int) -> int:
    """One worker's share of a limit during an outage: at least 1, never more than its part."""
    return max(1, math.floor(limit / workers))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
