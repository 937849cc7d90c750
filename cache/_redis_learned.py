"""`SharedLearnedState`: one learned state (route statistics, calibration, confirm rates)
for every worker that names the same key on one Redis.

Policies and predictors read and update a `LearnedState` synchronously, inside a run, so
the shared state never asks Redis from there. Each worker keeps a whole local copy, and a
background task (inside `open_shared_learned`) syncs it every `interval` seconds:

1. It takes the worker's changes since the last sync: for each number the state holds
   (`LearnedState.figures()`), its value now minus its value at the last sync.
2. One Lua script adds them to a Redis hash (`HINCRBY` for integers, `HINCRBYFLOAT` for
   floats) and returns the merged totals when any other worker changed them.
3. The worker sets its copy to those totals plus what it recorded while the script ran.

Invariants:

1. Counts add up exactly: each change is applied once. A batch of changes carries the
   worker's id and a sequence number; the script applies a batch only if that worker's last
   applied number is lower, so a batch retried after a timeout (applied or not) counts once,
   and a new batch is formed only after the previous one was acknowledged.
2. A Redis outage never reaches a run: the sync fails, is counted, and is retried; the
   worker keeps learning locally, and its changes are pushed when Redis answers again.
3. What a worker records before its block ends is pushed on the way out (shielded, each
   command bounded by the connection's timeout; if Redis is down then, it is lost).
4. Forgetting is a change like any other: `state.reset()` or `restore()` on one worker
   removes what that worker saw from the totals at its next sync; `reset_shared_learned`
   clears the totals in Redis for every worker.

Numbers are merged by adding each worker's changes, which is exact for counts (confirm
rates, calibration, a model predictor's record, `RouteStatistics(decay=1.0)`). Decayed
route statistics merge as if each worker's batch of observations came in turn, except that
a batch's decay applies to the totals its worker last saw: with K observations over all
workers in one interval, the totals shrink by `1 - K(1 - decay)` rather than `decay**K`
(equal to first order; keep K(1 - decay) well below 1, which the default interval does for
hundreds of router calls per second). Every number is taken for a count, never below zero:
Redis clamps a total at zero (two workers that both reset take away the same counts once,
not twice), and so does a worker's copy. A predictor's data that is not a number stays
local, as does a number whose address holds a key other than str, int, float, bool, None
or a tuple of them (counted in `statistics().unshared`).

If Redis restarts without its data, the first worker to sync seeds it again from its own
copy and records which version that copy had; every other worker then pushes again the
batches it had applied after that version (it remembers its last 64), so the totals of
the workers that are running come back exact.

Redis names (one hash tag, so a cluster keeps them on one node): `{prefix:learned:key}:figures`
(field: `i` or `f` then a JSON address, value: the total) and `{prefix:learned:key}:meta`
(epoch, version, each worker's last applied batch). They do not expire.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import secrets
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
from specroute.routes import LearnedFigure, LearnedState

from ._errors import CacheConfigError
from ._redis_client import open_passing_nursery
from ._redis_errors import RedisUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Mapping

    from coredis.commands import Script

    from ._redis_client import RedisConnection

__all__ = [
    "SharedLearnedState",
    "SharedLearnedStatistics",
    "open_shared_learned",
    "read_shared_learned",
    "reset_shared_learned",
]

#: Seconds between a worker's syncs of its learned state with Redis.
DEFAULT_LEARNED_INTERVAL = 0.1
# A float total this close to zero is zero (decayed counts shrink towards it, and the
# long doubles Redis adds in leave dust where a worker's reset should leave nothing).
_DUST = 1e-9
_KINDS = ("predictor", "calibration", "step")

# Apply one worker's batch once, and return the totals unless the caller's copy is current
# (same epoch and no version but its own since it last looked). An epoch the caller knew
# but Redis lost (a restart without data) is reported so that the caller seeds it again.
_PUSH = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  if ARGV[1] ~= '' then
    return {'lost'}
  end
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'version', 0)
end
local before = tonumber(redis.call('HGET', KEYS[2], 'version'))
local version = before
local seq = tonumber(ARGV[4])
local applied = tonumber(redis.call('HGET', KEYS[2], 'seq:' .. ARGV[3]) or '0')
if seq > applied then
  for i = 6, #ARGV, 2 do
    local value
    if string.sub(ARGV[i], 1, 1) == 'i' then
      value = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
    else
      value = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1]))
    end
    if value < 1e-9 then
      redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
  version = redis.call('HINCRBY', KEYS[2], 'version', 1)
  redis.call('HSET', KEYS[2], 'seq:' .. ARGV[3], seq, 'at:' .. ARGV[3], version)
end
local at = tonumber(redis.call('HGET', KEYS[2], 'at:' .. ARGV[3]) or '0')
local seeded = redis.call('HGET', KEYS[2], 'seeded') or ''
if epoch == ARGV[1] and before == tonumber(ARGV[5]) then
  return {epoch, version, at, seeded}
end
return {epoch, version, at, seeded, redis.call('HGETALL', KEYS[1])}
"""
# Seed lost totals from one worker's copy, unless another worker already has; say which
# epoch and version the copy had, so that the others push again what came after it.
_SEED = """
if redis.call('HEXISTS', KEYS[2], 'epoch') == 1 then
  return 0
end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'version', 1, 'seeded', ARGV[2])
return 1
"""
# Clear all totals, or those whose address starts with one of the given prefixes; the
# epoch stays, so that no worker takes the empty totals for lost ones and seeds them.
_RESET = """
if #ARGV == 0 then
  redis.call('DEL', KEYS[1])
else
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    for _, prefix in ipairs(ARGV) do
      if string.sub(field, 2, 1 + #prefix) == prefix then
        redis.call('HDEL', KEYS[1], field)
      end
    end
  end
end
if redis.call('HEXISTS', KEYS[2], 'epoch') == 1 then
  redis.call('HINCRBY', KEYS[2], 'version', 1)
end
return 1
"""


@attrs.frozen(kw_only=True)
class SharedLearnedStatistics:
    """A snapshot of a `SharedLearnedState`'s syncing.

    Args:
        syncs: Syncs Redis answered.
        failed_syncs: Syncs Redis did not answer (retried at the next interval).
        pushed: Batches of this worker's changes applied in Redis.
        pulled: Syncs that brought other workers' changes.
        reseeded: Times this worker seeded totals Redis had lost.
        unshared: Numbers kept local at the last sync (an address Redis cannot hold).
        pending: Whether a batch waits to be acknowledged.
        synced_at: `trio.current_time()` of the last sync Redis answered, `None` before.
    """

    syncs: int
    failed_syncs: int
    pushed: int
    pulled: int
    reseeded: int
    unshared: int
    pending: bool
    synced_at: float | None


@attrs.define(eq=False)
class SharedLearnedState(LearnedState):
    """A `LearnedState` kept in sync with every worker that names the same key on one Redis.

    Build it with `open_shared_learned`; give it to `Flow.run(learned=...)` as any
    `LearnedState`. Runs read and update the local copy without awaiting; a background task
    pushes this worker's changes and pulls the others' every `interval` seconds.
    """

    _link: _Link | None = attrs.field(init=False, default=None)

    async def sync(self) -> bool:
        """Push this worker's changes and pull the merged totals now (the background task
        does so every `interval`).

        Returns:
            Whether Redis answered (if not, the changes stay local and are pushed later).

        Raises:
            CacheConfigError: The `async with open_shared_learned(...)` block has ended, or
                the state was not made by it.
        """
        return await self._linked().sync(self)

    def statistics(self) -> SharedLearnedStatistics:
        """Return a snapshot of the sync counters (also after the block has ended).

        Returns:
            The counters at this moment.

        Raises:
            CacheConfigError: The state was not made by `open_shared_learned`.
        """
        link = self._linked(open_only=False)
        return SharedLearnedStatistics(
            syncs=link.syncs,
            failed_syncs=link.failed_syncs,
            pushed=link.pushed,
            pulled=link.pulled,
            reseeded=link.reseeded,
            unshared=link.unshared,
            pending=link.pending is not None,
            synced_at=link.synced_at,
        )

    def _linked(self, *, open_only: bool = True) -> _Link:
        if self._link is None:
            raise CacheConfigError(
                "a SharedLearnedState is made by `async with open_shared_learned(redis,"
                " key=...)`, not by calling the class"
            )
        if open_only and self._link.closed:
            raise CacheConfigError(
                "this shared learned state's block has ended; sync inside"
                " `async with open_shared_learned(...)`"
            )
        return self._link

    def snapshot(self) -> LearnedState:
        """Return a deep copy as a plain, unshared `LearnedState`."""
        plain = LearnedState()
        plain.restore(self)
        return plain


@contextlib.asynccontextmanager
async def open_shared_learned(
    redis: RedisConnection,
    *,
    key: str,
    interval: float = DEFAULT_LEARNED_INTERVAL,
    prefix: str = "specroute",
) -> AsyncIterator[SharedLearnedState]:
    """Open a learned state shared through Redis; it syncs in the background in this block.

    It starts from the totals in Redis (or empty, if Redis does not answer), and pushes
    what this worker recorded once more on the way out.

    Args:
        redis: The connection.
        key: The state's name; workers with equal keys share it.
        interval: Seconds between syncs.
        prefix: Prefix of the Redis names.

    Yields:
        The state.

    Raises:
        CacheConfigError: `key` is empty or `interval` is not > 0.
    """
    names = _names(key, prefix)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise CacheConfigError(f"`interval` must be a number of seconds > 0, got {interval!r}")
    state = SharedLearnedState()
    link = _Link(redis=redis, names=names)
    state._link = link
    await link.sync(state)
    try:
        async with open_passing_nursery() as nursery:
            nursery.start_soon(link.keep_in_sync, state, interval)
            yield state
    finally:
        # Shielded so a cancelled worker still hands on what it learned; each command is
        # bounded by the connection's timeout.
        with trio.CancelScope(shield=True):
            await link.flush(state)
        link.closed = True


async def read_shared_learned(
    redis: RedisConnection, *, key: str, prefix: str = "specroute"
) -> LearnedState:
    """Read the totals of a shared learned state into a plain `LearnedState`.

    Args:
        redis: The connection.
        key: The state's name.
        prefix: Prefix of the Redis names.

    Returns:
        A new, unshared state holding the totals.

    Raises:
        CacheConfigError: `key` is empty.
        RedisUnavailableError: Redis did not answer.
    """
    figures, _ = _names(key, prefix)
    reply = await redis.run(lambda r: r.hgetall(figures))
    state = LearnedState()
    state.update_figures(_totals([item for pair in reply.items() for item in pair]))
    return state


async def reset_shared_learned(
    redis: RedisConnection,
    *,
    key: str,
    router: str | None = None,
    step: str | None = None,
    prefix: str = "specroute",
) -> None:
    """Clear a shared learned state in Redis, or what it holds about `router` or `step`;
    every worker drops it at its next sync (keeping only what it recorded since then).

    Args:
        redis: The connection.
        key: The state's name.
        router: Clear only this router's statistics and calibration.
        step: Clear only this step's confirm counts.
        prefix: Prefix of the Redis names.

    Raises:
        CacheConfigError: `key` is empty.
        RedisUnavailableError: Redis did not answer.
    """
    names = _names(key, prefix)
    owners: list[Any] = []
    if router is not None:
        owners += [_owner_prefix(kind, router) for kind in ("predictor", "calibration")]
    if step is not None:
        owners.append(_owner_prefix("step", step))
    await redis.evaluate(redis.script(_RESET), list(names), owners)


@attrs.define(eq=False)
class _Batch:
    """One batch of a worker's changes, sent again unchanged until acknowledged."""

    seq: int
    delta: dict[LearnedFigure, int | float]
    formed: dict[LearnedFigure, int | float]


@attrs.frozen
class _Applied:
    """A batch of this worker's, and the version of the totals it made."""

    version: int
    delta: dict[LearnedFigure, int | float]


# Applied batches a worker remembers, to push again into totals seeded from a copy that
# missed them (a few seconds' worth at the default interval).
_REMEMBERED = 64


@attrs.define(eq=False)
class _Link:
    """The sync machinery of one `SharedLearnedState`."""

    redis: RedisConnection
    names: tuple[str, str]
    worker: str = attrs.field(factory=lambda: secrets.token_hex(8))
    base: dict[LearnedFigure, int | float] = attrs.field(factory=dict)
    pending: _Batch | None = None
    epoch: str = ""
    version: int = 0
    seq: int = 0
    closed: bool = False
    syncs: int = 0
    failed_syncs: int = 0
    pushed: int = 0
    pulled: int = 0
    reseeded: int = 0
    unshared: int = 0
    synced_at: float | None = None
    applied: collections.deque[_Applied] = attrs.field(
        factory=lambda: collections.deque(maxlen=_REMEMBERED)
    )
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    push_script: Script[bytes] = attrs.field(init=False)
    seed_script: Script[bytes] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.push_script = self.redis.script(_PUSH)
        self.seed_script = self.redis.script(_SEED)

    async def keep_in_sync(self, state: LearnedState, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            await self.sync(state)

    async def flush(self, state: LearnedState) -> None:
        """Push what is left: a pending batch, then the changes made since."""
        for _ in range(2):
            if self.pending is None and not self._delta(self._shareable(state)):
                return
            if not await self.sync(state):
                return

    async def sync(self, state: LearnedState) -> bool:
        async with self.lock:
            try:
                # Three rounds at most: seed lost totals, then push, then push again what
                # totals seeded from another copy lacked.
                for _ in range(3):
                    outcome = await self._push(state)
                    if outcome == "done":
                        break
                    if outcome == "lost":
                        await self._seed(state)
            except RedisUnavailableError:
                self.failed_syncs += 1
                return False
            self.syncs += 1
            self.synced_at = trio.current_time()
            return True

    async def _push(self, state: LearnedState) -> Literal["done", "lost", "again"]:
        """Push the pending batch (formed now if none) and merge the reply: "lost" if Redis
        lost the totals, "again" if this worker has changes to push again at once."""
        if self.pending is None:
            formed = self._shareable(state)
            delta = self._delta(formed)
            seq = 0
            if delta:
                self.seq += 1
                seq = self.seq
            self.pending = _Batch(seq=seq, delta=delta, formed=formed)
        batch = self.pending
        args: list[Any] = [self.epoch, secrets.token_hex(8), self.worker, batch.seq, self.version]
        for figure, change in batch.delta.items():
            args += [_field(figure, change), _number(change)]
        reply = await self.redis.evaluate(self.push_script, list(self.names), args)
        # From here to the end nothing awaits: the merge sees one moment of the state.
        if reply[0] == b"lost":
            return "lost"
        self.pending = None
        old_epoch, old_version = self.epoch, self.version
        self.epoch = reply[0].decode()
        self.version = int(reply[1])
        redo = self._redo(old_epoch, old_version, reply[3].decode())
        if batch.seq:
            self.pushed += 1
            self.applied.append(_Applied(version=int(reply[2]), delta=batch.delta))
        if len(reply) < 5:
            # Nobody else changed the totals: they are what this worker had then.
            self.base = batch.formed
            return "done"
        self.pulled += 1
        totals = _totals(reply[4])
        now = self._shareable(state)
        updates: dict[LearnedFigure, int | float] = {}
        lifted: dict[LearnedFigure, int | float] = {}
        for figure in totals.keys() | now.keys() | batch.formed.keys() | redo.keys():
            value = now.get(figure, 0)
            target = totals.get(figure, 0) + value - batch.formed.get(figure, 0)
            target += redo.get(figure, 0)
            if target < _DUST:
                # A count is never below zero (a change this worker has yet to push may
                # take away more than the totals now hold). The lift is this copy's own:
                # it stays out of the next push, which Redis clamps at zero itself.
                lifted[figure] = -target
                target = 0
            if target != value:
                updates[figure] = target
        skipped = state.update_figures(updates)
        base = {figure: v for figure, v in totals.items() if figure not in skipped}
        for figure, lift in lifted.items():
            base[figure] = base.get(figure, 0) + lift
        self.base = base
        return "again" if redo else "done"

    def _redo(self, old_epoch: str, old_version: int, seeded: str) -> dict[LearnedFigure, Any]:
        """This worker's applied changes that totals seeded from another copy lack: those
        applied after that copy's version (pushed again with the next batch)."""
        redo: dict[LearnedFigure, Any] = {}
        if old_epoch and self.epoch != old_epoch:
            epoch, _, version = seeded.partition(":")
            if epoch == old_epoch:
                for batch in self.applied:
                    if int(version) < batch.version <= old_version:
                        for figure, change in batch.delta.items():
                            redo[figure] = redo.get(figure, 0) + change
            self.applied.clear()
        return redo

    async def _seed(self, state: LearnedState) -> None:
        formed = self._shareable(state)
        epoch = secrets.token_hex(8)
        args: list[Any] = [epoch, f"{self.epoch}:{self.version}"]
        for figure, value in formed.items():
            args += [_field(figure, value), _number(value)]
        if await self.redis.evaluate(self.seed_script, list(self.names), args):
            self.reseeded += 1
            self.epoch = epoch
            self.version = 1
            self.base = formed
            self.pending = None
            self.applied.clear()

    def _shareable(self, state: LearnedState) -> dict[LearnedFigure, int | float]:
        """The state's numbers whose address Redis can hold."""
        figures = state.figures()
        shareable = {figure: v for figure, v in figures.items() if _field(figure, v) is not None}
        self.unshared = len(figures) - len(shareable)
        return shareable

    def _delta(self, now: Mapping[LearnedFigure, int | float]) -> dict[LearnedFigure, int | float]:
        delta: dict[LearnedFigure, int | float] = {}
        for figure in now.keys() | self.base.keys():
            change = now.get(figure, 0) - self.base.get(figure, 0)
            if change:
                delta[figure] = change
        return delta


def _names(key: str, prefix: str) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise CacheConfigError(f"`key` must be a non-empty str naming the state, got {key!r}")
    name = f"{{{prefix}:learned:{key}}}"
    return f"{name}:figures", f"{name}:meta"


def _field(figure: LearnedFigure, value: int | float) -> str | None:
    """The hash field of a figure (`i` or `f` by the value's type, then JSON), or None when
    its address is not one Redis can hold."""
    try:
        path = [_key(part) for part in figure.path]
        address = json.dumps([figure.kind, figure.owner, *path], separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return ("i" if isinstance(value, int) else "f") + address


def _key(part: Hashable) -> Any:
    """A key as JSON: str, int, float, bool and None as they are, a tuple tagged."""
    if part is None or isinstance(part, str | int | bool):
        return part
    if isinstance(part, float):
        if not math.isfinite(part):
            raise ValueError(part)
        return part
    if isinstance(part, tuple):
        return {"tuple": [_key(item) for item in part]}
    raise TypeError(part)


def _unkey(part: Any) -> Hashable:
    if isinstance(part, dict):
        return tuple(_unkey(item) for item in part["tuple"])
    if isinstance(part, list):
        raise TypeError(part)
    hashable: Hashable = part
    return hashable


def _owner_prefix(kind: str, owner: str) -> str:
    return json.dumps([kind, owner], separators=(",", ":"))[:-1] + ","


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _totals(flat: list[bytes]) -> dict[LearnedFigure, int | float]:
    """Figures from an `HGETALL` reply; fields not in this format are skipped."""
    totals: dict[LearnedFigure, int | float] = {}
    for field, raw in zip(flat[::2], flat[1::2], strict=True):
        try:
            kind, owner, *path = json.loads(field[1:])
            value: int | float = int(raw) if field[:1] == b"i" else float(raw)
            if kind not in _KINDS or not isinstance(owner, str) or not path:
                continue
            figure = LearnedFigure(kind, owner, tuple(_unkey(part) for part in path))
        except (ValueError, TypeError, KeyError):
            continue
        totals[figure] = totals.get(figure, 0) + value
    return totals
