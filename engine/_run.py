"""The scheduler: dataflow in one nursery per scope, speculative branches in their own scopes.

A run is a tree of scopes. The top scope holds the run inputs and the top-level values; each
branch execution gets a child scope, its overlay: it reads its ancestors' values and writes
only its own. When a router picks a branch, the branch's outputs are written through to its
parent (and, from then on, every output it writes); a losing branch is cancelled and its
overlay dropped, so nothing it wrote is ever seen.

Failures never travel through nurseries: a step's exception is wrapped in `StepFailedError`
and handed to `_Scope.fail`, which cancels the smallest scope that must stop (a branch that
has not won yet, else the run). Nurseries therefore only ever see `trio.Cancelled`, which
the cancelled scope absorbs, and `execute` raises exactly one error.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio
from specroute.cache import Cache, CacheError, CacheHit, CacheMiss, ComputationFailedError
from specroute.routes import (
    HandoffError,
    MissingInputError,
    Prediction,
    Route,
    RouterView,
    RunError,
    RunTimeoutError,
    SpecrouteError,
    SpeculationPlan,
    SpeculationPolicy,
    StepFailedError,
    StepTimeoutError,
    UnknownBranchError,
    UnknownInputError,
    UnknownRouteError,
)

from ._flow import Flow, Router
from ._mode import Mode
from ._trace import RouterDecision, RouteTaken, RunResult, StepStatus, TraceEntry
from ._usage import RunMeter, StepUsage
from .llm import record_usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._observer import RunObserver
    from ._step import Step

__all__ = ["execute"]

_MISSING: Any = object()
OK, FAILED, CANCELLED, SKIPPED, CACHED, RECOVERED = (
    StepStatus.OK,
    StepStatus.FAILED,
    StepStatus.CANCELLED,
    StepStatus.SKIPPED,
    StepStatus.CACHED,
    StepStatus.RECOVERED,
)
# scope, step, start, end, status, speculative, error, similarity, LLM calls
Record = tuple["_Scope", "Step", float, float, StepStatus, bool, Any, "float | None", Any]


class _Run:
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
        self.queue: deque[tuple[_Scope, int]] = deque()
        self.queued = trio.Event()
        self.admitting = trio.CancelScope()
        self.cache = cache
        self.namespace = namespace
        self.cache_hits = self.cache_misses = 0
        self.cache_saved = 0.0
        self.records: list[Record] = []
        self.meter = RunMeter(max_records=None)
        self.routes: list[tuple[_Scope, str, str, float]] = []
        self.decisions: list[tuple[_Scope, dict[str, Any]]] = []
        self.scopes: list[_Scope] = []
        self.failures: list[SpecrouteError] = []
        self.top: _Scope

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

    def enqueue(self, scope: _Scope, index: int) -> None:
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
        scope: _Scope,
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

    async def run_step(self, scope: _Scope, index: int, token: object | None = None) -> None:
        step: Step = scope.flow.nodes[index]  # type: ignore[assignment]
        try:
            ok, value = await self.call(scope, step, admitted=token is not None)
            if ok:
                scope.write(step.output, value)
                scope.node_done()
        finally:
            if token is not None:
                self.limiter.release_on_behalf_of(token)  # type: ignore[union-attr]

    def view(self, node: Router, prediction: Prediction | None = None) -> RouterView:
        return RouterView(
            name=node.name,
            labels=tuple(node.branches),
            branch_sizes={label: len(b.nodes) for label, b in node.branches.items()},
            prediction=prediction,
            branch_estimates=node.estimates,
            router_seconds=node.step.options.estimated_seconds or 0.0,
            now=trio.current_time(),
        )

    async def decide(
        self, scope: _Scope, node: Router, found: CacheHit | CacheMiss | None, box: _Pending
    ) -> None:
        box.ok, box.value = await self.call(scope, node.step, found)
        box.record = len(self.records) - 1  # no checkpoint since `call` appended it
        box.done.set()
        if box.predicting is not None:
            box.predicting.cancel()  # a prediction that comes after the answer is moot

    async def predict(self, node: Router, kwargs: dict[str, Any]) -> Prediction | str:
        """The predictor's answer, or why there is none; a broken predictor only costs
        the speculation it would have guided."""
        assert node.predictor is not None
        try:
            return await node.predictor.predict(self.view(node), kwargs)
        except Exception as exc:  # noqa: BLE001 -- reported in the router's decision record
            return f"predictor failed: {type(exc).__name__}: {exc}"

    async def run_router(self, scope: _Scope, index: int) -> None:
        node: Router = scope.flow.nodes[index]  # type: ignore[assignment]
        kwargs = scope.gather(node.step.params)
        options = node.step.options.cache
        found = None
        if self.cache is not None and options is not None:
            found = await self.lookup(node.step, kwargs)
        verifying = None
        if isinstance(found, CacheHit) and found.kind == "semantic":
            assert options is not None
            if options.on_semantic_hit != "trust":
                # A near match only predicts the route: the real router decides, and its
                # answer is stored under this request's own key.
                verifying = found
                found = CacheMiss(key=found.key, exact=options.exact, embedding=None)
        box = _Pending()
        prediction: Prediction | None = None
        note = ""
        plan: SpeculationPlan = {}
        concurrent = False
        async with trio.open_nursery() as nursery:
            children: dict[str, _Scope] = {}
            # A route served from the cache is known now: there is nothing to speculate.
            speculate = self.policy is not None and not isinstance(found, CacheHit)
            if speculate and verifying is not None:
                predicted = verifying.value[0].label
                confidence = node.calibration.confidence(verifying.similarity or 0.0)
                prediction = Prediction(probabilities={predicted: confidence}, source="cache")
            elif speculate and node.predictor is not None:
                # The router runs while the predictor thinks; a late prediction is moot.
                concurrent = True
                answer: Prediction | str = "the router answered first"
                with trio.CancelScope() as predicting:
                    box.predicting = predicting
                    nursery.start_soon(self.decide, scope, node, found, box)
                    answer = await self.predict(node, kwargs)
                if isinstance(answer, str):
                    note = answer
                else:
                    prediction = answer
                speculate = not box.done.is_set()
            if speculate:
                assert self.policy is not None
                plan = self.policy.plan(self.view(node, prediction))
                if verifying is not None:
                    plan = {**plan, verifying.value[0].label: None}
                for label, limit in plan.items():
                    if label not in node.branches:
                        scope.fail(
                            UnknownBranchError(
                                f"speculation policy planned branch {label!r} for router "
                                f"{node.name!r}, which has only {list(node.branches)}"
                            )
                        )
                        return
                    child = _Scope(self, node.branches[label], scope, node, label, limit)
                    children[label] = child
                    nursery.start_soon(child.run)
            # On record from here on, even if the router is cancelled before it answers.
            record: dict[str, Any] = {
                "router": node.name,
                "branch": scope.path,
                "prediction": prediction,
                "note": note,
                "plan": MappingProxyType(dict(plan)),
                "reasons": MappingProxyType(dict(getattr(plan, "reasons", {}))),
                "cache": _cache_kind(found, verifying),
                "similarity": None if verifying is None else verifying.similarity,
            }
            self.decisions.append((scope, record))
            if concurrent:
                await box.done.wait()
            else:
                await self.decide(scope, node, found, box)
            if not box.ok:
                return
            decision = box.value
            error = _check_decision(node, decision, scope.where)
            if error is not None:
                scope.fail(error)
                return
            label = decision.label
            now = trio.current_time()
            self.routes.append((scope, node.name, label, now))
            record["label"] = label
            record["at"] = now
            self.learn(node, kwargs, label, verifying)
            for other, child in children.items():
                if other != label:
                    child.cancel_scope.cancel()
            winner = children.get(label)
            if winner is None:
                winner = _Scope(self, node.branches[label], scope, node, label, None)
                nursery.start_soon(winner.run)
            winner.router_record = box.record
            winner.choose(decision.values)
        scope.node_done()

    def learn(
        self, node: Router, kwargs: dict[str, Any], label: str, verifying: CacheHit | None
    ) -> None:
        """Tell the predictor and the hit calibration what the router really said."""
        if node.predictor is not None:
            node.predictor.observe(self.view(node), kwargs, label)
        if verifying is not None:
            confirmed = verifying.value[0].label == label
            node.calibration.record(verifying.similarity or 0.0, confirmed)


class _Pending:
    """A router's answer, filled in by whichever task ran the router step."""

    __slots__ = ("done", "ok", "predicting", "record", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False
        self.value: Any = None
        self.record = -1
        self.predicting: trio.CancelScope | None = None


def _cache_kind(found: CacheHit | CacheMiss | None, verifying: CacheHit | None) -> str | None:
    if verifying is not None:
        return "semantic (verified)"
    if isinstance(found, CacheHit):
        return found.kind
    return None


async def _invoke(step: Step, kwargs: dict[str, Any]) -> Any:
    timeout = step.options.timeout
    if timeout is None:
        return await step.fn(**kwargs)
    with trio.move_on_after(timeout):
        return await step.fn(**kwargs)
    raise StepTimeoutError(f"step {step.name!r} ran longer than its timeout of {timeout}s")


def _check_decision(node: Router, decision: Any, where: str) -> RunError | None:
    if not isinstance(decision, Route):
        return UnknownRouteError(
            f"router {node.name!r}{where} returned {decision!r}; a router step must return "
            f"a Route(label, **values)"
        )
    if decision.label not in node.branches:
        return UnknownRouteError(
            f"router {node.name!r}{where} returned label {decision.label!r}, which has no "
            f"branch; known labels: {', '.join(map(repr, node.branches))}"
        )
    expected = node.handoff[decision.label]
    if set(decision.values) != expected:
        return HandoffError(
            f"router {node.name!r}{where} handed {sorted(decision.values)} to branch "
            f"{decision.label!r}, which declares handoff {sorted(expected)}; pass "
            f"`handoff={{{decision.label!r}: [...]}}` to router() or change the Route"
        )
    return None


class _Scope:
    """One flow execution: the top level, or one branch (an overlay over its parent)."""

    def __init__(
        self,
        run: _Run,
        flow: Flow,
        parent: _Scope | None,
        router: Router | None,
        label: str,
        limit: int | None,
        provides: frozenset[str] = frozenset(),
    ) -> None:
        self.shared = run
        run.scopes.append(self)
        self.flow = flow
        self.parent = parent
        self.limit = limit
        self.values: dict[str, Any] = {}
        self.watchers: dict[str, list[tuple[_Scope, int]]] = {}
        self.missing: list[int] = []
        self.launched = [False] * len(flow.nodes)
        self.parked: list[int] = []
        self.done = 0
        self.finished = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.nursery: trio.Nursery | None = None
        self.chosen_children: list[_Scope] = []
        self.failure: SpecrouteError | None = None
        self.closed = False
        self.router_record = -1
        self.pending_stores: list[tuple[CacheMiss, Any]] = []
        if parent is None or router is None:
            self.path = ""
            self.exports: frozenset[str] = frozenset()
            self.chosen = self.confirmed = True
            self.provides = flow.produced | provides
        else:
            prefix = f"{parent.path}/" if parent.path else ""
            self.path = f"{prefix}{router.name}:{label}"
            self.exports = router.outputs
            self.chosen = self.confirmed = False
            self.provides = flow.produced | router.handoff[label]
        self.where = f" in branch {self.path!r}" if self.path else ""

    # -- values ---------------------------------------------------------------------------

    def gather(self, params: tuple[str, ...]) -> dict[str, Any]:
        kwargs = {}
        for name in params:
            scope: _Scope | None = self
            while scope is not None:
                value = scope.values.get(name, _MISSING)
                if value is not _MISSING:
                    kwargs[name] = value
                    break
                scope = scope.parent
        return kwargs

    def write(self, name: str, value: Any) -> None:
        self.values[name] = value
        if self.nursery is not None:
            for index in self.flow.consumers.get(name, ()):
                self.satisfy(index)
        watchers = self.watchers.pop(name, None)
        if watchers:
            for child, index in watchers:
                child.satisfy(index)
        if self.chosen and name in self.exports:
            self.parent.write(name, value)  # type: ignore[union-attr]

    def satisfy(self, index: int) -> None:
        if self.closed:
            return
        self.missing[index] -= 1
        if self.missing[index] == 0:
            self.ready(index)

    # -- scheduling -----------------------------------------------------------------------

    def blocked(self, index: int) -> bool:
        if self.limit is not None and not self.chosen and index >= self.limit:
            return True
        return self.flow.effects[index] and not self.confirmed

    def ready(self, index: int) -> None:
        if self.cancel_scope.cancel_called:
            return
        if self.blocked(index):
            self.parked.append(index)
            return
        if self.flow.routers_at[index]:
            # A router holds no slot itself (its branches need them); its step takes one.
            self.launched[index] = True
            self.nursery.start_soon(self.shared.run_router, self, index)  # type: ignore[union-attr]
        elif self.shared.limiter is not None:
            self.shared.enqueue(self, index)
        else:
            self.launched[index] = True
            self.nursery.start_soon(self.shared.run_step, self, index)  # type: ignore[union-attr]

    def release(self) -> None:
        if self.nursery is None or not self.parked:
            return
        parked, self.parked = sorted(self.parked), []
        for index in parked:
            self.ready(index)

    def begin(self) -> None:
        values = self.values
        for index, (local, external) in enumerate(self.flow.reads):
            count = 0
            for name in local:
                if name not in values:
                    count += 1
            for name in external:
                # A branch provides its handed-over values itself; the rest come from above.
                provider: _Scope | None = self
                while provider is not None and name not in provider.provides:
                    provider = provider.parent
                if provider is not None and name not in provider.values:
                    provider.watchers.setdefault(name, []).append((self, index))
                    count += 1
            self.missing.append(count)
        for index, count in enumerate(self.missing):
            if count == 0:
                self.ready(index)

    def node_done(self) -> None:
        self.done += 1
        if self.done == len(self.flow.nodes):
            self.finished.set()

    async def run(self) -> None:
        with self.cancel_scope:
            try:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    admitter = self.parent is None and self.shared.limiter is not None
                    if admitter:
                        nursery.start_soon(self.shared.admit)
                    self.begin()
                    if self.done < len(self.flow.nodes):
                        await self.finished.wait()
                    if admitter:
                        self.shared.admitting.cancel()
            finally:
                self.closed = True
                if self.done < len(self.flow.nodes):
                    self._record_skipped()

    def _record_skipped(self) -> None:
        now = trio.current_time()
        for index, launched in enumerate(self.launched):
            if not launched:
                node = self.flow.nodes[index]
                step = node.step if isinstance(node, Router) else node
                self.shared.records.append(
                    (self, step, now, now, SKIPPED, not self.confirmed, None, None, None)
                )
                if self.shared.observer is not None:
                    self.shared.observer.step_finished(step.name, self.path, SKIPPED, 0.0)

    # -- routing outcomes -----------------------------------------------------------------

    def choose(self, handed: Mapping[str, Any]) -> None:
        parent = self.parent
        assert parent is not None
        if self.failure is not None:
            parent.fail(self.failure)
            return
        self.chosen = True
        parent.chosen_children.append(self)
        for name in self.exports & self.values.keys():
            parent.write(name, self.values[name])
        for name, value in handed.items():
            self.write(name, value)
        if parent.confirmed:
            self.confirm()
        self.release()

    def store(self, miss: CacheMiss, value: Any) -> None:
        """Cache a computed value, but only once this branch is sure to be used."""
        if not self.confirmed:
            self.pending_stores.append((miss, value))
            return
        try:
            self.shared.cache.store(miss, value)  # type: ignore[union-attr]
        except CacheError as exc:
            failure = RunError(f"step {miss.key.step!r}{self.where}: {exc}")
            failure.__cause__ = exc
            self.fail(failure)

    def confirm(self) -> None:
        self.confirmed = True
        pending, self.pending_stores = self.pending_stores, []
        for miss, value in pending:
            self.store(miss, value)
        self.release()
        for child in self.chosen_children:
            child.confirm()

    def fail(self, error: SpecrouteError) -> None:
        if self.parent is None:
            self.shared.fail(error)
        elif self.chosen:
            self.parent.fail(error)
        else:
            if self.failure is None:
                self.failure = error
            self.cancel_scope.cancel()

    @property
    def doomed(self) -> bool:
        """This scope or an enclosing one was cancelled: nothing new should start in it."""
        scope: _Scope | None = self
        while scope is not None:
            if scope.closed or scope.cancel_scope.cancel_called:
                return True
            scope = scope.parent
        return False

    @property
    def committed(self) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if not scope.chosen:
                return False
            scope = scope.parent
        return True


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
    run = _Run(policy if mode is Mode.SPECULATIVE else None, limiter, cache, namespace, observer)
    top = run.top = _Scope(run, flow, None, None, "", None, frozenset(inputs))
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
    trace = _build_trace(run)
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


def _build_trace(run: _Run) -> tuple[TraceEntry, ...]:
    """Turn raw records into entries, marking waste and what each entry waited on."""
    producer: dict[tuple[int, str], int] = {}
    for index, (scope, step, _start, _end, status, *_rest) in enumerate(run.records):
        if status is OK or status is CACHED or status is RECOVERED:
            target: _Scope | None = scope
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
            source: _Scope | None = scope
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
