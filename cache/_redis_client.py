"""`RedisConnection`: one coredis client held for a block, with outages counted, not raised.

coredis runs on anyio, so it runs under trio; but `async with coredis.Redis(...)` owns a task
group, and under trio an exception raised in its body leaves it wrapped in an
`ExceptionGroup`. `open_redis` enters the client in a task of its own and hands the body the
client from outside that task group, so a user's exception leaves `async with open_redis()`
as itself (tested in `tests/cache/test_redis_client.py`).

Every command goes through `RedisConnection.run`, which bounds it by the connection's
`timeout` and turns a Redis failure (refused, reset, slow, restarted) into
`RedisUnavailableError`, counted in `statistics()`. The shared cache and shared limits catch
that error and fall back (bypass the cache; local limits), so an outage never fails a run;
each new command tries the server again, so a worker recovers as soon as Redis is back.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from ._errors import CacheConfigError
from ._redis_errors import RedisUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import coredis
    from coredis.commands import Script

__all__ = [
    "DEFAULT_REDIS_TIMEOUT",
    "RedisConnection",
    "RedisStatistics",
    "open_passing_nursery",
    "open_redis",
]

T = TypeVar("T")

#: Seconds a Redis command may take before it counts as an outage.
DEFAULT_REDIS_TIMEOUT = 0.5


@attrs.frozen(kw_only=True)
class RedisStatistics:
    """A snapshot of a `RedisConnection`'s counters.

    Args:
        commands: Commands that succeeded.
        errors: Commands that failed or timed out (each one bypassed, never raised into a run).
        available: Whether the last command succeeded.
        last_error: The last failure's message, `None` if none yet.
    """

    commands: int
    errors: int
    available: bool
    last_error: str | None


@attrs.define(eq=False)
class RedisConnection:
    """A coredis client held for an `async with open_redis()` block, with outage counting.

    Build it with `open_redis()`. Share one per worker process: the shared cache
    (`open_redis_cache`) and shared provider limits (`SharedLimits`) each take it.

    Args:
        client: The coredis client (bytes replies).
        timeout: Seconds a command may take.
    """

    client: coredis.Redis[bytes]
    timeout: float = attrs.field(default=DEFAULT_REDIS_TIMEOUT)
    _outages: tuple[type[Exception], ...] = attrs.field(init=False)
    _commands: int = attrs.field(init=False, default=0)
    _errors: int = attrs.field(init=False, default=0)
    _available: bool = attrs.field(init=False, default=True)
    _last_error: str | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._outages = (_coredis().exceptions.RedisError, OSError, trio.TooSlowError)

    async def run(self, command: Callable[[coredis.Redis[bytes]], Awaitable[T]]) -> T:
        """Run one command (or script call) under the timeout; an outage becomes one error.

        Args:
            command: Given the client, returns the awaitable to run
                (`lambda redis: redis.get(key)`).

        Returns:
            The command's reply.

        Raises:
            RedisUnavailableError: Redis refused, dropped, errored or took longer than
                `timeout`; counted in `statistics().errors`.
        """
        try:
            with trio.fail_after(self.timeout):
                reply = await command(self.client)
        except self._outages as exc:
            self._errors += 1
            self._available = False
            self._last_error = f"{type(exc).__name__}: {exc}"
            raise RedisUnavailableError(
                f"Redis did not answer ({self._last_error}); the shared cache is bypassed and"
                " shared limits fall back to their outage rule until it answers again"
            ) from exc
        self._commands += 1
        self._available = True
        return reply

    def script(self, lua: str) -> Script[bytes]:
        """Register a Lua script (loaded again by its digest after a Redis restart)."""
        return self.client.register_script(lua)

    async def evaluate(self, script: Script[bytes], keys: list[str], args: list[Any]) -> Any:
        """Run a registered script under the timeout, as `run` runs a command.

        Args:
            script: From `script`.
            keys: The names it touches (`KEYS`).
            args: Its arguments (`ARGV`): str, bytes, int or float.

        Returns:
            The script's reply.

        Raises:
            RedisUnavailableError: As for `run`.
        """
        arguments: list[str | bytes | int | float] = args
        return await self.run(lambda r: script(keys=keys, args=arguments))

    def record_error(self, exc: BaseException) -> None:
        """Count a failure seen outside `run` (a blocking read in a sync task)."""
        self._errors += 1
        self._available = False
        self._last_error = f"{type(exc).__name__}: {exc}"

    def statistics(self) -> RedisStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment.
        """
        return RedisStatistics(
            commands=self._commands,
            errors=self._errors,
            available=self._available,
            last_error=self._last_error,
        )


@contextlib.asynccontextmanager
async def open_redis(
    url: str, *, timeout: float = DEFAULT_REDIS_TIMEOUT, **client_options: Any
) -> AsyncIterator[RedisConnection]:
    """Hold a coredis client for the block; exceptions in the block leave it unwrapped.

    Opening does not need Redis to be up: commands made while it is down count as errors,
    and the first command after it is back succeeds.

    Args:
        url: A Redis URL (`redis://127.0.0.1:6379/0`).
        timeout: Seconds a command may take before it counts as an outage.
        **client_options: Passed to `coredis.Redis.from_url` (not `decode_responses`: the
            library reads bytes).

    Yields:
        The connection.

    Raises:
        CacheConfigError: `timeout` is not > 0, or `decode_responses` was passed.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise CacheConfigError(f"`timeout` must be a number > 0, got {timeout!r}")
    if "decode_responses" in client_options:
        raise CacheConfigError(
            "`decode_responses` cannot be set: the shared cache reads raw bytes; drop it"
        )
    client_options.setdefault("connect_timeout", timeout)
    client_options.setdefault("stream_timeout", timeout)
    client: coredis.Redis[bytes] = _coredis().Redis.from_url(url, **client_options)
    connection = RedisConnection(client=client, timeout=timeout)
    done = trio.Event()
    async with open_passing_nursery() as nursery:
        await nursery.start(_hold, client, done)
        try:
            yield connection
        finally:
            done.set()


@contextlib.asynccontextmanager
async def open_passing_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery for background tasks; an `Exception` from the body leaves it unwrapped.

    The body's exception is kept out of the nursery (so it is not put in an
    `ExceptionGroup`), the background tasks are cancelled, and the exception is raised
    again as itself. `trio.Cancelled` and other `BaseException`s pass through untouched;
    on a normal exit the background tasks are cancelled too.
    """
    raised: Exception | None = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except Exception as exc:  # noqa: BLE001  # re-raised below, outside the nursery
            raised = exc
        finally:
            nursery.cancel_scope.cancel()
    if raised is not None:
        raise raised


def _coredis() -> Any:
    """The coredis module, imported on first use so `specroute.cache` imports without it."""
    try:
        import coredis
        import coredis.exceptions
    except ImportError as exc:
        raise CacheConfigError(
            "Redis support needs coredis; install it with `pip install 'specroute[redis]'`"
        ) from exc
    return coredis


async def _hold(
    client: coredis.Redis[bytes],
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep the client's own task group open until the block that uses it ends."""
    async with client:
        task_status.started()
        await done.wait()
