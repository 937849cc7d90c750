"""What a run reports: one `TraceEntry` per step execution, gathered in a `RunResult`."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import attrs

from ._usage import StepUsage

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from specroute.routes import PlanReason, Prediction

    from ._mode import Mode
    from .llm import ToolRecord

__all__ = [
    "PredictedValue",
    "RouteTaken",
    "RouterDecision",
    "RunResult",
    "StepStatus",
    "TraceEntry",
]


class StepStatus(enum.StrEnum):
    """How a step execution ended.

    Attributes:
        OK: It returned a value.
        FAILED: It raised.
        CANCELLED: It was running when its branch lost or the run stopped.
        SKIPPED: It never started: its branch lost or the run stopped first.
        CACHED: Its value came from a cache; its function did not run.
        RECOVERED: It raised, and its `fallback` value stood in for it.
    """

    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    CACHED = "cached"
    RECOVERED = "recovered"


@attrs.frozen(kw_only=True)
class TraceEntry:
    """One step execution. Times are `trio.current_time()` readings, in seconds.

    Attributes:
        step: The step's name.
        branch: The branch path it ran in: `""` at the top, `"router:label"` inside a
            branch, nested paths joined with `/`.
        start: When the step's function started (or the step was skipped).
        end: When it returned, raised or was cancelled.
        status: How it ended.
        speculative: It started before its branch was confirmed.
        wasted: It ran, but its branch lost, so nothing it did reached the result.
        error: `repr` of the exception for failed steps.
        similarity: For a semantic cache hit, the cosine similarity of the match.
        usage: The LLM calls the step made (None if it made none).
        waited_on: Indices (into the run's trace) of the entries it waited on: those whose
            values it read, and the router that chose its branch.
        first_item: For a streamed step, when its first item reached its readers (None:
            not streamed, or no item).
        items: For a streamed step, how many items it produced (None: not streamed).
        stream_wait: For a step that read streams, the seconds it spent waiting for their
            items (None: it read none); its own work is `duration - stream_wait`.
        tools: The tools its tool loops ran (`run_tool_loop`), each with its own start and
            end, in the order they finished.
    """

    step: str
    branch: str
    start: float
    end: float
    status: StepStatus
    speculative: bool
    wasted: bool
    error: str | None = None
    similarity: float | None = None
    usage: StepUsage | None = None
    waited_on: tuple[int, ...] = ()
    first_item: float | None = None
    items: int | None = None
    stream_wait: float | None = None
    tools: tuple[ToolRecord, ...] = ()

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start

    @property
    def cost(self) -> float:
        """Dollars its LLM calls cost (0 without calls)."""
        return 0.0 if self.usage is None else self.usage.cost


@attrs.frozen(kw_only=True)
class RouteTaken:
    """A routing decision on the winning path.

    Attributes:
        router: The router step's name.
        branch: The branch path the router itself ran in.
        label: The label it returned.
        at: When it returned.
    """

    router: str
    branch: str
    label: str
    at: float


@attrs.frozen(kw_only=True)
class RouterDecision:
    """What one router execution predicted, speculated and said, and why.

    Attributes:
        router: The router step's name.
        branch: The branch path the router ran in.
        label: The label it returned (None: it was cancelled before it answered).
        at: When it returned.
        prediction: What was predicted before it returned (None: nothing was).
        note: Why there was no prediction, if something went wrong (a failing predictor).
        plan: Label -> step limit of each branch started speculatively (None: whole).
        reasons: Label -> the policy's numbers behind that choice (predictive policies).
        cache: `"exact"` or `"semantic"` when the route came from the cache, and
            `"semantic (verified)"` when a near match only predicted it.
        similarity: The near match's similarity, in verify mode.
        wasted: The router ran inside a branch that lost.
        handoff_confirmed: Whether the chosen branch, speculated on predicted handoff values
            (`Prediction.values`, or a near match's cached route), was kept because the real
            route agreed (None: it did not start on predicted values).
    """

    router: str
    branch: str
    label: str | None = None
    at: float | None = None
    prediction: Prediction | None = None
    note: str = ""
    plan: Mapping[str, int | None] = attrs.field(factory=dict)
    reasons: Mapping[str, PlanReason] = attrs.field(factory=dict)
    cache: str | None = None
    similarity: float | None = None
    wasted: bool = False
    handoff_confirmed: bool | None = None

    @property
    def predicted(self) -> str | None:
        """The likeliest predicted label, if there was a prediction."""
        return None if self.prediction is None else self.prediction.likeliest

    @property
    def right(self) -> bool | None:
        """Whether the likeliest predicted label is the one the router returned."""
        predicted = self.predicted
        if predicted is None or self.label is None:
            return None
        return predicted == self.label

    def branch_path(self, label: str) -> str:
        """The branch path of this router's branch `label` (where its steps run)."""
        prefix = f"{self.branch}/" if self.branch else ""
        return f"{prefix}{self.router}:{label}"


@attrs.frozen(kw_only=True)
class PredictedValue:
    """One semantic cache near match on a step, used as a predicted value.

    Attributes:
        step: The step's name.
        branch: The branch path the step ran in ("" at the top level).
        similarity: How near the match was.
        speculated: Whether the steps downstream started on the predicted value (the
            speculation policy's `speculate_value` said yes).
        confirmed: Whether the step's real value agreed with the prediction (`agree`);
            None when the step produced no value of its own (it failed, fell back or was
            cancelled), so nothing started on the prediction was kept.
        at: `trio.current_time()` when the real value settled it (None: never).
        note: Why the prediction was not used or not settled, when that needs saying.
    """

    step: str
    branch: str
    similarity: float
    speculated: bool
    confirmed: bool | None
    at: float | None = None
    note: str = ""


@attrs.frozen(kw_only=True)
class RunResult:
    """What `Flow.run` returns.

    Attributes:
        flow: The flow's name.
        mode: The mode it ran in.
        outputs: The flow's outputs.
        values: Every value visible at the top level: inputs and committed writes.
        routes: The routing decisions on the winning path, in the order they were made.
        trace: Every step execution, including cancelled, skipped and wasted ones.
        started: `trio.current_time()` when the run started.
        finished: `trio.current_time()` when it returned.
        cache_hits: Steps served from the cache.
        cache_misses: Cached steps that had to be computed.
        cache_saved_time: Seconds the cache hits took when they were computed.
        usage: Every LLM call of the run, added up (including calls no step owned).
        decisions: One `RouterDecision` per router that started, in the order they did.
        predicted_values: One `PredictedValue` per semantic near match on a step that was
            not a router, in the order they were found.
        cache_exact_evictions: The run's cache's exact entries dropped to make room, all
            runs counted, when this run ended (its `statistics()`; 0 without a cache).
        cache_semantic_evictions: The same for its semantic entries.
    """

    flow: str
    mode: Mode
    outputs: Mapping[str, Any]
    values: Mapping[str, Any]
    routes: tuple[RouteTaken, ...]
    trace: tuple[TraceEntry, ...]
    started: float
    finished: float
    cache_hits: int = 0
    cache_misses: int = 0
    cache_saved_time: float = 0.0
    usage: StepUsage = attrs.Factory(StepUsage)
    decisions: tuple[RouterDecision, ...] = ()
    predicted_values: tuple[PredictedValue, ...] = ()
    cache_exact_evictions: int = 0
    cache_semantic_evictions: int = 0
    # Builds `trace` when it is first read (see `with_pending_trace`); None once it is built.
    _build_trace: Callable[[], tuple[TraceEntry, ...]] | None = attrs.field(
        init=False, default=None, eq=False, repr=False
    )

    @classmethod
    def with_pending_trace(
        cls, build_trace: Callable[[], tuple[TraceEntry, ...]], **fields: Any
    ) -> RunResult:
        """A result whose `trace` is built by `build_trace()` the first time it is read.

        A run ends without building one entry per step execution, which would cost about
        as much as running a no-op step: most callers read the outputs and never the trace.
        Reading `trace` (directly, or through equality, `repr`, `attrs.evolve`, a report or
        the run log) builds it once and keeps it; the result reads the same either way.
        """
        result = cls(trace=(), **fields)
        object.__delattr__(result, "trace")  # unset: the first read goes to `__getattr__`
        object.__setattr__(result, "_build_trace", build_trace)
        return result

    def __getattr__(self, name: str) -> Any:
        # Reached only for an attribute that is not set: the pending trace, or a typo.
        build = self._build_trace if name == "trace" else None
        if build is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        trace = build()
        object.__setattr__(self, "trace", trace)
        object.__setattr__(self, "_build_trace", None)
        return trace

    @property
    def wasted_cost(self) -> float:
        """Dollars spent by steps whose branch lost (cancelled calls billed as they arrived)."""
        return float(sum(e.usage.cost for e in self.trace if e.wasted and e.usage is not None))

    @property
    def route(self) -> str | None:
        """The label chosen by the first top-level router, or None if there is none."""
        for taken in self.routes:
            if not taken.branch:
                return taken.label
        return None

    @property
    def wall_time(self) -> float:
        """Seconds from start to finish."""
        return self.finished - self.started

    @property
    def step_time(self) -> float:
        """Seconds spent in all step executions together."""
        return sum(entry.duration for entry in self.trace)

    @property
    def wasted_time(self) -> float:
        """Seconds spent in steps whose branch lost."""
        return sum(entry.duration for entry in self.trace if entry.wasted)

    @property
    def sequential_time(self) -> float:
        """Seconds the same useful work takes one step at a time (the counterfactual): a
        step that read streams counts its own work, not its wait for their items."""
        return sum(
            entry.duration - (entry.stream_wait or 0.0)
            for entry in self.trace
            if not entry.wasted and entry.status is not StepStatus.SKIPPED
        )

    @property
    def critical_path(self) -> tuple[TraceEntry, ...]:
        """The chain of useful steps that set the wall time, first to last.

        It starts from the useful entry that ended last and walks back, each time to the
        entry it waited on that ended last before it started (a speculative step did not
        wait for its router, so the walk stops there).
        """
        useful = [
            index
            for index, entry in enumerate(self.trace)
            if not entry.wasted
            and entry.status in (StepStatus.OK, StepStatus.CACHED, StepStatus.RECOVERED)
        ]
        if not useful:
            return ()
        current = max(useful, key=lambda i: (self.trace[i].end, self.trace[i].start, i))
        path = [current]
        seen = {current}
        while True:
            start = self.trace[current].start
            # `seen`: zero-length entries at one instant could otherwise wait on each other
            # (a trace read from a log is not bound to be acyclic) and loop for ever.
            before = [
                i
                for i in self.trace[current].waited_on
                if i not in seen and 0 <= i < len(self.trace) and self.trace[i].end <= start
            ]
            if not before:
                # A stream reader overlaps its producer: it waited on the stream's end.
                before = [
                    i
                    for i in self.trace[current].waited_on
                    if i not in seen
                    and 0 <= i < len(self.trace)
                    and self.trace[i].items is not None
                    and self.trace[i].end <= self.trace[current].end
                ]
            if not before:
                break
            current = max(before, key=lambda i: (self.trace[i].end, self.trace[i].start, i))
            path.append(current)
            seen.add(current)
        return tuple(self.trace[index] for index in reversed(path))
