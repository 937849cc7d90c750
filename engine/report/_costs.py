"""What steps cost in practice, measured from a run log, for predictive speculation."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from specroute.engine import StepEstimate, StepStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._schema import RunRecord

__all__ = ["measured_costs"]


def measured_costs(records: Iterable[RunRecord]) -> dict[str, StepEstimate]:
    """Mean seconds and dollars of each step that ran to the end, by step name.

    Only executions that returned (`ok`) count: a cancelled or cached one says nothing
    about what the step costs. Give the result to `PredictivePolicy(costs=...)` so it
    weighs speculation with what steps really took rather than with their estimates.

    Args:
        records: Logged runs (e.g. `read_log(path).records`).

    Returns:
        Step name -> (mean seconds, mean dollars); steps that never completed are absent.
    """
    seconds: dict[str, list[float]] = defaultdict(list)
    dollars: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for entry in record.result.trace:
            if entry.status is StepStatus.OK:
                seconds[entry.step].append(entry.duration)
                dollars[entry.step].append(entry.cost)
    return {
        name: StepEstimate(sum(taken) / len(taken), sum(dollars[name]) / len(taken))
        for name, taken in seconds.items()
    }
