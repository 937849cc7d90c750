"""The errors of the Redis-backed shared state, under `CacheError`.

    CacheError                          (specroute.cache)
    ├── RedisUnavailableError           Redis refused, dropped or was too slow for one command
    └── UndecodableValueError           bytes in Redis that are not a value this library wrote

Neither reaches a step: the shared cache turns an outage into a bypass (a miss, nothing
stored) and an undecodable value into a miss, and counts both in its statistics.
"""

from __future__ import annotations

from ._errors import CacheError

__all__ = ["RedisUnavailableError", "UndecodableValueError"]


class RedisUnavailableError(CacheError):
    """Redis did not answer one command in time (down, restarting, slow or refusing).

    Raised by `RedisConnection.run`. The shared cache and the shared limits catch it and
    follow their outage rules; it reaches a caller only who runs commands directly. Unlike
    `UndecodableValueError`, Redis itself failed, not the data in it.
    """


class UndecodableValueError(CacheError):
    """Bytes read from Redis that are not a value in the documented format (`_redis_codec`).

    The shared cache treats such an entry as a miss. Unlike `UncacheableValueError`, which is
    about a value being stored, this is about a value read back.
    """
