"""Predicted values: a semantic cache near match on a step starts the steps downstream of
it early, while the step computes its real value; `agree` then keeps that work or drops it.

The downstream nodes (`Graph.downstream`) run in a child scope of the step's scope, an
overlay holding the predicted value. The parent's own copies of those nodes wait for the
step's real value, as always. When it arrives:

- agreed: the child is chosen like a winning branch (its values are written through to
  the parent) and the parent's copies are retired: they never start, and count as done
  when the child's are;
- refuted, or no real value at all: the child is cancelled (its work is waste, its writes
  are never seen) and the parent's copies start on the real value.

Either way the step's own value is the real one. Whether the child starts at all is the
speculation policy's `speculate_value`, shown what the run's `LearnedState` knows of how
often this step's predictions were confirmed; every settled prediction adds to that, so a
policy that stops speculating on a step still learns whether it should start again.

A speculating loop predicts its own value the same way (`predict`): once its first
iteration has every value but the check's, that iteration with `until` true is its predicted
result, and its check's verdict (`decide`) keeps or drops what started on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from specroute.routes import ValuePolicy, ValueView

from ._state import Guess, Scope, add

if TYPE_CHECKING:
    from collections.abc import Mapping

    from specroute.cache import CacheHit

    from ._graph import Downstream
    from ._state import RunState
    from ._step import Step

__all__ = ["decide", "drop", "open_guess", "predict", "settle"]

# Added to a retired node's count of missing inputs, so no write makes it ready again.
_RETIRED = 1 << 40


def open_guess(
    run: RunState, scope: Scope, step: Step, hit: CacheHit, values: Mapping[str, Any]
) -> Guess:
    """Record `hit` as a prediction of `step`'s value and, if the policy says so, start the
    steps downstream of it on that value. `values` are what the child scope starts with:
    the predicted value, and for a streamed step a replay of its stream."""
    seconds = step.options.estimated_seconds or 0.0
    return predict(run, scope, step.name, step.output, values, hit.similarity or 0.0, seconds)


def predict(
    run: RunState,
    scope: Scope,
    name: str,
    output: str,
    values: Mapping[str, Any],
    similarity: float,
    seconds: float,
) -> Guess:
    """Record `values[output]` as a prediction of node `name`'s value (`open_guess` for a
    near match; a loop's predicted "valid") and, if the policy's `speculate_value` says so,
    start the nodes downstream of `output` in `scope` on it. `seconds` is what the node is
    expected to take still: the most the prediction can hide."""
    guess = Guess(scope, name, values[output], similarity)
    run.guesses = add(run.guesses, guess)
    downstream = scope.flow.downstream(output)
    policy = run.policy
    if downstream is None or policy is None or scope.nursery is None:
        return guess
    if _claimed(run, scope, downstream):
        # One node runs in one place: two overlays holding it could both be kept.
        guess.note = "steps downstream already run on another predicted value"
        return guess
    if not isinstance(policy, ValuePolicy):
        guess.note = "the speculation policy has no speculate_value"
        return guess
    memory = run.learned.step(name)
    view = ValueView(
        step=name,
        similarity=guess.similarity,
        confirm_rate=memory.confirm_rate,
        settled=memory.settled,
        step_seconds=seconds,
        downstream_steps=downstream.steps,
        downstream_estimates=downstream.estimates,
        now=run.now(),
    )
    try:
        speculate = bool(policy.speculate_value(view))
    except Exception as exc:  # noqa: BLE001 -- a broken policy only costs the speculation
        guess.note = f"speculate_value failed: {type(exc).__name__}: {exc}"
        return guess
    if not speculate:
        guess.note = "the speculation policy declined"
        return guess
    graph = downstream.graph
    child = Scope(run, graph, scope, None, "", None)
    # An overlay that no one has chosen yet: what it writes stays its own until `settle`.
    child.path = f"{scope.path}/{name}:predicted" if scope.path else f"{name}:predicted"
    child.exports = graph._produced
    child.chosen = child.confirmed = False
    child.provides = graph._produced | values.keys()
    child.values.update(values)
    guess.child = child
    guess.downstream = downstream
    guess.speculated = True
    scope.nursery.start_soon(_run_child, guess)
    return guess


async def _run_child(guess: Guess) -> None:
    child = guess.child
    assert child is not None
    await child.run_nodes()
    guess.finished = True
    if guess.adopted:
        _count_done(guess)


def settle(run: RunState, guess: Guess, real: Any, agree: Any) -> None:
    """The step's real value arrived: keep the work started on the prediction if `agree`
    says the two agree (equality without one), else drop it. Call before the real value
    is written, so the parent's copies of adopted nodes never start."""
    try:
        agreed = bool(agree(guess.value, real) if agree is not None else guess.value == real)
    except Exception as exc:  # noqa: BLE001 -- a broken comparison only costs the speculation
        agreed = False
        guess.note = f"agree failed: {type(exc).__name__}: {exc}"
    decide(run, guess, agreed)


def decide(run: RunState, guess: Guess, agreed: bool) -> None:
    """`settle` once it is known whether the prediction was right: a loop knows its
    predicted "valid" is refuted as soon as its first check says no, before its value."""
    guess.at = run.now()
    guess.confirmed = agreed
    run.learned.step(guess.step).record(agreed)
    child = guess.child
    if child is None:
        return
    if not agreed:
        child.cancel()
        return
    parent = guess.scope
    downstream = guess.downstream
    assert downstream is not None
    for index in downstream.indices:
        parent.missing[index] += _RETIRED
        parent.launched |= 1 << index
    guess.adopted = True
    child.choose({})
    if guess.finished:
        _count_done(guess)


def drop(run: RunState, guess: Guess, why: str) -> None:
    """The step produced no real value: nothing started on the prediction is kept."""
    if guess.child is not None:
        guess.child.cancel()
    if not guess.note:
        guess.note = why


def _count_done(guess: Guess) -> None:
    """The parent's retired copies are done once the child's nodes are."""
    if guess.child is None or guess.child.failure is not None or not guess.child.chosen:
        return
    assert guess.downstream is not None
    for _ in guess.downstream.indices:
        guess.scope.node_done()


def _claimed(run: RunState, scope: Scope, downstream: Downstream) -> bool:
    """Whether another live prediction in `scope` already runs one of these nodes."""
    mine = set(downstream.indices)
    for other in run.guesses:
        child = other.child
        if other.scope is scope and child is not None and not child.cancel_requested:
            assert other.downstream is not None
            if mine.intersection(other.downstream.indices):
                return True
    return False
