"""The race of a hedged call: the primary request, the hedge timer, the backup, the settling.

`Hedge` and `HedgeState` (in `_hedge.py`) say when to hedge and what was learned; this module
runs one call by those rules, for `LLMClient.complete` and for `Failover`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs
import trio

from ._call import CallState
from ._hedge import HedgeState, hedging_allowed
from ._meter import CallStatus, HedgeRole

if TYPE_CHECKING:
    from ._hedge import Hedge
    from ._messages import Message
    from ._meter import CallRecord, UsageMeter
    from ._provider import Provider

__all__ = ["CallArgs", "Leg", "Requester", "run_call"]

T = TypeVar("T")


class Requester(Protocol[T]):
    """What the race needs of a client (`LLMClient` is the one there is)."""

    @property
    def provider(self) -> Provider: ...

    @property
    def hedge_state(self) -> HedgeState: ...

    async def _complete(
        self,
        call: CallState,
        prompt: tuple[Message, ...],
        model: str,
        max_tokens: int,
        stream: bool,
        temperature: float | None,
        extras: dict[str, Any],
    ) -> T: ...

    def _record(
        self,
        call: CallState,
        model: str,
        status: CallStatus,
        error: str | None,
        meter: UsageMeter | None,
        *,
        hedge: HedgeRole | None,
        saved: float,
        failover: int,
    ) -> CallRecord: ...

    def _mark(
        self, completion: T, *, started: float, hedge: HedgeRole | None, failover: int
    ) -> T: ...


@attrs.frozen(kw_only=True)
class Leg(Generic[T]):
    """Where one request of a call goes: a client and a model (and its failover position)."""

    client: Requester[T]
    model: str
    failover: int = 0

    def leg_state(self) -> HedgeState:
        """The hedge state of the leg's client."""
        return self.client.hedge_state


@attrs.frozen(kw_only=True)
class CallArgs:
    """The arguments every request of one call is sent with."""

    prompt: tuple[Message, ...]
    prompt_estimate: int
    max_tokens: int
    stream: bool
    temperature: float | None
    meter: UsageMeter | None
    # What only some calls send (tools, an output schema): every request sends the same.
    extras: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(eq=False)
class _Request(Generic[T]):
    leg: Leg[T]
    role: HedgeRole
    call: CallState
    completion: T | None = None
    error: Exception | None = None
    running: bool = True


async def run_call(
    primary: Leg[T], backup: Leg[T] | None, hedge: Hedge | None, args: CallArgs
) -> T:
    """Make one call to `primary`, hedged to `backup` when hedging is allowed here.

    Every request is recorded once the call is over, however it ends, from this task (so a
    run attributes it to the step that made the call). With `backup=None` the call is never
    hedged, but its latency is still learned (with `hedge=None`, not even that).

    Args:
        primary: Where the call goes first.
        backup: Where a hedge goes (`None`: no hedge).
        hedge: When to hedge, and the budget (`None`: no hedging).
        args: The request's arguments.

    Returns:
        The first complete answer, marked with the role of the request that gave it.

    Raises:
        Exception: The primary's error when no request answered (an `LLMError`, or the
            `ValueError` of a bad argument).
    """
    state = primary.leg_state()
    started = trio.current_time()
    threshold: float | None = None
    if hedge is not None and backup is not None and hedging_allowed():
        state._earn(hedge)
        threshold = state.threshold(primary.client.provider.name, primary.model, hedge)
    requests: list[_Request[T]] = [
        _Request(primary, HedgeRole.PRIMARY, CallState(args.prompt_estimate, started))
    ]
    try:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_send, requests[0], args, nursery.cancel_scope, requests)
                if threshold is not None and backup is not None:
                    nursery.start_soon(
                        _hedge_after, started + threshold, backup, args, nursery, requests
                    )
        except BaseExceptionGroup as group:
            # Only cancellations and interrupts cross the nursery (`_send` keeps errors):
            # the caller gets one of them, never a group.
            raise _first(group) from None
    finally:
        _settle(requests, state, hedge, started, args.meter)
    hedged = len(requests) > 1
    for request in requests:
        if request.completion is not None:
            return request.leg.client._mark(
                request.completion,
                started=started,
                hedge=request.role if hedged else None,
                failover=request.leg.failover,
            )
    failure = requests[0].error or requests[-1].error
    assert failure is not None, "a call that neither answered nor was cancelled failed"
    raise failure


async def _send(
    request: _Request[T], args: CallArgs, scope: trio.CancelScope, requests: list[_Request[T]]
) -> None:
    leg = request.leg
    call = request.call
    try:
        completion = await leg.client._complete(
            call,
            args.prompt,
            leg.model,
            args.max_tokens,
            args.stream,
            args.temperature,
            args.extras,
        )
        # Two answers in one instant: the first one kept wins; this one is discarded, and
        # recorded as cancelled (billed in full), so no answer is counted twice.
        if not any(r.completion is not None for r in requests):
            request.completion = completion
    except Exception as exc:  # noqa: BLE001 -- kept, and raised by `run_call` outside the nursery
        request.error = exc
    finally:
        request.running = False
        # Runs on cancellation too: the open attempt is billed for what it received.
        if call.progress is not None:
            call.close_attempt(error="Cancelled: the call was cancelled mid-attempt")
    if request.completion is not None or not any(r.running for r in requests):
        # The first answer wins; or nothing is left to wait for (stop the hedge timer too).
        scope.cancel()


async def _hedge_after(
    deadline: float,  # when to send the backup
    backup: Leg[T],
    args: CallArgs,
    nursery: trio.Nursery,
    requests: list[_Request[T]],
) -> None:
    await trio.sleep_until(deadline)
    state = requests[0].leg.leg_state()
    limits = backup.client.provider.statistics()
    if limits.waiting_for_slot or limits.in_flight >= limits.max_in_flight:
        state._busy += 1
        return
    if not state._spend():
        return
    call = CallState(args.prompt_estimate, trio.current_time())
    request: _Request[T] = _Request(backup, HedgeRole.BACKUP, call)
    requests.append(request)
    await _send(request, args, nursery.cancel_scope, requests)


def _settle(
    requests: list[_Request[T]],
    state: HedgeState,
    hedge: Hedge | None,
    started: float,
    meter: UsageMeter | None,
) -> None:
    """Learn the requests' latencies, then record each one in its client's meters."""
    hedged = len(requests) > 1
    saved = 0.0 if hedge is None else _learn(requests, state, hedge, started)
    for request in requests:
        if request.completion is not None:
            status, error = CallStatus.COMPLETED, None
        elif request.error is not None:
            status = CallStatus.FAILED
            error = f"{type(request.error).__name__}: {request.error}"
        else:
            status, error = CallStatus.CANCELLED, None
        won = request.role is HedgeRole.BACKUP and status is CallStatus.COMPLETED
        request.leg.client._record(
            request.call,
            request.leg.model,
            status,
            error,
            meter,
            hedge=request.role if hedged else None,
            saved=saved if won else 0.0,
            failover=request.leg.failover,
        )


def _learn(requests: list[_Request[T]], state: HedgeState, hedge: Hedge, started: float) -> float:
    """Add each request's latency to its window; return the seconds a winning hedge saved."""
    primary = requests[0]
    saved = 0.0
    for request in requests:
        leg = request.leg
        window = state.latencies(leg.client.provider.name, leg.model, size=hedge.window)
        if request.completion is not None:
            finished = request.call.attempts[-1].finished
            if request.role is HedgeRole.BACKUP:
                state._won += 1
                # What the primary would still have taken, judged by its past latencies.
                won_at = finished - started
                primary_window = state.latencies(
                    primary.leg.client.provider.name, primary.leg.model, size=hedge.window
                )
                expected = primary_window.mean_above(won_at)
                saved = 0.0 if expected is None else expected - won_at
            window.add(finished - request.call.started)
        elif request is primary and request.error is None and len(requests) > 1:
            # Cancelled by a winning hedge: a censored latency, known to exceed the threshold.
            window.add(trio.current_time() - started)
    return saved


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
