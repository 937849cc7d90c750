"""Who spent what: every LLM call of a run, attributed to the step execution that made it.

One meter is active for the whole run (`record_usage`), so steps need not know about it.
It also observes the run's tool executions (a meter that is a `ToolObserver` does inside
`record_usage`, with no `observe_tools` of its own): a tool loop reports each one
from its step's task, so it lands in that step's records beside the model calls.
When a call is recorded, the meter asks trio which task is running: each step execution
runs in a task of its own, registered for the length of the step, so a call is attributed
to its step for the cost of one dict lookup. A call made from a task the step started
itself, or from a cache's shared computation, is still in the run's totals, just not in a
step's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from .llm import CallRecord, CallStatus, HedgeRole, ToolRecord, UsageMeter

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["StepUsage"]


@attrs.frozen(kw_only=True)
class StepUsage:
    """The LLM calls of one step execution (or of a whole run), added up.

    Attributes:
        calls: Calls made.
        cancelled_calls: Calls cancelled mid-way (billed for what arrived).
        input_tokens: Input tokens over every call.
        output_tokens: Output tokens over every call.
        cost: Dollars over every priced call.
        unpriced_calls: Calls whose model has no price (not in `cost`).
        hedges_started: Hedges sent (extra requests for calls slower than usual).
        hedges_won: Hedges that answered before the request they hedged.
        hedge_saved: Seconds the winning hedges saved (an estimate; see `CallRecord.saved`).
        hedge_cost: Dollars spent on the request that lost each hedged race: what hedging
            cost (part of `cost`).
        failed_over: Answers that came from a target after the first of a `Failover`.
    """

    calls: int = 0
    cancelled_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced_calls: int = 0
    hedges_started: int = 0
    hedges_won: int = 0
    hedge_saved: float = 0.0
    hedge_cost: float = 0.0
    failed_over: int = 0

    @classmethod
    def of(cls, records: Iterable[CallRecord | ToolRecord]) -> StepUsage:
        """Add up the calls among `records` (tool executions are not calls)."""
        if not records and cls is StepUsage:
            return _NONE  # most runs make no call: one frozen zero, not one per run
        calls = cancelled = tokens_in = tokens_out = unpriced = 0
        started = won = failed_over = 0
        cost = saved = hedge_cost = 0.0
        for record in records:
            if not isinstance(record, CallRecord):
                continue
            calls += 1
            cancelled += record.status is CallStatus.CANCELLED
            tokens_in += record.usage.input_tokens
            tokens_out += record.usage.output_tokens
            if record.cost is None:
                unpriced += 1
            else:
                cost += record.cost
            if record.hedge is not None:
                completed = record.status is CallStatus.COMPLETED
                if record.hedge is HedgeRole.BACKUP:
                    started += 1
                    won += completed
                    saved += record.saved
                if record.status is CallStatus.CANCELLED and record.cost is not None:
                    hedge_cost += record.cost
            if record.failover and record.status is CallStatus.COMPLETED:
                failed_over += 1
        return cls(
            calls=calls,
            cancelled_calls=cancelled,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost=cost,
            unpriced_calls=unpriced,
            hedges_started=started,
            hedges_won=won,
            hedge_saved=saved,
            hedge_cost=hedge_cost,
            failed_over=failed_over,
        )


_NONE = StepUsage()


# No validation on assignment: a run makes one per run, and `max_records` is always None
# here, so its `__init__` assigns its fields directly rather than through `object.__setattr__`.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class RunMeter(UsageMeter):
    """The run's meter: totals as any meter, plus the calls (and tool executions) of each
    running step task. It is the run's `ToolObserver` too: effect tools may run only in the
    tasks of effect steps (`effect_tasks`), which never run in a branch that may lose."""

    by_task: dict[trio.lowlevel.Task, list[CallRecord | ToolRecord] | None] = attrs.field(
        init=False, factory=dict
    )
    # Replaced, not changed in place: most runs have no effect step, and need no set.
    effect_tasks: frozenset[trio.lowlevel.Task] = attrs.field(init=False, default=frozenset())

    def record(self, record: CallRecord) -> None:
        """Add the call to the totals and to the step whose task made it."""
        super().record(record)
        self._attribute(record)

    def tool_finished(self, record: ToolRecord) -> None:
        """Add a tool execution to the step whose task ran the loop."""
        self._attribute(record)

    def effects_allowed(self) -> bool:
        """Whether the calling task is an effect step's."""
        return trio.lowlevel.current_task() in self.effect_tasks

    def _attribute(self, record: CallRecord | ToolRecord) -> None:
        task = trio.lowlevel.current_task()
        if task in self.by_task:
            calls = self.by_task[task]
            if calls is None:
                self.by_task[task] = [record]
            else:
                calls.append(record)
