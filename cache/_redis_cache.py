"""`RedisCache`: the `StepCache` shared by every worker on one Redis server.

It keys entries exactly as the in-memory `Cache` does (`make_key`: step identity, version,
`depends_on`, namespace, canonical inputs), so deployments on different models never share
answers. In Redis, with `p` the prefix and `ns` the URL-quoted namespace (every name of a
namespace shares the hash tag `{p:ns}`)::

    {p:ns}:x:<digest>      exact value (see `_redis_codec` for the format), expiring
                           after `ttl`
    {p:ns}:x:lru           sorted set digest -> last use (ms), the namespace's size bound
    {p:ns}:v:<digest>      semantic entry hash: k (key JSON), vec (float32), val
    {p:ns}:v:lru           sorted set, as for exact entries
    {p:ns}:lock:<digest>   single-flight lock; {p:ns}:done:<digest> its hand-off stream
    p:v:stream             the stream of semantic stores and removals

Faults: a command that fails or times out (`RedisConnection.timeout`) is counted and the
cache is bypassed for that call (a lookup misses, a store stores nothing, a shared
computation runs locally); the next call tries Redis again, so a worker recovers as soon as
Redis is back. A value that does not decode is a miss, counted in `decode_errors`.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._embedders import Embedder, HashingEmbedder, embed_input
from ._errors import CacheConfigError, UncacheableValueError
from ._flight import SingleFlight, open_single_flight
from ._key import CacheKey, make_key
from ._protocol import CacheHit, CacheMiss, CacheStatistics
from ._redis_client import open_passing_nursery
from ._redis_codec import Decoded, TypeRegistry, decode, encode
from ._redis_errors import RedisUnavailableError, UndecodableValueError
from ._redis_flight import RedisFlight, RedisFlightStatistics
from ._redis_semantic import SyncedSemanticIndex, key_to_json
from ._semantic_index import normalized as _normalized
from ._validators import at_least, non_empty_text, positive

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    import numpy as np
    from coredis.commands import Script
    from numpy.typing import NDArray

    from ._key import StepIdentity
    from ._options import CacheOptions
    from ._redis_client import RedisConnection

__all__ = [
    "DEFAULT_REDIS_CACHE",
    "RedisCache",
    "RedisCacheConfig",
    "RedisCacheStatistics",
    "open_redis_cache",
]

T = TypeVar("T")


def _types(instance: object, attribute: attrs.Attribute[Any], value: tuple[type, ...]) -> None:
    for kind in value:
        if not isinstance(kind, type):
            raise CacheConfigError(
                f"`{attribute.name}` must hold classes (attrs, dataclass or enum), got {kind!r}"
            )


@attrs.frozen(kw_only=True)
class RedisCacheConfig:
    """Settings of a `RedisCache`.

    Args:
        prefix: Prefix of every Redis name this cache uses; caches with different prefixes
            on one server never see each other.
        ttl: Seconds an entry lives after it is stored (`None`: until evicted).
        max_entries: Most exact entries, and separately most semantic entries, per
            namespace; the least recently used go first. One tenant never evicts another's.
        lock_ttl: Seconds a single-flight lock lives unrenewed: how long a worker that
            died computing blocks the others, at most.
        handoff_ttl: Seconds a shared computation's result stays readable for waiters.
        local_max_entries: Most semantic entries this worker's in-process index keeps.
        types: attrs classes, dataclasses and enums that stored values may contain
            (besides plain data and `Route`), written by their init arguments.
    """

    prefix: str = attrs.field(default="specroute", validator=non_empty_text)
    ttl: float | None = attrs.field(default=None, validator=positive)
    max_entries: int = attrs.field(default=10_000, validator=at_least(1))
    lock_ttl: float = attrs.field(default=30.0, validator=positive)
    handoff_ttl: float = attrs.field(default=5.0, validator=positive)
    local_max_entries: int = attrs.field(default=100_000, validator=at_least(1))
    types: tuple[type, ...] = attrs.field(default=(), converter=tuple, validator=_types)


#: A `RedisCache`'s settings when none are given.
DEFAULT_REDIS_CACHE = RedisCacheConfig()


@attrs.frozen(kw_only=True)
class RedisCacheStatistics:
    """The shared cache's own counters, beside the protocol's `CacheStatistics`.

    Args:
        bypassed: Calls that went around Redis because it did not answer.
        decode_errors: Entries read back that did not decode (each was a miss).
        uncacheable: Values not stored because the format cannot carry them.
        flight: The cross-process single flight's counters.
        stream_events: Semantic stream events this worker applied.
    """

    bypassed: int
    decode_errors: int
    uncacheable: int
    flight: RedisFlightStatistics
    stream_events: int


# Recency scores are Redis's clock in microseconds: at millisecond scores the entries that
# several workers store within one millisecond tie, and ZPOPMIN breaks ties by digest, not age.
_GET_EXACT = """
local value = redis.call('GET', KEYS[1])
if value then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', t[1] * 1000000 + t[2], ARGV[1])
  return value
end
return redis.call('ZREM', KEYS[2], ARGV[1])
"""
# Store and evict in one step: the per-namespace bound holds whatever the workers do.
_STORE_EXACT = """
local t = redis.call('TIME')
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], t[1] * 1000000 + t[2], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
local evicted = 0
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do
    redis.call('DEL', ARGV[5] .. old[i])
    evicted = evicted + 1
  end
end
return {evicted, redis.call('ZCARD', KEYS[2])}
"""
_STORE_SEMANTIC = """
local t = redis.call('TIME')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'k', ARGV[2], 'vec', ARGV[3], 'val', ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
redis.call('ZADD', KEYS[2], t[1] * 1000000 + t[2], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'op', 'put', 'ns', ARGV[7], 'd', ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
local evicted = 0
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do
    redis.call('DEL', ARGV[9] .. old[i])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
      'op', 'del', 'ns', ARGV[7], 'd', old[i])
    evicted = evicted + 1
  end
end
return evicted
"""
_GET_SEMANTIC = """
local value = redis.call('HGET', KEYS[1], 'val')
if value then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', t[1] * 1000000 + t[2], ARGV[1])
  return value
end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'del', 'ns', ARGV[2], 'd', ARGV[1])
end
return 0
"""


@attrs.define(eq=False)
class RedisCache:
    """The `StepCache` shared through Redis: exact then semantic lookup, store, single flight.

    Build it with `open_redis_cache(redis)`; use it wherever a `Cache` goes
    (`flow.run(..., cache=cache)`).

    Args:
        redis: The connection (`open_redis`).
        config: The settings.
        embedder: Embeds the semantic input of a step.
        flight: The in-process single flight in front of the cross-process one.
        shared_flight: The cross-process single flight.
        index: This worker's semantic index.
    """

    _redis: RedisConnection = attrs.field(alias="redis")
    _config: RedisCacheConfig = attrs.field(alias="config")
    _embedder: Embedder = attrs.field(alias="embedder")
    _flight: SingleFlight = attrs.field(alias="flight")
    _shared_flight: RedisFlight = attrs.field(alias="shared_flight")
    _index: SyncedSemanticIndex = attrs.field(alias="index")
    _types: TypeRegistry = attrs.field(init=False)
    _exact_hits: int = attrs.field(init=False, default=0)
    _semantic_hits: int = attrs.field(init=False, default=0)
    _misses: int = attrs.field(init=False, default=0)
    _stores: int = attrs.field(init=False, default=0)
    _evictions: int = attrs.field(init=False, default=0)
    _expirations: int = attrs.field(init=False, default=0)
    _bypassed: int = attrs.field(init=False, default=0)
    _decode_errors: int = attrs.field(init=False, default=0)
    _uncacheable: int = attrs.field(init=False, default=0)
    _entries: dict[str, int] = attrs.field(init=False, factory=dict)

    _get_exact: Script[bytes] = attrs.field(init=False)
    _store_exact: Script[bytes] = attrs.field(init=False)
    _store_semantic: Script[bytes] = attrs.field(init=False)
    _get_semantic: Script[bytes] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._types = TypeRegistry.of(self._config.types)
        self._get_exact = self._redis.script(_GET_EXACT)
        self._store_exact = self._redis.script(_STORE_EXACT)
        self._store_semantic = self._redis.script(_STORE_SEMANTIC)
        self._get_semantic = self._redis.script(_GET_SEMANTIC)

    @property
    def config(self) -> RedisCacheConfig:
        """The settings this cache was built with."""
        return self._config

    async def lookup(
        self, step: StepIdentity, options: CacheOptions, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        """Look a step's inputs up: by exact key first, then by meaning; a fault is a miss.

        Args:
            step: The step's identity (`StepIdentity.of`).
            options: The step's cache options; `version` and `depends_on` are in the key.
            namespace: The tenant; lookups never see another namespace's entries.
            inputs: The step's arguments by name.

        Returns:
            A `CacheHit`, or a `CacheMiss` to pass to `store` once the value is known.

        Raises:
            UnencodableInputError: An input cannot be part of a key.
            SemanticInputError: The semantic input is missing or not a `str`.
            EmbeddingError: The embedder failed.
        """
        key = make_key(step, options.version, namespace, inputs, depends_on=options.depends_on)
        if options.exact:
            hit = await self._lookup_exact(key)
            if hit is not None:
                return hit
        embedding = None
        if options.semantic is not None:
            embedding = await self._embed(step.name, options.semantic, inputs)
            hit = await self._lookup_semantic(key, embedding, options.threshold)
            if hit is not None:
                return hit
        self._misses += 1
        return CacheMiss(key=key, exact=options.exact, embedding=embedding)

    async def store(self, miss: CacheMiss, value: Any, *, seconds: float) -> None:
        """Store a step's final value in Redis; a fault or an unencodable value stores nothing.

        Args:
            miss: What `lookup` returned.
            value: The step's value (encoded now, so later changes do not reach Redis).
            seconds: How long computing the value took; a later hit reports it.
        """
        if not miss.exact and miss.embedding is None:
            return
        key = miss.key
        try:
            data = encode(value, seconds, self._types, where=key)
        except UncacheableValueError:
            # The step still ran; only sharing its value is impossible, so nothing is stored.
            self._uncacheable += 1
            return
        try:
            if miss.exact:
                await self._put_exact(key, data)
            if miss.embedding is not None:
                await self._put_semantic(key, miss.embedding, data)
        except RedisUnavailableError:
            self._bypassed += 1
            return
        self._stores += 1

    async def compute_once(self, key: CacheKey, compute: Callable[[], Awaitable[T]]) -> T:
        """Run `compute()` once for all concurrent callers with this key, in every worker.

        Args:
            key: The key of the miss (`CacheMiss.key`).
            compute: Computes the step's value.

        Returns:
            The value: computed here, or handed off by the worker that computed it.

        Raises:
            ComputationFailedError: The computation raised; `__cause__` is its exception.
        """
        lock = self._name(key.namespace, f"lock:{key.digest}")
        handoff = self._name(key.namespace, f"done:{key.digest}")
        return await self._flight.run(key, lambda: self._shared_flight.run(lock, handoff, compute))

    def statistics(self) -> CacheStatistics:
        """Return a snapshot of the counters (entries as last seen in Redis by this worker).

        Returns:
            The counters at this moment.
        """
        return CacheStatistics(
            exact_hits=self._exact_hits,
            semantic_hits=self._semantic_hits,
            misses=self._misses,
            stores=self._stores,
            evictions=self._evictions,
            expirations=self._expirations,
            entries=sum(self._entries.values()),
            semantic_entries=len(self._index),
            in_flight=self._flight.statistics().in_flight,
        )

    def shared_statistics(self) -> RedisCacheStatistics:
        """Return the counters only a shared cache has: faults, decoding, the shared flight.

        Returns:
            The counters at this moment.
        """
        return RedisCacheStatistics(
            bypassed=self._bypassed,
            decode_errors=self._decode_errors,
            uncacheable=self._uncacheable,
            flight=self._shared_flight.statistics(),
            stream_events=self._index.applied,
        )

    def _decode(self, found: bytes) -> Decoded | None:
        """A stored value, or None (counted) when it does not decode: a miss, not an error."""
        try:
            return decode(found, self._types)
        except UndecodableValueError:
            self._decode_errors += 1
            return None

    async def _lookup_exact(self, key: CacheKey) -> CacheHit | None:
        name = self._name(key.namespace, f"x:{key.digest}")
        lru = self._name(key.namespace, "x:lru")
        try:
            found: Any = await self._redis.evaluate(self._get_exact, [name, lru], [key.digest])
        except RedisUnavailableError:
            self._bypassed += 1
            return None
        if not isinstance(found, bytes):
            self._expirations += int(found == 1)
            return None
        decoded = self._decode(found)
        if decoded is None:
            return None
        self._exact_hits += 1
        return CacheHit(
            value=decoded.value,
            seconds=decoded.seconds,
            kind="exact",
            key=key,
            similarity=None,
            matched_key=key,
        )

    async def _lookup_semantic(
        self, key: CacheKey, embedding: NDArray[np.float32], threshold: float
    ) -> CacheHit | None:
        match = self._index.search(key, embedding, threshold)
        if match is None:
            return None
        matched: CacheKey = match.key
        name = self._name(matched.namespace, f"v:{matched.digest}")
        lru = self._name(matched.namespace, "v:lru")
        names = [name, lru, self._stream]
        args = [matched.digest, matched.namespace, _STREAM_LENGTH]
        try:
            found: Any = await self._redis.evaluate(self._get_semantic, names, args)
        except RedisUnavailableError:
            self._bypassed += 1
            return None
        if not isinstance(found, bytes):
            self._index.drop(matched.digest)
            self._expirations += 1
            return None
        decoded = self._decode(found)
        if decoded is None:
            return None
        self._semantic_hits += 1
        return CacheHit(
            value=decoded.value,
            seconds=decoded.seconds,
            kind="semantic",
            key=key,
            similarity=match.similarity,
            matched_key=matched,
            embedding=embedding,
        )

    async def _put_exact(self, key: CacheKey, data: bytes) -> None:
        names = [self._name(key.namespace, f"x:{key.digest}"), self._name(key.namespace, "x:lru")]
        args = [key.digest, data, self._ttl_ms(), self._config.max_entries]
        args.append(self._name(key.namespace, "x:"))
        evicted, entries = await self._redis.evaluate(self._store_exact, names, args)
        self._evictions += int(evicted)
        self._entries[key.namespace] = int(entries)

    async def _put_semantic(
        self, key: CacheKey, embedding: NDArray[np.float32], data: bytes
    ) -> None:
        row = _normalized(embedding, key).astype("<f4")
        names = [
            self._name(key.namespace, f"v:{key.digest}"),
            self._name(key.namespace, "v:lru"),
            self._stream,
        ]
        args: list[Any] = [key.digest, key_to_json(key), row.tobytes(), data, self._ttl_ms()]
        args += [self._config.max_entries, key.namespace, _STREAM_LENGTH]
        args.append(self._name(key.namespace, "v:"))
        evicted = await self._redis.evaluate(self._store_semantic, names, args)
        self._evictions += int(evicted)
        self._index.add(key, row)

    @property
    def _stream(self) -> str:
        return f"{self._config.prefix}:v:stream"

    def _name(self, namespace: str, suffix: str) -> str:
        return entry_name(self._config.prefix, namespace, suffix)

    def _ttl_ms(self) -> int:
        ttl = self._config.ttl
        return 0 if ttl is None else max(1, round(ttl * 1000))

    async def _embed(self, step: str, name: str, inputs: Mapping[str, Any]) -> NDArray[np.float32]:
        return await embed_input(self._embedder, step, name, inputs)


# Stream events kept (approximately): enough for a late worker to rebuild its index.
_STREAM_LENGTH = 200_000


def entry_name(prefix: str, namespace: str, suffix: str) -> str:
    """The Redis name of `suffix` in a namespace: `{prefix:quoted-namespace}:suffix`."""
    return f"{{{prefix}:{urllib.parse.quote(namespace, safe='')}}}:{suffix}"


@contextlib.asynccontextmanager
async def open_redis_cache(
    redis: RedisConnection,
    *,
    config: RedisCacheConfig = DEFAULT_REDIS_CACHE,
    embedder: Embedder | None = None,
) -> AsyncIterator[RedisCache]:
    """Open a `RedisCache` on a connection; its background work runs inside this block.

    The block follows the semantic stream (so stores from other workers reach this
    worker's index) and renews single-flight locks. An exception raised in the block leaves
    it as itself, not wrapped in an `ExceptionGroup`.

    Args:
        redis: The connection (`async with open_redis(url) as redis:`).
        config: The settings.
        embedder: The embedder for semantic lookups (default: `HashingEmbedder()`); every
            worker must use the same one.

    Yields:
        The cache.
    """
    async with open_passing_nursery() as nursery:
        index = SyncedSemanticIndex(
            redis=redis,
            stream=f"{config.prefix}:v:stream",
            maxsize=config.local_max_entries,
        )
        prefix = config.prefix
        nursery.start_soon(index.follow, lambda ns, d: entry_name(prefix, ns, f"v:{d}"))
        shared_flight = RedisFlight(
            redis=redis,
            nursery=nursery,
            types=TypeRegistry.of(config.types),
            lock_ttl=config.lock_ttl,
            handoff_ttl=config.handoff_ttl,
        )
        async with open_single_flight() as flight:
            yield RedisCache(
                redis=redis,
                config=config,
                embedder=embedder if embedder is not None else HashingEmbedder(),
                flight=flight,
                shared_flight=shared_flight,
                index=index,
            )
