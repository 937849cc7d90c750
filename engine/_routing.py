"""Speculation: predict, plan, race, confirm and cancel around one router.

The router step runs while the predictor (if any) thinks; the policy plans which branches
start beside it; when the router answers, losers are cancelled and the winner is chosen
(started now if it was not speculated). A semantic cache hit on a router is verified by
default: it predicts the route, and the real router decides. A predictor is scheduled like
a step: its execution (and any LLM call it makes) is in the trace, and it is waste when
its prediction was wrong.

Failures around the router step keep the run's one-error promise: a cache lookup that
fails (an embedder down) is the router step's own failure, so its `fallback` applies and
the run raises one `StepFailedError`; a predictor that fails to predict or to learn only
costs the speculation, and the decision's `note` says why.
"""

from __future__ import annotations

import weakref
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
import trio
from specroute.cache import CacheHit, CacheMiss
from specroute.routes import (
    HandoffError,
    Plan,
    Prediction,
    Route,
    RouterView,
    RunError,
    UnknownBranchError,
    UnknownRouteError,
)

from ._call import Called, call, lookup
from ._state import Decision, Execution, Scope, add, flush
from ._trace import StepStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._graph import Router
    from ._state import RunState
    from ._step import Step

__all__ = [
    "Consulted",
    "close_decision",
    "consult_cache",
    "open_decision",
    "run_router",
    "without_lookup",
]

# An empty plan, or a plain mapping's reasons: one shared empty view, not one per run.
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def view(run: RunState, node: Router, prediction: Prediction | None = None) -> RouterView:
    return RouterView(
        name=node.name,
        labels=node._labels,
        branch_sizes=node._branch_sizes,
        prediction=prediction,
        branch_estimates=node.estimates,
        branch_steps=node._branch_steps,
        router_seconds=node.step.options.estimated_seconds or 0.0,
        now=trio.current_time(),
        memory=run.learned.router(node.name).predictor,
    )


async def decide(
    run: RunState, scope: Scope, consulted: Consulted, box: Pending, kwargs: dict[str, Any]
) -> None:
    box.called = await call(run, scope, consulted.step, consulted.found, kwargs=kwargs)
    box.answered = True
    if box.done is not None:
        box.done.set()
    if box.predicting is not None:
        box.predicting.cancel()  # a prediction that comes after the answer is moot


async def predict(
    run: RunState, scope: Scope, node: Router, kwargs: dict[str, Any], execution: Execution
) -> Prediction | str:
    """The predictor's answer, or why there is none, recorded like a step execution; a
    broken predictor only costs the speculation it would have guided."""
    assert node.predictor is not None
    by_task = run.meter.by_task
    task = trio.lowlevel.current_task()
    by_task[task] = None
    run.executions.append(execution)
    # Shown as a step: a progress display or metrics see what the prediction takes. (It
    # holds no slot of the run's cap: it runs beside its router, which it must not delay;
    # its model calls wait for the provider's own limits.)
    observer = run.observer
    if observer is not None:
        observer.step_started(execution.name, scope.path, execution.speculative)
    try:
        prediction = await node.predictor.predict(view(run, node), kwargs)
    except Exception as exc:  # noqa: BLE001 -- reported in the router's decision record
        execution.status = StepStatus.FAILED
        execution.error = exc
        return f"predictor failed: {type(exc).__name__}: {exc}"
    else:
        execution.status = StepStatus.OK
        return prediction
    finally:
        execution.end = end = trio.current_time()
        execution.calls = by_task.pop(task, None)
        if observer is not None:
            observer.step_finished(
                execution.name, scope.path, execution.status, end - execution.start
            )


@attrs.frozen
class Consulted:
    """What a router's cache lookup decided about its call.

    Attributes:
        found: What the router step's call is given (a hit serves it, a miss stores it).
        verifying: The near match the real router verifies (None: none).
        step: The step to call: the router's own, or, when the lookup failed, one that
            raises the lookup's error inside the step boundary.
    """

    found: CacheHit | CacheMiss | None
    verifying: CacheHit | None
    step: Step


# A router's `Consulted` when the run has no cache or the router no cache options: one per
# router, not one per router execution (and no coroutine to await).
_UNCACHED: weakref.WeakKeyDictionary[Router, Consulted] = weakref.WeakKeyDictionary()


def without_lookup(run: RunState, node: Router) -> Consulted | None:
    """What `consult_cache` would decide when there is nothing to look up; None when
    there is, and `consult_cache` must be awaited."""
    if run.cache is not None and node.step.options.cache is not None:
        return None
    consulted = _UNCACHED.get(node)
    if consulted is None:
        consulted = _UNCACHED[node] = Consulted(found=None, verifying=None, step=node.step)
    return consulted


async def consult_cache(run: RunState, node: Router, kwargs: dict[str, Any]) -> Consulted:
    """Look the router up before its step is called (a hit decides what is speculated)."""
    options = node.step.options.cache
    if run.cache is None or options is None:
        return Consulted(found=None, verifying=None, step=node.step)
    try:
        found = await lookup(run, node.step, kwargs)
    except Exception as exc:  # noqa: BLE001 -- handed to the router step's own boundary
        return Consulted(found=None, verifying=None, step=_failing(node.step, exc))
    if not isinstance(found, CacheHit):
        return Consulted(found=found, verifying=None, step=node.step)
    # Either way the router runs, its answer is stored under this request's own key, in
    # the semantic index too (with the embedding the lookup made), so a paraphrase of a
    # request the router corrected finds the corrected answer.
    miss = CacheMiss(key=found.key, exact=options.exact, embedding=found.embedding)
    value = found.value
    if not isinstance(value, Route) or value.label not in node.branches:
        # A route cached before the router lost that branch: a miss, not a failed run.
        return Consulted(found=miss, verifying=None, step=node.step)
    if found.kind == "semantic" and options.on_semantic_hit != "trust":
        # A near match only predicts the route: the real router decides.
        return Consulted(found=miss, verifying=found, step=node.step)
    return Consulted(found=found, verifying=None, step=node.step)


def _failing(step: Step, error: Exception) -> Step:
    """`step` as it would be called had its lookup been inside its boundary: it raises the
    lookup's error, so the step's fallback, trace entry and `StepFailedError` follow. It
    is not looked up again: a retried lookup could serve a near match unverified."""

    async def lookup_failed(**values: Any) -> Any:
        raise error

    return attrs.evolve(step, fn=lookup_failed, options=attrs.evolve(step.options, cache=None))


def open_decision(
    run: RunState,
    scope: Scope,
    node: Router,
    found: CacheHit | CacheMiss | None,
    verifying: CacheHit | None,
) -> Decision:
    """Put a router execution on record (even if it is cancelled before it answers)."""
    record = Decision(scope, node.name)
    record.cache = cache_kind(found, verifying)
    record.similarity = None if verifying is None else verifying.similarity
    run.decisions = add(run.decisions, record)
    return record


def close_decision(
    run: RunState,
    scope: Scope,
    node: Router,
    record: Decision,
    answer: Any,
    kwargs: dict[str, Any],
    verifying: CacheHit | None,
    asked: Execution | None,
) -> Route | None:
    """Check the router's answer, record it and learn from it; None if it was refused."""
    error = check_decision(node, answer, scope.where)
    if error is not None:
        scope.fail(error)
        return None
    label = answer.label
    record.label = label
    record.at = trio.current_time()
    record.order = run.answers
    run.answers += 1
    prediction = record.prediction
    if asked is not None:
        # A prediction's own cost is waste unless it named the branch the router chose.
        right = asked.status is StepStatus.OK and prediction is not None
        asked.wasted = not (right and prediction.likeliest == label)  # type: ignore[union-attr]
    learn(run, node, kwargs, label, verifying, prediction if asked is not None else None, record)
    route: Route = answer
    return route


async def run_router(run: RunState, scope: Scope, index: int) -> None:
    """The task of one router: predict, speculate, decide, then choose the winner."""
    node: Router = scope.flow.nodes[index]  # type: ignore[assignment]
    kwargs = scope.gather(node.step.params)
    consulted = without_lookup(run, node) or await consult_cache(run, node, kwargs)
    found, verifying = consulted.found, consulted.verifying
    box = Pending()
    prediction: Prediction | None = None
    asked: Execution | None = None
    note = ""
    limits: Mapping[str, int | None] = _EMPTY
    reasons: Mapping[str, Any] = _EMPTY
    concurrent = False
    # What runs beside the router (its predictor's rival, speculated branches) is a task of
    # the router's own scope: no nursery of its own, so a router costs one cancel scope and
    # one schedule point fewer. A speculated winner tells its router's scope it is done.
    nursery = scope.nursery
    assert nursery is not None
    children: dict[str, Scope] = {}
    guessed: dict[str, Mapping[str, Any]] = {}  # label -> handoff values it started on
    # A route served from the cache is known now: there is nothing to speculate.
    speculate = run.policy is not None and not isinstance(found, CacheHit)
    if speculate and verifying is not None:
        predicted = verifying.value.label
        calibration = run.learned.router(node.name).calibration
        confidence = calibration.confidence(verifying.similarity or 0.0)
        prediction = Prediction(probabilities={predicted: confidence}, source="cache")
    elif speculate and node.predictor is not None:
        # The router runs while the predictor thinks; a late prediction is moot.
        concurrent = True
        answer: Prediction | str = "the router answered first"
        at = trio.current_time()
        asked = Execution(scope, f"{node.name}.predict", node.step.params, None, at, True, at)
        # Waste unless the router's answer shows it named the chosen branch (a router that
        # fails, or answers no valid route, chooses none).
        asked.wasted = True
        box.done = trio.Event()
        with trio.CancelScope() as predicting:
            box.predicting = predicting
            # The router step's own inputs: what the predictor does with its own is its own.
            nursery.start_soon(decide, run, scope, consulted, box, dict(kwargs))
            answer = await predict(run, scope, node, kwargs, asked)
        if isinstance(answer, str):
            note = answer
        else:
            prediction = answer
        speculate = not box.answered
    if speculate:
        assert run.policy is not None
        plan = run.policy.plan(view(run, node, prediction))
        if isinstance(plan, Plan):
            # Frozen already: its limits are recorded as they are, with its reasons.
            limits, reasons = plan.limits, plan.reasons
        else:
            limits = MappingProxyType(dict(plan))
        if verifying is not None:
            limits, reasons = MappingProxyType({**limits, verifying.value.label: None}), _EMPTY
        for label, limit in limits.items():
            if label not in node.branches:
                scope.fail(
                    UnknownBranchError(
                        f"speculation policy planned branch {label!r} for router "
                        f"{node.name!r}, which has only {list(node.branches)}"
                    )
                )
                return
            child = Scope(run, node.branches[label], scope, node, label, limit)
            start_values = predicted_handoff(node, label, prediction, verifying)
            if start_values is not None:
                # The branch starts its steps that read them now, on the guess.
                child.values.update(start_values)
                guessed[label] = start_values
            children[label] = child
            nursery.start_soon(child.run_nodes, True, name="specroute branch " + child.path)
    record = open_decision(run, scope, node, found, verifying)
    record.prediction = prediction
    record.note = note
    record.plan = limits
    record.reasons = reasons
    if concurrent:
        if not box.answered:
            await box.done.wait()  # type: ignore[union-attr]
    else:
        box.called = await call(run, scope, consulted.step, found, kwargs=kwargs)
    called = box.called
    assert called is not None  # answered
    if not called.ok:
        return
    route = close_decision(run, scope, node, record, called.value, kwargs, verifying, asked)
    if route is None:
        return
    for other, child in children.items():
        if other != route.label:
            child.cancel()
    winner = children.get(route.label)
    handed: Mapping[str, Any] = route.values
    guess = guessed.get(route.label)
    if winner is not None and guess is not None:
        record.handoff_confirmed = handoff_agrees(node, route, guess, record)
        if record.handoff_confirmed:
            # Kept: the branch already holds the values it started on.
            handed = {}
        else:
            winner.cancel()  # started on wrong values: it starts again on the real ones
            winner = None
    started = winner is not None
    if winner is None:
        winner = Scope(run, node.branches[route.label], scope, node, route.label, None)
    winner.router_execution = called.execution
    winner.choose(handed)
    # A speculated winner's task counts the router done when it ends, unless it has ended
    # already (decided here, before anything is awaited, so it is counted once).
    ended = started and winner.closed and winner.chosen
    if run.confirmed_stores:
        await flush(run)
    if started:
        if ended:
            scope.node_done()
        return
    # Not speculated: the router's own task runs the branch (no task to start).
    await winner.run_nodes()
    scope.node_done()


def predicted_handoff(
    node: Router, label: str, prediction: Prediction | None, verifying: CacheHit | None
) -> Mapping[str, Any] | None:
    """The values a speculated branch may start on before its router hands them over: a
    near match's cached route's, or the predictor's; None unless they are a complete set."""
    expected = node.handoff[label]
    if not expected:
        return None
    values: Mapping[str, Any] | None = None
    if verifying is not None and verifying.value.label == label:
        values = verifying.value.values
    elif prediction is not None:
        values = prediction.values.get(label)
    if values is None or set(values) != expected:
        return None
    return values


def handoff_agrees(node: Router, route: Route, guess: Mapping[str, Any], record: Decision) -> bool:
    """Whether the router's real handoff agrees with the values its branch started on:
    equality, or the router's `CacheOptions(agree=...)` given both routes. A broken
    comparison only costs the speculation."""
    options = node.step.options.cache
    agree = options.agree if options is not None else None
    try:
        if agree is None:
            return dict(guess) == dict(route.values)
        return bool(agree(Route(route.label, **guess), route))
    except Exception as exc:  # noqa: BLE001 -- reported in the router's decision record
        note = f"agree failed: {type(exc).__name__}: {exc}"
        record.note = f"{record.note}; {note}" if record.note else note
        return False


def learn(
    run: RunState,
    node: Router,
    kwargs: dict[str, Any],
    label: str,
    verifying: CacheHit | None,
    predicted: Prediction | None,
    record: Decision,
) -> None:
    """Tell the predictor (with what it predicted) and the hit calibration what the router
    really said. A predictor that cannot learn only costs later speculation: the answer
    stands, and the decision's note says why."""
    if node.predictor is not None:
        try:
            node.predictor.observe(view(run, node, predicted), kwargs, label)
        except Exception as exc:  # noqa: BLE001 -- reported in the router's decision record
            note = f"predictor could not learn: {type(exc).__name__}: {exc}"
            record.note = f"{record.note}; {note}" if record.note else note
    if verifying is not None:
        confirmed = verifying.value.label == label
        run.learned.router(node.name).calibration.record(verifying.similarity or 0.0, confirmed)


class Pending:
    """A router's answer, filled in by whichever task ran the router step."""

    __slots__ = ("answered", "called", "done", "predicting")

    def __init__(self) -> None:
        self.answered = False
        # Made only when a predictor runs beside the router and must be told it answered.
        self.done: trio.Event | None = None
        self.called: Called | None = None
        self.predicting: trio.CancelScope | None = None


def cache_kind(found: CacheHit | CacheMiss | None, verifying: CacheHit | None) -> str | None:
    if verifying is not None:
        return "semantic (verified)"
    if isinstance(found, CacheHit):
        return found.kind
    return None


def check_decision(node: Router, decision: Any, where: str) -> RunError | None:
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
