"""The usage ledger: every call, completed, failed or cancelled, with its tokens and dollars.

A cancelled call raises `trio.Cancelled` and returns nothing, yet the provider bills what it
read and generated. So every call, however it ends, is written as a `CallRecord` to:

- the client's own meter (`LLMClient.meter`), which totals the whole client;
- the meter passed to that one call (`complete(..., meter=m)`);
- every meter made active around the call with `record_usage(meter)`. The activation is a
  context variable, so it covers the tasks started inside the block too: a scheduler wraps
  each speculative branch in `with record_usage(branch_meter):` and reads the dollars a
  cancelled branch wasted from `branch_meter.statistics()`, without the steps knowing.

Recording is an append and a few additions per meter; no lock, no await.
"""

from __future__ import annotations

import contextvars
import enum
from collections import deque

import attrs

from ._checks import optional_at_least_one
from ._usage import Usage

__all__ = [
    "DEFAULT_MAX_RECORDS",
    "Attempt",
    "CallRecord",
    "CallStatus",
    "HedgeRole",
    "UsageMeter",
    "UsageStatistics",
    "active_meters",
    "record_usage",
]

#: How many recent `CallRecord`s a meter keeps by default; totals always cover every call.
DEFAULT_MAX_RECORDS = 10_000

_ACTIVE: contextvars.ContextVar[tuple[UsageMeter, ...]] = contextvars.ContextVar(
    "specroute_llm_active_meters", default=()
)


class CallStatus(enum.Enum):
    """How a call ended."""

    #: The answer arrived in full.
    COMPLETED = "completed"
    #: The call raised an `LLMError` (after any retries).
    FAILED = "failed"
    #: The call was cancelled (a cancel scope, a deadline, a speculative branch that lost).
    CANCELLED = "cancelled"


class HedgeRole(enum.Enum):
    """The part a request played in a hedged call (`CallRecord.hedge`; see `Hedge`)."""

    #: The call's first request.
    PRIMARY = "primary"
    #: The copy sent once the primary ran slower than the hedge threshold.
    BACKUP = "backup"


@attrs.frozen(kw_only=True)
class Attempt:
    """One HTTP request of a call, as the trace shows it.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry...
        started: `trio.current_time()` when the attempt was allowed to send (after limits).
        finished: `trio.current_time()` when it ended.
        status_code: The HTTP status, or `None` if no response arrived.
        error: `"ErrorClass: message"` if the attempt failed, else `None`.
        retry_after: The delay the provider asked for (`Retry-After`), in seconds.
        delay: The wait before the next attempt, or `None` if there was none.
        usage: What this attempt is billed: measured, or estimated if it was cut short.
    """

    number: int
    started: float
    finished: float
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    delay: float | None = None
    usage: Usage = attrs.field(factory=Usage)


@attrs.frozen(kw_only=True)
class CallRecord:
    """One call as a meter records it.

    Attributes:
        provider: The provider's name (`Provider.name`).
        model: The model asked for.
        status: How the call ended.
        usage: Tokens billed over every attempt; `usage.partial` if the call was cut short.
        cost: Dollars for `usage`, or `None` when the model has no price.
        attempts: Every attempt, in order (empty if cancelled before the first was sent).
        started: `trio.current_time()` when `complete` was called.
        finished: `trio.current_time()` when it returned or raised.
        error: `"ErrorClass: message"` for a failed call, else `None`.
        hedge: The request's part in a hedged call (`None`: no hedge was sent for it); the
            one not `completed` is the hedge's waste.
        saved: For a hedge that won, the seconds it saved (an estimate: the mean of the
            primary's past latencies above the moment the hedge won, minus that moment).
        failover: The position of its target in a `Failover` (0: first choice or none).
    """

    provider: str
    model: str
    status: CallStatus
    usage: Usage
    cost: float | None
    attempts: tuple[Attempt, ...]
    started: float
    finished: float
    error: str | None = None
    hedge: HedgeRole | None = None
    saved: float = 0.0
    failover: int = 0


@attrs.frozen(kw_only=True)
class UsageStatistics:
    """Totals of a `UsageMeter` at one moment.

    Attributes:
        calls: Calls recorded.
        completed: Calls that completed.
        failed: Calls that raised an `LLMError`.
        cancelled: Calls that were cancelled.
        input_tokens: Input tokens over every call.
        output_tokens: Output tokens over every call.
        cost: Dollars over every priced call.
        cancelled_cost: The part of `cost` spent on cancelled calls: the money speculation
            wasted.
        unpriced_calls: Calls whose model has no price, left out of `cost`.
    """

    calls: int
    completed: int
    failed: int
    cancelled: int
    input_tokens: int
    output_tokens: int
    cost: float
    cancelled_cost: float
    unpriced_calls: int


@attrs.define(eq=False)
class UsageMeter:
    """A ledger of LLM calls: running totals plus the most recent records.

    Create one per thing to account (a client, a run, a speculative branch) and make it
    active with `record_usage`, or pass it to `complete(..., meter=...)`.

    Args:
        max_records: How many recent records `records()` keeps (`None`: all). Totals always
            count every call.
    """

    max_records: int | None = attrs.field(
        default=DEFAULT_MAX_RECORDS,
        kw_only=True,
        validator=optional_at_least_one,
    )
    # Made on the first call, and counts kept as ints: every run makes a meter, most runs
    # of a flow without LLM steps record nothing, and each container a run holds is more
    # work for the cyclic collector while many runs are in flight.
    _records: deque[CallRecord] | list[CallRecord] | None = attrs.field(init=False, default=None)
    _completed: int = attrs.field(init=False, default=0)
    _failed: int = attrs.field(init=False, default=0)
    _cancelled: int = attrs.field(init=False, default=0)
    _input_tokens: int = attrs.field(init=False, default=0)
    _output_tokens: int = attrs.field(init=False, default=0)
    _cost: float = attrs.field(init=False, default=0.0)
    _cancelled_cost: float = attrs.field(init=False, default=0.0)
    _unpriced: int = attrs.field(init=False, default=0)

    def record(self, record: CallRecord) -> None:
        """Add one call. The client calls this; call it yourself only for calls made elsewhere.

        Args:
            record: The call.
        """
        records = self._records
        if records is None:
            # A list when every record is kept: an empty deque is ten times its size.
            records = [] if self.max_records is None else deque(maxlen=self.max_records)
            self._records = records
        records.append(record)
        status = record.status
        if status is CallStatus.COMPLETED:
            self._completed += 1
        elif status is CallStatus.FAILED:
            self._failed += 1
        else:  # CallStatus.CANCELLED, the only other
            self._cancelled += 1
        self._input_tokens += record.usage.input_tokens
        self._output_tokens += record.usage.output_tokens
        if record.cost is None:
            self._unpriced += 1
            return
        self._cost += record.cost
        if record.status is CallStatus.CANCELLED:
            self._cancelled_cost += record.cost

    def records(self) -> tuple[CallRecord, ...]:
        """Return the kept records, oldest first."""
        return tuple(self._records or ())

    def statistics(self) -> UsageStatistics:
        """Return the totals so far."""
        return UsageStatistics(
            calls=self._completed + self._failed + self._cancelled,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
            cost=self._cost,
            cancelled_cost=self._cancelled_cost,
            unpriced_calls=self._unpriced,
        )


class record_usage:  # lower case: used like the function it was, `with record_usage(m):`
    """Record every LLM call made inside the block, and in tasks started from it, into `meter`.

    Blocks nest: a call records into every active meter. Use it where the code that makes the
    calls is not yours, as a scheduler does around a speculative branch::

        branch_meter = UsageMeter()
        with record_usage(branch_meter):
            await run_branch()  # cancelled if the router picks another branch
        wasted = branch_meter.statistics().cancelled_cost

    A meter that is also a `ToolObserver` (the engine's run meter is) is told of every tool
    execution in the block too, as with `observe_tools`.

    Args:
        meter: The meter to record into.

    `with` gives `meter`.
    """

    # A class, not a generator: every run enters one, and a generator-based context
    # manager costs three objects and a frame more.
    __slots__ = ("_meter", "_token")

    def __init__(self, meter: UsageMeter) -> None:
        self._meter = meter
        self._token: contextvars.Token[tuple[UsageMeter, ...]] | None = None

    def __enter__(self) -> UsageMeter:
        self._token = _ACTIVE.set((*_ACTIVE.get(), self._meter))
        return self._meter

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _ACTIVE.reset(self._token)


def active_meters() -> tuple[UsageMeter, ...]:
    """Return the meters `record_usage` made active in the current context."""
    return _ACTIVE.get()
