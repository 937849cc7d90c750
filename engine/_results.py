"""From a run's raw records to its trace: waste, and what each step waited on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._trace import StepStatus, TraceEntry
from ._usage import StepUsage

if TYPE_CHECKING:
    from ._run import Run
    from ._scope import Scope

__all__ = ["build_trace"]

OK, CACHED, RECOVERED, SKIPPED = (
    StepStatus.OK,
    StepStatus.CACHED,
    StepStatus.RECOVERED,
    StepStatus.SKIPPED,
)


def build_trace(run: Run) -> tuple[TraceEntry, ...]:
    """Turn raw records into entries, marking waste and what each entry waited on."""
    producer: dict[tuple[int, str], int] = {}
    for index, (scope, step, _start, _end, status, *_rest) in enumerate(run.records):
        if status is OK or status is CACHED or status is RECOVERED:
            target: Scope | None = scope
            name = step.output
            while target is not None:
                producer[id(target), name] = index
                if not (target.chosen and target.parent and name in target.exports):
                    break
                target = target.parent
    # A chosen branch waited on its router: for the values handed over and for its start.
    for scope in run.scopes:
        if scope.router_record >= 0:
            for name in scope.provides - scope.flow.produced:
                producer[id(scope), name] = scope.router_record
    committed = {id(scope): scope.committed for scope in run.scopes}
    entries = []
    for scope, step, start, end, status, speculative, error, similarity, calls in run.records:
        key = id(scope)
        waited = [] if scope.router_record < 0 else [scope.router_record]
        for name in step.params:
            source: Scope | None = scope
            while source is not None and name not in source.provides:
                source = source.parent
            found = None if source is None else producer.get((id(source), name))
            if found is not None and found not in waited:
                waited.append(found)
        entries.append(
            TraceEntry(
                step=step.name,
                branch=scope.path,
                start=start,
                end=end,
                status=status,
                speculative=speculative,
                wasted=not committed[key] and status is not SKIPPED,
                error=None if error is None else repr(error),
                similarity=similarity,
                usage=None if calls is None else StepUsage.of(calls),
                waited_on=tuple(waited),
            )
        )
    return tuple(entries)
