"""What hedging and failover did, per step: hedges sent and won, time saved, dollars spent.

Counted per step name over the logged runs' step executions, from each execution's
`StepUsage` (see `engine/llm/_race.py` for what a hedge is). A hedge *won* when it answered
before the request it hedged; the time it *saved* is the client's estimate (the mean of the
primary's past latencies above the moment the hedge won, minus that moment); what hedging
*cost* is the dollars billed to the request that lost each race (cancelled, billed for what
arrived). A call *failed over* when a target after the first of a `Failover` answered it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._schema import ms

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._usage import StepUsage
    from ._schema import RunRecord

__all__ = ["HedgingTally", "StepHedging", "hedging_by_step"]


@attrs.frozen(kw_only=True)
class StepHedging:
    """One step's hedges and failovers over the logged runs.

    Attributes:
        step: The step's name.
        calls: LLM requests the step made (hedges included).
        hedges_started: Hedges sent.
        hedges_won: Hedges that answered first.
        saved_ms: Latency the winning hedges saved, added up (an estimate).
        cost: Dollars billed to the requests that lost a hedged race.
        failed_over: Answers from a failover target after the first.
    """

    step: str
    calls: int
    hedges_started: int
    hedges_won: int
    saved_ms: float
    cost: float
    failed_over: int

    @property
    def win_rate(self) -> float | None:
        """Hedges won over hedges sent (`None` if none was sent)."""
        return self.hedges_won / self.hedges_started if self.hedges_started else None


@attrs.define(eq=False)
class HedgingTally:
    """Every step's hedges and failovers, fed one run at a time."""

    _steps: dict[str, list[StepUsage]] = attrs.field(init=False, factory=dict)

    def add(self, record: RunRecord) -> None:
        """Count `record`'s hedged and failed-over steps (their usage only is kept)."""
        for entry in record.result.trace:
            usage = entry.usage
            if usage is not None and (usage.hedges_started or usage.failed_over):
                self._steps.setdefault(entry.step, []).append(usage)

    def summaries(self) -> tuple[StepHedging, ...]:
        """One entry per step that sent a hedge or failed over, sorted by name."""
        return tuple(
            StepHedging(
                step=step,
                calls=sum(u.calls for u in usages),
                hedges_started=sum(u.hedges_started for u in usages),
                hedges_won=sum(u.hedges_won for u in usages),
                saved_ms=ms(sum(u.hedge_saved for u in usages)),
                cost=sum(u.hedge_cost for u in usages),
                failed_over=sum(u.failed_over for u in usages),
            )
            for step, usages in sorted(self._steps.items())
        )


def hedging_by_step(records: Iterable[RunRecord]) -> tuple[StepHedging, ...]:
    """Each step's hedges and failovers over `records`.

    Args:
        records: The runs, any iterable (read once); lines logged before hedging existed
            add nothing.

    Returns:
        One entry per step that sent a hedge or failed over, sorted by name; empty if none.
    """
    tally = HedgingTally()
    for record in records:
        tally.add(record)
    return tally.summaries()
