"""The scheduler: one run of a flow, its step path, and `execute`.

A run is a tree of scopes (`_scope.py`); routers run as in `_routing.py`. Failures never
travel through nurseries: a step's exception is wrapped in `StepFailedError` and handed to
`Scope.fail`, which cancels the smallest scope that must stop (a branch that has not won
yet, else the run). Nurseries therefore only ever see `trio.Cancelled`, which the cancelled
scope absorbs, and `execute` raises exactly one error.

With a concurrency cap, ready steps queue in the order they became ready and one admitter
task takes limiter slots for them, so capped runs are repeatable and no task waits per step.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio
from specroute.cache import Cache, CacheHit, CacheMiss, ComputationFailedError
from specroute.routes import (
    MissingInputError,
    RunError,
    RunTimeoutError,
    SpecrouteError,
    SpeculationPolicy,
    StepFailedError,
    StepTimeoutError,
    UnknownInputError,
)

from ._mode import Mode
from ._results import build_trace
from ._routing import run_router
from ._scope import Record, Scope
from ._trace import RouterDecision, RouteTaken, RunResult, StepStatus
from ._usage import RunMeter, StepUsage
from .llm import record_usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._flow import Flow
    from ._observer import RunObserver
    from ._step import Step

__all__ = ["execute"]

OK, FAILED, CANCELLED, CACHED, RECOVERED = (
    StepStatus.OK,
    StepStatus.FAILED,
    StepStatus.CANCELLED,
    StepStatus.CACHED,
    StepStatus.RECOVERED,
)


class Run:
    """State shared by every scope of one run."""

    def __init__(
        self,
        policy: SpeculationPolicy | None,
        limiter: trio.CapacityLimiter | None,
        cache: Cache | None,
        namespace: str,
        observer: RunObserver | None = None,
    ) -> None:
        self.observer = observer
        self.policy = policy
        self.limiter = limiter
        # With a limiter, ready steps queue here in the order they became ready, and one
        # admitter task takes slots for them: a fixed order, and no task per waiting step.
        self.queue: deque[tuple[Scope, int]] = deque()
        self.queued = trio.Event()
        self.admitting = trio.CancelScope()
        self.cache = cache
        self.namespace = namespace
        self.cache_hits = self.cache_misses = 0
        self.cache_saved = 0.0
        self.records: list[Record] = []
        self.meter = RunMeter(max_records=None)
        self.routes: list[tuple[Scope, str, str, float]] = []
        self.decisions: list[tuple[Scope, dict[str, Any]]] = []
        self.scopes: list[Scope] = []
        self.failures: list[SpecrouteError] = []
        self.top: Scope

    def fail(self, error: SpecrouteError) -> None:
        self.failures.append(error)
        if len(self.failures) == 1:
            self.top.cancel_scope.cancel()

    async def lookup(self, step: Step, kwargs: dict[str, Any]) -> CacheHit | CacheMiss | None:
        """Look `step` up in the run's cache; None when it is not cached in this run."""
        options = step.options.cache
        if self.cache is None or options is None:
            return None
        names = step.options.cache_inputs
        keyed = kwargs if names is None else {n: kwargs[n] for n in names if n in kwargs}
        return await self.cache.lookup(step.name, options, self.namespace, keyed)

    def enqueue(self, scope: Scope, index: int) -> None:
        self.queue.append((scope, index))
        self.queued.set()

    async def admit(self) -> None:
        """Start queued steps as slots free up, first come first served."""
        assert self.limiter is not None
        with self.admitting:
            while True:
                if not self.queue:
                    self.queued = trio.Event()
                    await self.queued.wait()
                    continue
                token = object()
                await self.limiter.acquire_on_behalf_of(token)
                scope, index = self.queue.popleft()
                if scope.doomed:
                    self.limiter.release_on_behalf_of(token)
                    continue
                scope.launched[index] = True
                scope.nursery.start_soon(self.run_step, scope, index, token)  # type: ignore[union-attr]

    async def call(
        self,
        scope: Scope,
        step: Step,
        found: CacheHit | CacheMiss | None = None,
        admitted: bool = False,
    ) -> tuple[bool, Any]:
        """Run one step function (or serve it from the cache); record it; hand a failure
        to its scope. `admitted` steps already hold a slot of the run's limiter."""
        kwargs = scope.gather(step.params)
        speculative = not scope.confirmed
        status = CANCELLED
        error: BaseException | None = None
        similarity = None
        by_task = self.meter.by_task
        task = trio.lowlevel.current_task()
        by_task[task] = None
        start = trio.current_time()
        if self.observer is not None:
            self.observer.step_started(step.name, scope.path, speculative)
        try:
            if found is None and step.options.cache is not None:
                found = await self.lookup(step, kwargs)
            if isinstance(found, CacheHit):
                value, seconds = found.value
                status, similarity = CACHED, found.similarity
                self.cache_hits += 1
                self.cache_saved += seconds
                return True, value
            if found is None:
                if self.limiter is None or admitted:
                    value = await _invoke(step, kwargs)
                else:
                    async with self.limiter:
                        start = trio.current_time()  # time queued for a slot is not step time
                        value = await _invoke(step, kwargs)
            else:
                self.cache_misses += 1
                try:
                    value, seconds = await self.cache.compute_once(  # type: ignore[union-attr]
                        found.key, lambda: self.timed(step, kwargs, admitted)
                    )
                except ComputationFailedError as failed:
                    raise (failed.__cause__ or failed) from None
                scope.store(found, (value, seconds))
            status = OK
            return True, value
        except Exception as exc:  # noqa: BLE001 -- the step boundary: wrapped and re-raised by `execute`
            status = FAILED
            error = exc
            if step.options.fallback is not None:
                # The step's safe default stands in; the failure stays in the trace.
                try:
                    if step.fallback_takes_inputs:
                        value = step.options.fallback(exc, MappingProxyType(kwargs))
                    else:
                        value = step.options.fallback(exc)
                except Exception as fallback_error:  # noqa: BLE001 -- becomes the step's failure
                    error = fallback_error
                else:
                    status = RECOVERED
                    return True, value
        finally:
            end = trio.current_time()
            calls = by_task.pop(task, None)
            record = (scope, step, start, end, status, speculative, error, similarity, calls)
            self.records.append(record)
            if self.observer is not None:
                self.observer.step_finished(step.name, scope.path, status, end - start)
        failure = StepFailedError(
            f"step {step.name!r} failed{scope.where}: {type(error).__name__}: {error}",
            step=step.name,
            branch=scope.path,
        )
        failure.__cause__ = error
        scope.fail(failure)
        return False, None

    async def timed(self, step: Step, kwargs: dict[str, Any], admitted: bool) -> tuple[Any, float]:
        """The step's value and how long it took: a later hit saves that much."""
        if self.limiter is None or admitted:
            start = trio.current_time()
            value = await _invoke(step, kwargs)
        else:
            async with self.limiter:
                start = trio.current_time()
                value = await _invoke(step, kwargs)
        return value, trio.current_time() - start

    async def run_step(self, scope: Scope, index: int, token: object | None = None) -> None:
        step: Step = scope.flow.nodes[index]  # type: ignore[assignment]
        try:
            ok, value = await self.call(scope, step, admitted=token is not None)
            if ok:
                scope.write(step.output, value)
                scope.node_done()
        finally:
            if token is not None:
                self.limiter.release_on_behalf_of(token)  # type: ignore[union-attr]

    async def run_router(self, scope: Scope, index: int) -> None:
        await run_router(self, scope, index)


async def _invoke(step: Step, kwargs: dict[str, Any]) -> Any:
    timeout = step.options.timeout
    if timeout is None:
        return await step.fn(**kwargs)
    with trio.move_on_after(timeout):
        return await step.fn(**kwargs)
    raise StepTimeoutError(f"step {step.name!r} ran longer than its timeout of {timeout}s")


def _check_inputs(flow: Flow, inputs: Mapping[str, Any]) -> None:
    missing = sorted(flow.inputs - inputs.keys())
    if missing:
        details = "; ".join(
            f"{name!r} (read by {', '.join(map(repr, flow.readers[name]))})" for name in missing
        )
        raise MissingInputError(f"flow {flow.name!r} needs input(s) not given: {details}")
    for name in inputs:
        if name in flow.deep_produced:
            raise UnknownInputError(
                f"input {name!r} is produced by a step of flow {flow.name!r}; an input cannot "
                f"replace a step's value (rename the input or the step's output)"
            )
        if name not in flow.externals:
            known = ", ".join(map(repr, sorted(flow.externals))) or "none"
            raise UnknownInputError(
                f"flow {flow.name!r} reads no value named {name!r} (it reads: {known})"
            )


def _limiter(max_concurrency: int | trio.CapacityLimiter | None) -> trio.CapacityLimiter | None:
    if max_concurrency is None or isinstance(max_concurrency, trio.CapacityLimiter):
        return max_concurrency
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(
            f"`max_concurrency` must be None, an int >= 1 or a trio.CapacityLimiter, "
            f"got {max_concurrency!r}"
        )
    return trio.CapacityLimiter(max_concurrency)


async def execute(
    flow: Flow,
    inputs: dict[str, Any],
    *,
    mode: Mode | str,
    policy: SpeculationPolicy,
    max_concurrency: int | trio.CapacityLimiter | None,
    timeout: float | None,
    cache: Cache | None = None,
    namespace: str = "default",
    observer: RunObserver | None = None,
) -> RunResult:
    """Run `flow` (see `Flow.run`, which documents the arguments and errors)."""
    mode = Mode.parse(mode)
    _check_inputs(flow, inputs)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"`timeout` must be None or > 0, got {timeout!r}")
    if mode is Mode.SPECULATIVE:
        policy.check(flow.routers)
    limiter = trio.CapacityLimiter(1) if mode is Mode.SEQUENTIAL else _limiter(max_concurrency)
    run = Run(policy if mode is Mode.SPECULATIVE else None, limiter, cache, namespace, observer)
    top = run.top = Scope(run, flow, None, None, "", None, frozenset(inputs))
    top.values.update(inputs)
    started = trio.current_time()
    if timeout is not None:
        top.cancel_scope.deadline = started + timeout
    try:
        with record_usage(run.meter):
            await top.run()
    except BaseExceptionGroup as group:
        # Ctrl-C reaches the caller as itself, not wrapped by our nurseries.
        interrupt = group.subgroup(KeyboardInterrupt)
        if interrupt is None:
            raise
        first: BaseException = interrupt
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    finished = trio.current_time()
    trace = build_trace(run)
    if run.failures:
        error = run.failures[0]
        if isinstance(error, RunError):
            error.concurrent_failures = tuple(
                f for f in run.failures[1:] if isinstance(f, RunError)
            )
            error.trace = trace
        raise error
    if top.cancel_scope.cancelled_caught:
        timed_out = RunTimeoutError(f"flow {flow.name!r} ran longer than its timeout of {timeout}s")
        timed_out.trace = trace
        raise timed_out
    routes = tuple(
        RouteTaken(router=name, branch=scope.path, label=label, at=at)
        for scope, name, label, at in run.routes
        if scope.committed
    )
    values = MappingProxyType(dict(top.values))
    outputs = MappingProxyType({name: top.values[name] for name in flow.outputs})
    return RunResult(
        flow=flow.name,
        mode=mode,
        outputs=outputs,
        values=values,
        routes=routes,
        trace=trace,
        started=started,
        finished=finished,
        cache_hits=run.cache_hits,
        cache_misses=run.cache_misses,
        cache_saved_time=run.cache_saved,
        usage=StepUsage.of(run.meter.records()),
        decisions=tuple(
            RouterDecision(**record, wasted=not scope.committed) for scope, record in run.decisions
        ),
    )
