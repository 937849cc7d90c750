"""Single flight across processes: one computation per key among all workers on one Redis.

A worker that misses takes the key's lock with `SET lock token NX PX lock_ttl` (in a script
that also clears the key's last hand-off), and renews it every third of `lock_ttl` while it
computes. When the computation returns, the holder appends its result to the key's hand-off
stream (kept `handoff_ttl` seconds) and deletes the lock; every worker waiting for the key
is blocked in `XREAD BLOCK` on that stream, so it wakes when the result lands and returns
it without computing. A worker that comes to the key within `handoff_ttl` after a success
gets that result too, so the moment between the holder's release and its own `store` never
lets a second worker compute the same miss.

Invariants:

1. A failure is never handed off or stored: the holder appends a `failed` mark and drops
   the lock, and each waiter then tries to take the lock and compute itself (so a failing
   computation may run once per waiting worker, one after another).
2. A worker that dies holding the lock blocks the others no longer than `lock_ttl`: its
   lock expires unrenewed, and a waiter takes it.
3. While Redis is unreachable, each worker computes on its own (as without Redis): the
   outage costs duplicate work, never a failed step.

Within one worker, `RedisCache` puts an in-process `SingleFlight` in front, so one worker
holds at most one lock (or one wait) per key.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from ._errors import UncacheableValueError
from ._redis_codec import TypeRegistry, decode, encode
from ._redis_errors import RedisUnavailableError, UndecodableValueError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import coredis
    from coredis.commands import Script

    from ._redis_client import RedisConnection

__all__ = ["RedisFlight", "RedisFlightStatistics"]

T = TypeVar("T")

# A result handed off moments ago (within `handoff_ttl`) is returned as it is: the worker
# that computed it may not have stored it yet, and computing again would duplicate the work.
# Otherwise take the lock and clear a failed hand-off, in one step, so a waiter never
# reads a mark older than the computation it waits for.
_TAKE = """
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last > 0 and last[1][2][2] == 'ok' then
  return {2, last[1][2][4]}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return {1, ''}
end
return {0, ''}
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Hand off (or mark failed) and release in one step: a waiter that wakes on the lock's
# absence always finds the hand-off already there.
_RELEASE = """
redis.call('XADD', KEYS[2], '*', 'status', ARGV[2], 'result', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
"""
# Longest single blocking read; below the connection's stream timeout.
_MAX_BLOCK = 0.2


@attrs.frozen(kw_only=True)
class RedisFlightStatistics:
    """Counters of the cross-process single flight.

    Args:
        computed: Computations this worker ran holding the lock.
        handed_off: Results this worker got from another worker's computation.
        bypassed: Computations run without the lock because Redis did not answer.
        failed_handoffs: Failures (or unencodable results) another worker reported, after
            which this worker tried the lock again.
    """

    computed: int
    handed_off: int
    bypassed: int
    failed_handoffs: int


@attrs.define(eq=False)
class RedisFlight:
    """Shares one computation per key between workers through a Redis lock and stream.

    Args:
        redis: The connection.
        nursery: Where lock renewals run (it must outlive every computation).
        types: Classes a result may hold (see `_redis_codec`).
        lock_ttl: Seconds a lock lives unrenewed (a dead holder's lock frees after this).
        handoff_ttl: Seconds a hand-off stays readable after the computation.
    """

    _redis: RedisConnection = attrs.field(alias="redis")
    _nursery: trio.Nursery = attrs.field(alias="nursery")
    _types: TypeRegistry = attrs.field(alias="types")
    _lock_ttl: float = attrs.field(alias="lock_ttl")
    _handoff_ttl: float = attrs.field(alias="handoff_ttl")
    _computed: int = attrs.field(init=False, default=0)
    _handed_off: int = attrs.field(init=False, default=0)
    _bypassed: int = attrs.field(init=False, default=0)
    _failed_handoffs: int = attrs.field(init=False, default=0)

    _take: Script[bytes] = attrs.field(init=False)
    _renew: Script[bytes] = attrs.field(init=False)
    _release: Script[bytes] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._take = self._redis.script(_TAKE)
        self._renew = self._redis.script(_RENEW)
        self._release = self._redis.script(_RELEASE)

    async def run(self, lock: str, handoff: str, compute: Callable[[], Awaitable[T]]) -> T:
        """Compute once across workers: hold `lock` and compute, or wait for the hand-off.

        Args:
            lock: The key's lock name.
            handoff: The key's hand-off stream name.
            compute: Computes the result.

        Returns:
            This worker's result, or the one another worker handed off.
        """
        token = secrets.token_hex(8)
        last_seen: str | bytes = b"0-0"
        take: list[Any] = [token, _ms(self._lock_ttl)]
        while True:
            try:
                taken: Any = await self._redis.evaluate(self._take, [lock, handoff], take)
            except RedisUnavailableError:
                self._bypassed += 1
                return await compute()
            if taken[0] == 1:
                return await self._compute(lock, handoff, token, compute)
            if taken[0] == 2:
                try:
                    recent: T = decode(taken[1], self._types).value
                except UndecodableValueError:
                    # Not ours to read (another version's format?): compute it here.
                    self._failed_handoffs += 1
                    return await compute()
                self._handed_off += 1
                return recent
            try:
                entries = await self._redis.run(functools.partial(_wait, handoff, last_seen))
            except RedisUnavailableError:
                self._bypassed += 1
                return await compute()
            if not entries:
                continue
            (entry,) = entries[handoff.encode()]
            last_seen = entry.identifier
            fields = entry.field_values
            if fields.get(b"status") == b"ok":
                try:
                    result: T = decode(fields[b"result"], self._types).value
                except UndecodableValueError:
                    self._failed_handoffs += 1
                    continue
                self._handed_off += 1
                return result
            self._failed_handoffs += 1

    def statistics(self) -> RedisFlightStatistics:
        """Return a snapshot of the counters."""
        return RedisFlightStatistics(
            computed=self._computed,
            handed_off=self._handed_off,
            bypassed=self._bypassed,
            failed_handoffs=self._failed_handoffs,
        )

    async def _compute(
        self, lock: str, handoff: str, token: str, compute: Callable[[], Awaitable[T]]
    ) -> T:
        renewing = trio.CancelScope()
        self._nursery.start_soon(self._keep, lock, token, renewing)
        status, data = b"failed", b""
        try:
            result = await compute()
            self._computed += 1
            try:
                data = encode(result, 0.0, self._types, where=lock)
                status = b"ok"
            except UncacheableValueError:
                # Not shareable: the waiters compute it again (status stays "failed"); it
                # is this worker's answer all the same.
                status = b"failed"
            return result
        finally:
            renewing.cancel()
            args: list[Any] = [token, status, data, _ms(self._handoff_ttl)]
            # Shielded: a cancelled holder must still free its waiters now, not after
            # `lock_ttl`; the command's own timeout bounds the wait. If Redis is down, the
            # lock expires alone.
            with trio.CancelScope(shield=True), contextlib.suppress(RedisUnavailableError):
                await self._redis.evaluate(self._release, [lock, handoff], args)

    async def _keep(self, lock: str, token: str, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                await trio.sleep(self._lock_ttl / 3)
                # Counted by the connection; the next renewal tries again.
                with contextlib.suppress(RedisUnavailableError):
                    await self._redis.evaluate(self._renew, [lock], [token, _ms(self._lock_ttl)])


async def _wait(handoff: str, last_seen: str | bytes, redis: coredis.Redis[bytes]) -> Any:
    """Block until the hand-off stream has an entry after `last_seen` (or a short while)."""
    return await redis.xread({handoff: last_seen}, count=1, block=_ms(_MAX_BLOCK))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
