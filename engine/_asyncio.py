"""The asyncio bridge: run flows from asyncio code, and await asyncio code from steps.

The core is trio. An asyncio program (a FastAPI service, say) hosts one long-lived trio run on
its own event loop through trio's guest mode (`trio.lowlevel.start_guest_run`): trio's tasks
run on the loop's thread, between asyncio's callbacks, while trio waits for I/O in a helper
thread. One guest run serves every request, so what is process-wide (provider limits and
budgets, caches, single-flight, waste budgets, learned router state) is shared as under trio.

- `asyncio_portal()` starts the guest run and, on exit, cancels the runs still in flight and
  waits for them to finish (an effect that has started runs to its end within its
  `effect_grace`, so shutdown is bounded by the longest grace in flight).
  `await portal.run(flow, ...)` runs a flow from any task of the loop.
- Cancellation crosses both ways. Cancelling the asyncio task that awaits `portal.run` (a
  client that went away, `asyncio.timeout`) cancels that run's own `trio.CancelScope`, and
  the task's `CancelledError` propagates only once every step of the run has stopped. A
  step's `await on_asyncio(...)` cancelled by trio cancels the asyncio task and waits for it.
- A run's failure reaches asyncio as the same single exception a trio caller gets (a
  `StepFailedError`, `RunTimeoutError`, ...), raised as itself.

One guest run per process: while a portal is open, a second `asyncio_portal()` raises
`AsyncioBridgeError`; share the first one (keep it in your app's state). Trio code run through
a portal runs on the loop's thread, so an observer may hand events to asyncio directly
(`asyncio.Queue.put_nowait`). Nothing in the engine imports this module.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio
from specroute.routes import SpecrouteError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping

    from outcome import Outcome

    from ._flow import Flow
    from ._trace import RunResult

__all__ = [
    "AsyncioBridgeError",
    "AsyncioPortal",
    "AsyncioPortalStatistics",
    "asyncio_portal",
    "on_asyncio",
]

T = TypeVar("T")

# The portal hosting this process's guest run, while one is open.
_hosted: AsyncioPortal | None = None


class AsyncioBridgeError(SpecrouteError):
    """The asyncio bridge was misused, or went away under a call.

    Raised by `asyncio_portal()` when a portal is already open in the process, by
    `AsyncioPortal.run` when the portal is closed or closes while the run is in flight, and by
    `on_asyncio` outside a flow hosted on asyncio or when the asyncio side cancelled the
    coroutine on its own. Unlike `RunError`, it says nothing about the flow itself.
    """


@attrs.frozen(kw_only=True)
class AsyncioPortalStatistics:
    """A portal at one moment (from `AsyncioPortal.statistics()`).

    Attributes:
        runs_in_flight: Calls started in the trio run and not finished.
        runs_started: Calls started since the portal opened.
        runs_cancelled: Calls cancelled because their asyncio caller was cancelled.
        trio_tasks: Tasks alive in the guest run, trio's own and the portal's included.
    """

    runs_in_flight: int
    runs_started: int
    runs_cancelled: int
    trio_tasks: int


@attrs.define(eq=False)
class AsyncioPortal:
    """A trio run hosted on an asyncio loop; runs flows for that loop's tasks.

    Made by `asyncio_portal()`, never directly. Use it only from the loop that opened it.
    """

    _loop: asyncio.AbstractEventLoop = attrs.field(alias="loop")
    _token: trio.lowlevel.TrioToken | None = attrs.field(init=False, default=None)
    _root: trio.lowlevel.Task | None = attrs.field(init=False, default=None)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    _resources: trio.Nursery | None = attrs.field(init=False, default=None)
    # One event per entered context manager: set, in reverse order, to exit it at close.
    _releases: list[tuple[trio.Event, trio.Event]] = attrs.field(init=False, factory=list)
    _closing: bool = attrs.field(init=False, default=False)
    _in_flight: int = attrs.field(init=False, default=0)
    _started: int = attrs.field(init=False, default=0)
    _cancelled: int = attrs.field(init=False, default=0)

    async def run(
        self, flow: Flow, inputs: Mapping[str, Any] | None = None, /, **options: Any
    ) -> RunResult:
        """Run `flow` in the portal's trio run and return its `RunResult`.

        Args:
            flow: The flow to run.
            inputs: Run inputs as a mapping (for names that clash with `Flow.run`'s keywords).
            **options: Run inputs by name and `Flow.run`'s keywords (`mode`, `speculate`,
                `timeout`, `cache`, `observer`, ...), as `Flow.run` takes them.

        Returns:
            The `RunResult`, as `Flow.run` returns it.

        Raises:
            asyncio.CancelledError: This task was cancelled; the run was cancelled and every
                step of it had stopped before this is raised.
            AsyncioBridgeError: The portal is closed, or closed while the run was in flight,
                or this is not the loop that opened it.
            SpecrouteError: Whatever `Flow.run` raises (`StepFailedError`, `RunTimeoutError`,
                a `FlowError`, ...), as the same single exception.
        """
        return await self.call(partial(flow.run, inputs, **options))

    async def call(self, async_fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Await `async_fn(*args)` in the portal's trio run, with cancellation passed through.

        For trio code that is not a flow run (opening a client, reading statistics); use
        `functools.partial` for keyword arguments, as with `trio.Nursery.start_soon`.

        Args:
            async_fn: A trio async function.
            *args: Its positional arguments.

        Returns:
            What `async_fn` returned.

        Raises:
            asyncio.CancelledError: This task was cancelled; `async_fn` was cancelled and had
                returned before this is raised.
            AsyncioBridgeError: The portal is closed, or closed while `async_fn` ran, or this
                is not the loop that opened it.
            Exception: Whatever `async_fn` raised, as itself.
        """
        token = self._usable_token()
        outcome: asyncio.Future[T] = self._loop.create_future()
        scope = trio.CancelScope()
        token.run_sync_soon(self._start, scope, outcome, partial(async_fn, *args))
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            if not outcome.done():  # still running in trio: the trio run is alive
                token.run_sync_soon(scope.cancel)
            await _wait_through_cancellation(outcome)
            if not outcome.cancelled():
                outcome.exception()  # retrieved: its result is dropped with the cancellation
            raise

    async def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enter a trio async context manager for the rest of the portal's life.

        For what a service opens once and shares (`open_llm_client(...)`, `open_cache(...)`):
        it is entered in a task of the trio run, and exited when the portal closes, after the
        runs in flight have stopped, the last entered first.

        Args:
            manager: A trio async context manager.

        Returns:
            What entering it gave (the `as` value).

        Raises:
            AsyncioBridgeError: The portal is closed or closing.
            Exception: Whatever entering it raised, as itself.
        """
        token = self._usable_token()
        entered: asyncio.Future[T] = self._loop.create_future()
        token.run_sync_soon(self._start_holding, manager, entered)
        return await entered

    def statistics(self) -> AsyncioPortalStatistics:
        """Return the portal's calls and the guest run's task count now."""
        return AsyncioPortalStatistics(
            runs_in_flight=self._in_flight,
            runs_started=self._started,
            runs_cancelled=self._cancelled,
            trio_tasks=0 if self._root is None else _count_tasks(self._root),
        )

    def _usable_token(self) -> trio.lowlevel.TrioToken:
        if self._closing or self._token is None:
            raise AsyncioBridgeError(
                "the asyncio portal is closed: call `portal.run` inside "
                "`async with asyncio_portal() as portal:` (in FastAPI, the app's lifespan)"
            )
        if asyncio.get_running_loop() is not self._loop:
            raise AsyncioBridgeError(
                "this asyncio portal belongs to another event loop: call it from the loop "
                "that opened it"
            )
        return self._token

    async def _host(self, ready: asyncio.Future[None]) -> None:
        """The guest run's main task: holds the nursery every call runs in."""
        self._token = trio.lowlevel.current_trio_token()
        self._root = trio.lowlevel.current_root_task()
        async with trio.open_nursery() as resources:
            self._resources = resources
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                ready.set_result(None)
                await trio.sleep_forever()
            # Closing: every call has stopped; exit what was entered, the last first.
            for release, released in reversed(self._releases):
                release.set()
                await released.wait()

    def _start_holding(
        self, manager: AbstractAsyncContextManager[T], entered: asyncio.Future[T]
    ) -> None:
        # Runs in trio, like `_start`.
        if self._closing or self._resources is None:
            entered.set_exception(_closed_under_call())
            return
        release = trio.Event()
        released = trio.Event()
        self._releases.append((release, released))
        self._resources.start_soon(self._hold, manager, entered, release, released)

    async def _hold(
        self,
        manager: AbstractAsyncContextManager[T],
        entered: asyncio.Future[T],
        release: trio.Event,
        released: trio.Event,
    ) -> None:
        try:
            try:
                value = await manager.__aenter__()
            except Exception as exc:  # noqa: BLE001 -- handed to `enter`'s caller, who raises it
                entered.set_exception(exc)
                return
            entered.set_result(value)
            try:
                await release.wait()
            finally:
                await manager.__aexit__(None, None, None)
        finally:
            released.set()

    def _start(
        self, scope: trio.CancelScope, outcome: asyncio.Future[T], fn: Callable[[], Awaitable[T]]
    ) -> None:
        # Runs in trio (`run_sync_soon`), where raising would crash the run: a call that
        # arrives as the portal closes is refused through its future instead.
        if self._closing or self._nursery is None:
            outcome.set_exception(_closed_under_call())
            return
        self._nursery.start_soon(self._call_one, scope, outcome, fn)

    async def _call_one(
        self, scope: trio.CancelScope, outcome: asyncio.Future[T], fn: Callable[[], Awaitable[T]]
    ) -> None:
        self._in_flight += 1
        self._started += 1
        try:
            with scope:
                try:
                    result = await fn()
                # Not swallowed but handed over: the asyncio caller raises it as itself (the
                # bridge is a boundary like a route's). trio.Cancelled is no Exception.
                except Exception as exc:  # noqa: BLE001
                    outcome.set_exception(exc)
                else:
                    outcome.set_result(result)
            if scope.cancelled_caught:
                self._cancelled += 1
                outcome.cancel()  # the caller is cancelled already and only waits for this
        finally:
            self._in_flight -= 1
            if not outcome.done():  # the portal's nursery was cancelled: it is closing
                outcome.set_exception(_closed_under_call())


@asynccontextmanager
async def asyncio_portal() -> AsyncIterator[AsyncioPortal]:
    """Host a trio run on the running asyncio loop for the duration of the block.

    Use it once per process, around the program's life (a FastAPI lifespan):

        async with asyncio_portal() as portal:
            result = await portal.run(flow, user_input="...")

    Leaving the block cancels the runs still in flight, waits for every one to finish (each
    caller gets `AsyncioBridgeError`), exits what `portal.enter` entered (the last first),
    then ends the trio run.

    Yields:
        The `AsyncioPortal`.

    Raises:
        AsyncioBridgeError: A portal is already open in this process: one trio run is
            hosted per process, so share the first portal instead of opening another.
        RuntimeError: Trio is already running on this thread.
        BaseException: Whatever crashed the hosted trio run (a `KeyboardInterrupt`).
    """
    global _hosted
    if _hosted is not None:
        raise AsyncioBridgeError(
            "an asyncio portal is already open in this process, and one trio run is hosted "
            "per process: share that portal (keep it in your app's state) instead of "
            "opening a second `asyncio_portal()`"
        )
    loop = asyncio.get_running_loop()
    portal = AsyncioPortal(loop=loop)
    ready: asyncio.Future[None] = loop.create_future()
    done: asyncio.Future[Outcome[None]] = loop.create_future()
    trio.lowlevel.start_guest_run(
        portal._host,
        ready,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=done.set_result,
        host_uses_signal_set_wakeup_fd=True,
    )
    _hosted = portal
    try:
        await asyncio.wait((ready, done), return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            yield portal
    finally:
        portal._closing = True
        if not done.done() and portal._token is not None and portal._nursery is not None:
            portal._token.run_sync_soon(portal._nursery.cancel_scope.cancel)
        cancelled = await _wait_through_cancellation(done)
        _hosted = None
        if cancelled:
            raise asyncio.CancelledError
    done.result().unwrap()


async def on_asyncio(coro_fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
    """Await `coro_fn(*args)` on the asyncio loop hosting this flow, from a trio step.

    For asyncio-only libraries (aiohttp, asyncpg, redis.asyncio, an asyncio SDK). The
    coroutine runs as an asyncio task with a copy of the step's context variables. If the
    step is cancelled (its branch lost, the run was cancelled), the task is cancelled and
    awaited before the cancellation goes on.

    Args:
        coro_fn: An asyncio coroutine function.
        *args: Its positional arguments (use `functools.partial` for keywords).

    Returns:
        What the coroutine returned.

    Raises:
        AsyncioBridgeError: The flow is not hosted on asyncio (it runs under a plain
            `trio.run`, not through `asyncio_portal()`), or the asyncio side cancelled the
            task on its own (the loop is shutting down).
        Exception: Whatever the coroutine raised, as itself.
    """
    portal = _hosted
    if portal is None or portal._token is not trio.lowlevel.current_trio_token():
        name = getattr(coro_fn, "__qualname__", repr(coro_fn))
        raise AsyncioBridgeError(
            f"`on_asyncio({name})` needs a flow hosted on asyncio, and this trio run is not: "
            "run the flow through `asyncio_portal()` (`await portal.run(flow, ...)`), or call "
            "a trio library here instead"
        )
    token = portal._token
    # Created in the step's context, so the task gets a copy of its context variables; sniffio
    # still says "asyncio" inside it (trio marks only its own task steps as trio).
    task = portal._loop.create_task(coro_fn(*args))
    finished = trio.Event()
    task.add_done_callback(lambda _: token.run_sync_soon(finished.set))
    try:
        await finished.wait()
    finally:
        if not task.done():  # trio cancelled the step: stop the task before going on
            task.cancel()
            with trio.CancelScope(shield=True):
                await finished.wait()
            if not task.cancelled():
                task.exception()  # retrieved: it is dropped with the cancellation
    if task.cancelled():
        raise AsyncioBridgeError(
            f"the asyncio task running `{task.get_coro()!r}` was cancelled on the asyncio side "
            "(is the loop shutting down?); close the asyncio portal before the loop"
        )
    return task.result()


async def _wait_through_cancellation(future: asyncio.Future[Any]) -> bool:
    """Wait until `future` is done even if this task is cancelled meanwhile; say if it was."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait((future,))
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


def _closed_under_call() -> AsyncioBridgeError:
    return AsyncioBridgeError(
        "the asyncio portal closed while this call was in flight: leaving "
        "`async with asyncio_portal()` cancels the runs still in flight and waits for them"
    )


def _count_tasks(task: trio.lowlevel.Task) -> int:
    return 1 + sum(
        _count_tasks(child) for nursery in task.child_nurseries for child in nursery.child_tasks
    )
