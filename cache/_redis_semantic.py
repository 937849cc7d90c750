"""Semantic entries in Redis, found through a local index that a Redis stream keeps in sync.

An entry (its key, normalised float32 embedding and encoded value) is a Redis hash that
expires with the cache's TTL. Every store and every removal is appended to one stream; each
worker reads the stream (from its start when it opens, so a late worker catches up, then
blocking for new events) and applies it to an in-process `SemanticCache` that holds only
keys and vectors. A lookup searches that index in-process, then reads the matched entry's
value from Redis: an entry that expired or was evicted is then gone from Redis, so the hit
is refused, the key leaves this index, and a removal is appended so it leaves every index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio

from ._errors import EmbeddingError
from ._key import CacheKey
from ._redis_errors import RedisUnavailableError
from ._semantic import SemanticCache, SemanticCacheConfig

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._redis_client import RedisConnection

__all__ = ["SyncedSemanticIndex", "key_from_json", "key_to_json"]

_BATCH = 500
_BLOCK_MS = 200
_RETRY = 0.25


def key_to_json(key: CacheKey) -> bytes:
    """A key as the JSON object of its fields."""
    return json.dumps(attrs.asdict(key), separators=(",", ":")).encode()


def key_from_json(data: bytes) -> CacheKey:
    """The key `key_to_json` wrote; raises `ValueError`/`TypeError`/`KeyError` if malformed."""
    fields = json.loads(data)
    return CacheKey(**{name: str(fields[name]) for name in _KEY_FIELDS})


_KEY_FIELDS = tuple(field.name for field in attrs.fields(CacheKey))


@attrs.define(eq=False)
class SyncedSemanticIndex:
    """This worker's copy of the semantic keys and vectors, fed by the Redis stream.

    Args:
        redis: The connection.
        stream: The stream of stores and removals.
        entry_prefix: Prefix of the entry hashes' names, per namespace (a callable of it).
        maxsize: Most entries the local index keeps.
    """

    _redis: RedisConnection = attrs.field(alias="redis")
    _stream: str = attrs.field(alias="stream")
    _maxsize: int = attrs.field(alias="maxsize")
    _index: SemanticCache = attrs.field(init=False)
    _keys: dict[str, CacheKey] = attrs.field(init=False, factory=dict)
    _last_id: str | bytes = attrs.field(init=False, default=b"0-0")
    _applied: int = attrs.field(init=False, default=0)
    caught_up: trio.Event = attrs.field(init=False, factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._index = SemanticCache(SemanticCacheConfig(maxsize=self._maxsize))

    def __len__(self) -> int:
        return len(self._index)

    @property
    def applied(self) -> int:
        """Stream events applied so far."""
        return self._applied

    def search(self, key: CacheKey, vector: NDArray[np.float32], threshold: float) -> Any:
        """The nearest local entry in `key`'s partition at or above `threshold`, or `None`."""
        return self._index.search(key, vector, threshold)

    def add(self, key: CacheKey, vector: NDArray[np.float32]) -> None:
        """Index `key` now (its own store; the stream event that follows changes nothing)."""
        self._keys[key.digest] = key
        self._index.put(key, vector, None)

    def drop(self, digest: str) -> None:
        """Remove the entry with this digest from the local index, if there."""
        key = self._keys.pop(digest, None)
        if key is not None:
            self._index.discard(key)

    async def follow(self, entry_name: Any) -> None:
        """Apply the stream forever: catch up from its start, then block for new events.

        Args:
            entry_name: Given a namespace and a digest, the name of the entry's hash.
        """
        while True:
            try:
                replies = await self._redis.run(
                    lambda r: r.xread({self._stream: self._last_id}, count=_BATCH, block=_BLOCK_MS)
                )
            except RedisUnavailableError:
                await trio.sleep(_RETRY)
                continue
            events = replies.get(self._stream.encode(), ()) if replies else ()
            for event in events:
                await self._apply(event.field_values, entry_name)
                self._last_id = event.identifier
                self._applied += 1
            if len(events) < _BATCH:
                self.caught_up.set()

    async def _apply(self, fields: Any, entry_name: Any) -> None:
        op = fields.get(b"op")
        digest = fields.get(b"d", b"").decode()
        if op == b"del":
            self.drop(digest)
            return
        if op != b"put" or digest in self._keys:
            return
        namespace = fields.get(b"ns", b"").decode()
        name = entry_name(namespace, digest)
        try:
            found = await self._redis.run(lambda r: r.hmget(name, [b"k", b"vec"]))
        except RedisUnavailableError:
            return  # a later hit reads Redis anyway; a missed entry is only a missed hit
        raw_key, raw_vector = found
        if raw_key is None or raw_vector is None:
            return  # expired or evicted since
        try:
            key = key_from_json(raw_key)
            vector = np.frombuffer(raw_vector, dtype="<f4")
            self.add(key, vector)
        except (ValueError, TypeError, KeyError, EmbeddingError) as exc:
            self._redis.record_error(exc)
