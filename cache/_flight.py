"""Single flight: concurrent callers that miss on the same key share one computation.

The computation runs in a nursery that belongs to the `SingleFlight`, not to any caller,
so a caller that is cancelled (its speculative branch lost) leaves it running for the
others. When the last caller waiting for it is cancelled, nobody wants the result, and it
is cancelled too. A failure reaches every caller and nothing is remembered: the next
caller for the key starts a new computation.

The check ("is this key in flight?") and the set ("it is now") happen with no `await`
between them, so two callers can never both start one.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from ._errors import ComputationFailedError, SingleFlightClosedError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

__all__ = ["SingleFlight", "SingleFlightStatistics", "open_single_flight"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class SingleFlightStatistics:
    """A snapshot of a `SingleFlight`'s counters.

    Args:
        in_flight: Computations running now.
        started: Computations started.
        joined: Calls that joined a computation another call had started.
        abandoned: Computations cancelled because every caller waiting for them was gone.
        failed: Computations that raised.
    """

    in_flight: int
    started: int
    joined: int
    abandoned: int
    failed: int


@attrs.define(eq=False)
class _Flight:
    """One computation and the callers waiting for it."""

    done: trio.Event = attrs.Factory(trio.Event)
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    waiters: int = 0
    finished: bool = False
    value: Any = None
    error: Exception | None = None


@attrs.define(eq=False)
class SingleFlight:
    """Runs at most one computation per key at a time, shared by every caller of that key.

    Build one with `open_single_flight()`, or pass a nursery you own: the computations run
    there, so it must outlive every caller.

    Args:
        nursery: Where computations run.
    """

    _nursery: trio.Nursery = attrs.field(alias="nursery")
    _flights: dict[Hashable, _Flight] = attrs.field(init=False, factory=dict)
    _closed: bool = attrs.field(init=False, default=False)
    _started: int = attrs.field(init=False, default=0)
    _joined: int = attrs.field(init=False, default=0)
    _abandoned: int = attrs.field(init=False, default=0)
    _failed: int = attrs.field(init=False, default=0)

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """Return the result of `compute()`, sharing one call with concurrent callers of `key`.

        If a computation for `key` is running, wait for it; otherwise start one. The result
        is not remembered once every waiter has it.

        Args:
            key: What the computation is for; callers with equal keys share it.
            compute: Makes the result; called at most once per computation.

        Returns:
            The computation's result (the same object for every caller).

        Raises:
            ComputationFailedError: The computation raised; its exception is `__cause__`.
                Every waiting caller gets its own `ComputationFailedError`.
            SingleFlightClosedError: The `async with open_single_flight()` block has ended.
        """
        if self._closed:
            raise SingleFlightClosedError(
                f"cannot compute {key}: this single flight is closed; call it inside"
                " `async with open_single_flight() as flight:`"
            )
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
            self._nursery.start_soon(self._compute, key, flight, compute)
            self._started += 1
        else:
            self._joined += 1
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done.is_set():
                # The last caller left before the result came: nobody wants it.
                flight.scope.cancel()
                self._forget(key, flight)
                self._abandoned += 1
        if flight.error is not None:
            raise ComputationFailedError(
                f"the shared computation for {key} raised {type(flight.error).__name__}:"
                f" {flight.error}; the cause is its own exception",
                key=key,
            ) from flight.error
        if not flight.finished:
            # Only when the nursery itself was cancelled under a caller from elsewhere.
            raise ComputationFailedError(
                f"the shared computation for {key} was cancelled before it finished; keep"
                " the single flight's nursery open while callers wait",
                key=key,
            )
        return flight.value  # type: ignore[no-any-return]  # set from compute(), a T

    def close(self) -> None:
        """Refuse new calls; running computations go on for their waiters."""
        self._closed = True

    def statistics(self) -> SingleFlightStatistics:
        """Return a snapshot of the counters.

        Returns:
            The counters at this moment.
        """
        return SingleFlightStatistics(
            in_flight=len(self._flights),
            started=self._started,
            joined=self._joined,
            abandoned=self._abandoned,
            failed=self._failed,
        )

    async def _compute(
        self, key: Hashable, flight: _Flight, compute: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            with flight.scope:
                try:
                    flight.value = await compute()
                    flight.finished = True
                except Exception as exc:  # noqa: BLE001  # delivered, not swallowed:
                    # raising it here would crash the shared nursery; `run` hands it to
                    # every waiter as the cause of a ComputationFailedError.
                    flight.error = exc
                    self._failed += 1
        finally:
            self._forget(key, flight)
            flight.done.set()

    def _forget(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]


@contextlib.asynccontextmanager
async def open_single_flight() -> AsyncIterator[SingleFlight]:
    """Open a `SingleFlight` whose computations run in a nursery this block owns.

    On leaving the block, new calls are refused and the block waits for computations still
    running for callers elsewhere. An exception raised in the block leaves it as itself, not
    wrapped in the nursery's `ExceptionGroup`: the computations deliver their own failures to
    their callers and never raise into the nursery, so `except SomeError` around the block
    works as it reads.

    Yields:
        The single flight.
    """
    raised: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            flight = SingleFlight(nursery=nursery)
            try:
                yield flight
            except BaseException as exc:
                raised = exc
                raise
            finally:
                flight.close()
    except BaseExceptionGroup as group:
        alone = _only(group, raised)
        if alone is None:
            raise
    else:
        return
    # Raised outside the handler, so the group does not become its `__context__`.
    raise alone


def _only(
    group: BaseExceptionGroup[BaseException], body: BaseException | None
) -> BaseException | None:
    """`body` if the nursery's group holds it and nothing else but `trio.Cancelled`.

    Strict nurseries wrap even a single exception. A computation catches every `Exception`
    for its callers, and its own cancel scope absorbs its abandonment, so what else reaches
    the group is `Cancelled` from a scope outside the block, which is cancelling the body
    too: such a group means "the body raised", and a dropped `Cancelled` is delivered again
    at the next checkpoint while its scope stays cancelled. Any other group (a
    `KeyboardInterrupt` inside a computation) is left as it is.
    """
    if body is None or not any(exc is body for exc in group.exceptions):
        return None
    if all(exc is body or isinstance(exc, trio.Cancelled) for exc in group.exceptions):
        return body
    return None
