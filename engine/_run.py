"""The scheduler: how ready nodes start, the admission queue, and `execute`.

`execute` checks a run's arguments, builds the top scope, runs it, and turns what happened
into one `RunResult` or one error. Failures never travel through nurseries (see
`_call.py`), so `execute` raises exactly one error; what does travel through them (the
caller's cancellation, Ctrl-C, `sys.exit`) reaches the caller as itself, not as a group.

With a concurrency cap, ready steps queue in the order they became ready and one admitter
task takes limiter slots for them, so capped runs are repeatable and no task waits per step.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio
from specroute.cache import CacheStatistics
from specroute.cache._validators import check_namespace
from specroute.routes import (
    ConfigurationError,
    ConfigurationTypeError,
    LearnedState,
    MissingInputError,
    RunError,
    RunTimeoutError,
    SpecrouteError,
    SpeculationPolicy,
    UnknownInputError,
)

from ._call import run_plain_step, run_step
from ._graph import _has_methods, check_policy
from ._mode import Mode
from ._observer import GuardedObserver, check_observer
from ._results import TraceSource, build_decisions, build_predicted_values, build_routes
from ._routing import run_router
from ._sequential import run_in_order
from ._state import RunState, Scope, flush
from ._trace import RunResult
from ._usage import RunMeter, StepUsage
from .llm import record_usage

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping, Sequence

    from specroute.cache import StepCache

    from ._graph import Graph
    from ._observer import RunObserver
    from ._step import Step

__all__ = ["execute"]


class Run(RunState):
    """One run: starts each ready node as a task in its scope's nursery."""

    __slots__ = ("longest_first", "queue", "queued")

    def __init__(
        self,
        policy: SpeculationPolicy | None,
        limiter: trio.CapacityLimiter | None,
        cache: StepCache | None,
        namespace: str,
        observer: RunObserver | None,
        learned: LearnedState,
    ) -> None:
        super().__init__(
            policy, limiter, cache, namespace, observer, learned, RunMeter(max_records=None)
        )
        # With a limiter, ready steps queue here in the order they became ready, and one
        # admitter task takes slots for them: a fixed order, and no task per waiting step.
        self.queue: deque[tuple[Scope, int]] | None = None
        self.queued: trio.Event | None = None
        self.longest_first = False
        if limiter is not None:
            self.queue = deque()
            self.queued = trio.Event()

    def start_step(self, scope: Scope, index: int) -> None:
        if self.queue is not None:
            self.queue.append((scope, index))
            self.queued.set()  # type: ignore[union-attr]
            return
        scope.launched |= 1 << index
        if self.observer is None and scope.tables.plain[index]:
            if self.tail_scope is scope and self.tail_index < 0:
                self.tail_index = index  # the writing task runs it next
                return
            scope.nursery.start_soon(  # type: ignore[union-attr]
                run_plain_step, self, scope, index, name=scope.tables.task_names[index]
            )
        else:
            scope.nursery.start_soon(  # type: ignore[union-attr]
                run_step, self, scope, index, name=scope.tables.task_names[index]
            )

    def start_router(self, scope: Scope, index: int) -> None:
        # A router holds no slot itself (its branches need them); its step takes one.
        scope.launched |= 1 << index
        if self.tail_scope is scope and self.tail_index < 0:
            self.tail_index = index  # the task that made it ready runs it next
            return
        scope.nursery.start_soon(  # type: ignore[union-attr]
            run_router, self, scope, index, name=scope.tables.task_names[index]
        )

    def start_ready(self, scope: Scope, ready: Sequence[int]) -> None:
        # `start_step` and `start_router` for each node, in one loop and one frame: a wide
        # flow starts hundreds of steps here, and a run's top scope knows the bits of
        # `launched` beforehand (setting them one by one costs as many as the flow is wide).
        if self.queue is not None or self.observer is not None:
            super().start_ready(scope, ready)
            return
        tables = scope.tables
        plain = tables.plain
        routers_at = tables.routers_at
        names = tables.task_names
        start_soon = scope.nursery.start_soon  # type: ignore[union-attr]
        top = scope.parent is None
        launched = tables.ready_at_start if top else 0
        tail = self.tail_scope is scope and self.tail_index < 0
        for index in ready:
            if not top:
                launched |= 1 << index
            if tail and (plain[index] or routers_at[index]):
                self.tail_index = index  # the calling task runs it next
                tail = False
            elif plain[index]:
                start_soon(run_plain_step, self, scope, index, name=names[index])
            else:
                node = run_router if routers_at[index] else run_step
                start_soon(node, self, scope, index, name=names[index])
        scope.launched |= launched

    def run_here(self, scope: Scope, index: int) -> Coroutine[Any, Any, None]:
        # The node's own coroutine, awaited by the caller: no frame of ours in between.
        if scope.tables.routers_at[index]:
            return run_router(self, scope, index)
        return run_plain_step(self, scope, index)

    async def admit(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start queued steps as slots free up: first come first served, or (`admit=
        "longest"`) the queued step with the longest `estimated_seconds` first."""
        limiter = self.limiter
        queue = self.queue
        assert limiter is not None
        assert queue is not None
        task_status.started()
        while True:
            if not queue:
                self.queued = queued = trio.Event()
                await queued.wait()
                continue
            token = object()
            await limiter.acquire_on_behalf_of(token)
            if self.longest_first and len(queue) > 1:
                scope, index = _longest(queue)
            else:
                scope, index = queue.popleft()
            if scope.doomed:
                limiter.release_on_behalf_of(token)
                continue
            scope.launched |= 1 << index
            scope.nursery.start_soon(  # type: ignore[union-attr]
                run_step, self, scope, index, token, name=scope.tables.task_names[index]
            )

    async def run_capped(self, top: Scope) -> None:
        """Run the top scope beside the admitter that hands out the cap's slots."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.admit)
            await top.run_nodes()
            nursery.cancel_scope.cancel()


def _check_inputs(flow: Graph, inputs: Mapping[str, Any]) -> None:
    if flow.inputs <= inputs.keys() and inputs.keys() <= flow._accepted:
        return  # every input given, and each one a name the flow reads and no step writes
    missing = sorted(flow.inputs - inputs.keys())
    if missing:
        details = "; ".join(
            f"{name!r} (read by {', '.join(map(repr, flow._readers[name]))})" for name in missing
        )
        raise MissingInputError(f"flow {flow.name!r} needs input(s) not given: {details}")
    for name in inputs:
        if name in flow._deep_produced:
            raise UnknownInputError(
                f"input {name!r} is produced by a step of flow {flow.name!r}; an input cannot "
                f"replace a step's value (rename the input or the step's output)"
            )
        if name not in flow._externals:
            known = ", ".join(map(repr, sorted(flow._externals))) or "none"
            raise UnknownInputError(
                f"flow {flow.name!r} reads no value named {name!r} (it reads: {known})"
            )


def _limiter(max_concurrency: int | trio.CapacityLimiter | None) -> trio.CapacityLimiter | None:
    if max_concurrency is None or isinstance(max_concurrency, trio.CapacityLimiter):
        return max_concurrency
    message = (
        f"`max_concurrency` must be None, an int >= 1 or a trio.CapacityLimiter, "
        f"got {max_concurrency!r}"
    )
    if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool):
        raise ConfigurationTypeError(message)
    if max_concurrency < 1:
        raise ConfigurationError(message)
    return trio.CapacityLimiter(max_concurrency)


def _longest(queue: deque[tuple[Scope, int]]) -> tuple[Scope, int]:
    """Take the queued step with the longest estimate (the first of equals): with a cap,
    starting the longest first keeps a stage's makespan short (the longest processing time
    rule)."""
    best = 0
    best_seconds = -1.0
    for position, (scope, index) in enumerate(queue):
        step: Step = scope.flow.nodes[index]  # type: ignore[assignment]  # only steps queue
        seconds = step.options.estimated_seconds or 0.0
        if seconds > best_seconds:
            best, best_seconds = position, seconds
    chosen = queue[best]
    del queue[best]
    return chosen


def _admission(admit: object) -> bool:
    """Whether `admit` asks for the longest estimate first."""
    if admit not in ("ready", "longest"):
        raise ConfigurationError(
            f'`admit` must be "ready" (in the order steps become ready) or "longest" (the '
            f"longest `estimated_seconds` first), got {admit!r}"
        )
    return admit == "longest"


# What the engine calls on a cache (`StepCache`).
_CACHE = ("lookup", "compute_once", "store", "statistics")


def _check_arguments(
    timeout: float | None, cache: StepCache | None, observer: object, learned: LearnedState
) -> None:
    """Refuse, before anything runs and in every mode, arguments a run could not use."""
    if timeout is not None:
        message = f"`timeout` must be None or a number of seconds > 0, got {timeout!r}"
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            raise ConfigurationTypeError(message)
        if not timeout > 0:  # also refuses nan
            raise ConfigurationError(message)
    if cache is not None and not _has_methods(cache, *_CACHE):
        lacking = [name for name in _CACHE if not callable(getattr(cache, name, None))]
        raise ConfigurationTypeError(
            f"`cache` must be a cache (from `async with open_cache() as cache`, or any "
            f"StepCache), got {cache!r}, which has no method {', '.join(lacking)}"
        )
    if observer is not None:
        check_observer(observer)
    if not isinstance(learned, LearnedState):
        raise ConfigurationTypeError(f"`learned` must be a LearnedState, got {learned!r}")


def _alone(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception the caller sees for what left the run's nurseries, or None to
    let the group through (an internal error of specroute).

    Ctrl-C and `sys.exit` reach the caller as themselves. A group of nothing but
    `trio.Cancelled` is the caller's own cancellation (the run's own cancellations are
    absorbed by the scopes that made them), so the caller gets one bare `Cancelled`:
    `except trio.Cancelled` matches it and the cancelled scope absorbs it."""
    for kind in (KeyboardInterrupt, SystemExit):
        found = group.subgroup(kind)
        if found is not None:
            return _first(found)
    if group.split(trio.Cancelled)[1] is None:
        return _first(group)
    return None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


async def execute(
    flow: Graph,
    inputs: dict[str, Any],
    *,
    mode: Mode | str,
    policy: SpeculationPolicy,
    max_concurrency: int | trio.CapacityLimiter | None,
    timeout: float | None,
    cache: StepCache | None,
    namespace: str,
    observer: RunObserver | None,
    learned: LearnedState,
    admit: str = "ready",
) -> RunResult:
    """Run `flow` (see `Flow.run`, which documents the arguments and errors)."""
    check_namespace(namespace)
    mode = Mode.parse(mode)
    _check_inputs(flow, inputs)
    _check_arguments(timeout, cache, observer, learned)
    # The policy is checked in every mode: a run that would ignore it still names its bug.
    check_policy(policy, flow.routers)
    # Sequential runs take one step at a time by construction; a cap is still checked.
    limiter = _limiter(max_concurrency)
    if mode is Mode.SEQUENTIAL:
        limiter = None
    run = Run(
        policy if mode is Mode.SPECULATIVE else None, limiter, cache, namespace, None, learned
    )
    run.longest_first = _admission(admit)
    if observer is not None:
        run.observer = GuardedObserver(observer, run.fail)
    try:
        top = run.top = Scope(run, flow, None, None, "", None)
        top.values = inputs  # `Flow.run`'s own copy of what it was given
        started = trio.current_time()
        if timeout is not None:
            top.deadline = started + timeout
        # The run's meter is its tool observer too: one context variable set per run.
        with record_usage(run.meter):
            # One frame fewer on every resume of every step: the run's own task runs the
            # top scope directly when nothing else (an admitter) must run beside it.
            if mode is Mode.SEQUENTIAL:
                await run_in_order(run, top)
            elif limiter is None:
                await top.run_nodes()
            else:
                await run.run_capped(top)
            if run.confirmed_stores and not run.failures:
                await flush(run)
        return _result(run, flow, top, mode, started, timeout)
    except BaseExceptionGroup as group:
        alone = _alone(group)
        if alone is None:
            raise
    finally:
        run.close()
    # Raised outside the handler, so the group does not become its `__context__`.
    raise alone


def _result(
    run: Run, flow: Graph, top: Scope, mode: Mode, started: float, timeout: float | None
) -> RunResult:
    """The run's result, or the one error it raises."""
    finished = trio.current_time()
    trace = TraceSource(run)
    if run.failures:
        error: SpecrouteError = run.failures[0]
        if isinstance(error, RunError):
            error.concurrent_failures = tuple(
                f for f in run.failures[1:] if isinstance(f, RunError)
            )
            error.trace = trace()
        raise error
    values = top.values
    names = flow.outputs  # picked in C, not a comprehension: a wide flow has many
    cancel_scope = top.cancel_scope
    # A deadline noticed between two steps (`Scope.doomed` reads the clock) stops the rest
    # with no task left to catch a `Cancelled`: the run then lacks some of its outputs.
    unfinished = timeout is not None and not values.keys() >= set(names)
    if cancel_scope is not None and (cancel_scope.cancelled_caught or unfinished):
        timed_out = RunTimeoutError(f"flow {flow.name!r} ran longer than its timeout of {timeout}s")
        timed_out.trace = trace()
        raise timed_out
    exact_evictions = semantic_evictions = 0
    # A cache of the user's may return other figures: then there is nothing to report.
    cache_figures = run.cache.statistics() if run.cache is not None else None
    if isinstance(cache_figures, CacheStatistics):
        exact_evictions = cache_figures.exact_evictions
        semantic_evictions = cache_figures.semantic_evictions
    return RunResult.with_pending_trace(
        trace,
        flow=flow.name,
        mode=mode,
        outputs=MappingProxyType(dict(zip(names, map(values.__getitem__, names), strict=True))),
        values=MappingProxyType(values),  # no step writes to it any more: not copied
        routes=build_routes(run),
        started=started,
        finished=finished,
        cache_hits=run.cache_hits,
        cache_misses=run.cache_misses,
        cache_saved_time=run.cache_saved,
        usage=StepUsage.of(run.meter.records()),
        decisions=build_decisions(run),
        predicted_values=build_predicted_values(run),
        cache_exact_evictions=exact_evictions,
        cache_semantic_evictions=semantic_evictions,
    )
