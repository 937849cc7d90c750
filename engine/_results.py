"""From a run's execution records to its public result: the trace (with waste and what each
step waited on), the routes taken and the router decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._state import skipped_executions
from ._stream import stream_name
from ._trace import PredictedValue, RouterDecision, RouteTaken, StepStatus, TraceEntry
from ._usage import StepUsage
from .llm import ToolRecord

if TYPE_CHECKING:
    from ._state import Decision, Execution, RunState, Scope

__all__ = [
    "TraceSource",
    "build_decisions",
    "build_predicted_values",
    "build_routes",
    "build_trace",
]

OK, CACHED, RECOVERED, SKIPPED = (
    StepStatus.OK,
    StepStatus.CACHED,
    StepStatus.RECOVERED,
    StepStatus.SKIPPED,
)


class TraceSource:
    """What building a run's trace needs, kept when the run ends: the execution records and
    the scopes, whose run `RunState.close` lets go of (so the trace can be built later, from
    a result that holds no cycle). A scope keeps its parent, and whether it was chosen
    never changes once the run has ended, so nothing else is copied here."""

    __slots__ = ("executions", "scopes", "skipped")

    def __init__(self, run: RunState) -> None:
        self.executions = run.executions
        self.skipped = run.skipped
        self.scopes = run.scopes

    def __call__(self) -> tuple[TraceEntry, ...]:
        return build_trace(self)


def build_trace(source: TraceSource) -> tuple[TraceEntry, ...]:
    """Turn execution records into entries, marking waste and what each entry waited on.

    Run once per run, over every execution, so it looks things up rather than walks: each
    scope's producers sit in a dict of its own, and where a scope finds a value it reads
    is worked out once per (scope, name).
    """
    executions = _with_skipped(source.executions, source.skipped)
    parents = {scope: scope.parent for scope in source.scopes}
    # Each record's place in the trace, which entries name what they waited on by.
    places = {execution: index for index, execution in enumerate(executions)}
    # scope -> value name -> the index of the execution whose value the scope sees
    producers: dict[Scope, dict[str, int]] = {}
    for index, execution in enumerate(executions):
        status = execution.status
        name = execution.output
        if name is not None and (status is OK or status is CACHED or status is RECOVERED):
            target: Scope | None = execution.scope
            while target is not None:
                producers.setdefault(target, {})[name] = index
                parent = parents.get(target)
                if not (target.chosen and parent and name in target.exports):
                    break
                target = parent
        if execution.stream is not None and name is not None:
            # Its stream readers waited on it too (a stream never leaves its scope).
            producers.setdefault(execution.scope, {})[stream_name(name)] = index
    # A chosen branch waited on its router: for the values handed over and for its start.
    for scope in source.scopes:
        if scope.router_execution is not None:
            router_index = places[scope.router_execution]
            own = producers.setdefault(scope, {})
            for name in scope.provides - scope.flow._produced:
                own[name] = router_index
    committed = {scope: scope.committed for scope in source.scopes}
    sources: dict[tuple[Scope, str], dict[str, int] | None] = {}
    entries = []
    for execution in executions:
        scope = execution.scope
        router = scope.router_execution
        waited = [] if router is None else [places[router]]
        for name in execution.params:
            found_in = sources.get((scope, name), _UNKNOWN)
            if found_in is _UNKNOWN:
                source_scope: Scope | None = scope
                while source_scope is not None and name not in source_scope.provides:
                    source_scope = parents.get(source_scope)
                found_in = sources[scope, name] = (
                    None if source_scope is None else producers.get(source_scope)
                )
            found = None if found_in is None else found_in.get(name)
            if found is not None and found not in waited:
                waited.append(found)
        if execution.waits:
            known = set(waited)
            for other in execution.waits:
                place = places[other]
                if place not in known:
                    known.add(place)
                    waited.append(place)
        entries.append(_entry(execution, committed[scope], tuple(waited)))
    return tuple(entries)


_UNKNOWN: Any = object()


def _with_skipped(
    executions: list[Execution], skipped: list[tuple[int, Scope, float, bool]]
) -> list[Execution]:
    """The execution records with each closed scope's skipped nodes where they closed."""
    if not skipped:
        return executions
    merged: list[Execution] = []
    done = 0
    for position, scope, at, speculative in skipped:
        merged += executions[done:position]
        done = position
        merged += skipped_executions(scope, at, speculative=speculative)
    merged += executions[done:]
    return merged


def _entry(execution: Execution, committed: bool, waited: tuple[int, ...]) -> TraceEntry:
    status = execution.status
    wasted = execution.wasted
    if wasted is None:
        wasted = not committed and status is not SKIPPED
    calls = execution.calls
    tools: tuple[ToolRecord, ...] = ()
    if calls is not None and any(isinstance(r, ToolRecord) for r in calls):
        tools = tuple(r for r in calls if isinstance(r, ToolRecord))
        calls = [r for r in calls if not isinstance(r, ToolRecord)] or None
    error = execution.error
    stream = execution.stream
    return TraceEntry(
        step=execution.name,
        branch=execution.scope.path,
        start=execution.start,
        end=execution.end,
        status=status,
        speculative=execution.speculative,
        wasted=wasted,
        error=None if error is None else repr(error),
        similarity=execution.similarity,
        usage=None if calls is None else StepUsage.of(calls),
        waited_on=waited,
        first_item=None if stream is None else stream.first_at,
        stream_wait=execution.stream_wait,
        items=None if stream is None else len(stream.items),
        tools=tools,
    )


def _order(decision: Decision) -> int:
    return decision.order  # type: ignore[return-value]  # only answered decisions are sorted


def build_routes(run: RunState) -> tuple[RouteTaken, ...]:
    """The routes on the winning path, in the order the routers answered."""
    taken = [d for d in run.decisions if d.order is not None and d.scope.committed]
    if len(taken) > 1:
        taken.sort(key=_order)
    return tuple(
        RouteTaken(
            router=decision.router,
            branch=decision.scope.path,
            label=decision.label,  # type: ignore[arg-type]
            at=decision.at,  # type: ignore[arg-type]
        )
        for decision in taken
    )


def build_decisions(run: RunState) -> tuple[RouterDecision, ...]:
    """One public record per router execution, in the order the routers started."""
    return tuple(
        RouterDecision(
            router=decision.router,
            branch=decision.scope.path,
            label=decision.label,
            at=decision.at,
            prediction=decision.prediction,
            note=decision.note,
            plan=decision.plan,
            reasons=decision.reasons,
            cache=decision.cache,
            similarity=decision.similarity,
            wasted=not decision.scope.committed,
            handoff_confirmed=decision.handoff_confirmed,
        )
        for decision in run.decisions
    )


def build_predicted_values(run: RunState) -> tuple[PredictedValue, ...]:
    """One public record per semantic near match used as a predicted value."""
    if not run.guesses:
        return ()
    return tuple(
        PredictedValue(
            step=guess.step,
            branch=guess.scope.path,
            similarity=guess.similarity,
            speculated=guess.speculated,
            confirmed=guess.confirmed,
            at=guess.at,
            note=guess.note,
        )
        for guess in run.guesses
    )
