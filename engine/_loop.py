"""Bounded loops: run a sub-flow again until a value it produces says it is done.

A `Loop` is a node of a flow like a step. Each iteration runs the body in a `BodyScope` of
its own (trace path `"<loop>#k"`, from 1); `carry` hands chosen values of one iteration to
the next as inputs (a repair step reads the last draft and what the validator said). The
loop stops after the first iteration whose `until` value is true, or after
`max_iterations`; then `on_limit` decides: `"raise"` fails the step with a
`LoopLimitError` naming the loop, `"last"` returns the last iteration with
`converged=False`. Iterations run one after another in every mode; the steps inside one
run as dataflow (or in order, in sequential mode), and its effects follow the effect rules
of its enclosing branch, iteration by iteration.

A loop with `speculate=True` in a speculative run may speculate twice over: its next
iteration starts beside the check (a branch `"again"` the policy plans), and the steps
after it start on a predicted "valid" (a predicted value the policy's `speculate_value`
allows, `Foresight`): the first iteration, once it has every value but `until`, with
`until` true. The first check's verdict keeps that work (no recompute) or cancels it, and
the steps after the loop then start again on its last iteration, as for any predicted value.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
from specroute.routes import (
    ConfigurationError,
    ConfigurationTypeError,
    RouterView,
    RunError,
    SpecrouteError,
    StepDefinitionError,
)

from ._expand import BodyScope, body_graph, child_path, outside_a_flow, producers, run_body
from ._graph import Expansion, Router, _estimate
from ._map import _identifier
from ._predicted import decide, drop, predict, settle
from ._state import flush
from ._step import StepOptions
from ._stream import stream_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._graph import Graph
    from ._state import Execution, Guess, RunState, Scope
    from ._step import Step

__all__ = ["Loop", "LoopLimitError", "LoopResult", "loop"]

OnLimit = Literal["raise", "last"]
# The one branch a speculating loop shows a policy: its next iteration.
LABELS = ("again",)
ON_LIMIT: tuple[OnLimit, ...] = ("raise", "last")


class LoopLimitError(SpecrouteError):
    """A loop with `on_limit="raise"` ran `max_iterations` times and its `until` value was
    still false. It is the `__cause__` of the `StepFailedError` the run raises (like
    `StepTimeoutError`, never raised by `run` itself); with `on_limit="last"` the loop
    returns its last iteration with `converged=False` instead."""


@attrs.frozen(kw_only=True)
class LoopResult:
    """What a loop writes: its last iteration's outputs, and how it ended.

    Attributes:
        outputs: Every value the last iteration produced, by name.
        iterations: How many iterations ran (1 to `max_iterations`).
        converged: The last iteration's `until` value was true; False only when the loop
            hit its bound with `on_limit="last"`.
    """

    outputs: Mapping[str, Any]
    iterations: int
    converged: bool

    def __getitem__(self, name: str) -> Any:
        """The last iteration's output `name`."""
        return self.outputs[name]


@attrs.frozen(eq=False, repr=False)
class Loop(Expansion):
    """A sub-flow run again until its `until` value is true. Build one with `loop()`.

    Attributes:
        until: The body value that ends the loop when true.
        carry: Body input -> the body value of the previous iteration it reads.
        max_iterations: The bound.
        on_limit: `"raise"` or `"last"` (see `loop`).
        speculate: The loop may speculate: its next iteration, and the steps after it on a
            predicted "valid" (see `loop`).
    """

    until: str = attrs.field(kw_only=True)
    carry: Mapping[str, str] = attrs.field(kw_only=True)
    max_iterations: int = attrs.field(kw_only=True)
    on_limit: OnLimit = attrs.field(kw_only=True, default="raise")
    speculate: bool = attrs.field(kw_only=True, default=False)

    async def expand(
        self, run: RunState, scope: Scope, kwargs: dict[str, Any], execution: Execution
    ) -> LoopResult:
        """Run iterations until `until` is true or the bound is hit."""
        first = self._iteration(run, scope, 1, None)
        foresight = self._foresight(run, scope, first)
        try:
            ahead = self._speculation(run, scope)
            if ahead is not None:
                last, done, iterations = await self._speculating(
                    run, scope, first, ahead, foresight
                )
            else:
                last, done, iterations = await self._one_by_one(run, scope, first, foresight)
            if not done and self.on_limit == "raise":
                raise LoopLimitError(
                    f"loop {self.name!r} ran its {self.max_iterations} iterations and "
                    f"{self.until!r} was still false; raise `max_iterations=`, or pass "
                    f"`on_limit='last'` to go on with the last iteration's outputs"
                )
            # The loop's own entry is the gathering of the last iteration: zero length, at
            # the end.
            execution.start = run.now()
            execution.waits = producers(run, (last,), self.body._produced)
            result = self._result(last, iterations, converged=done)
            if foresight is not None:
                foresight.settle(result)
            return result
        finally:
            if foresight is not None:
                foresight.close()

    def _result(self, last: Scope, iterations: int, *, converged: bool) -> LoopResult:
        values = last.values
        outputs = {name: values[name] for name in self.body._produced if name in values}
        return LoopResult(
            outputs=MappingProxyType(outputs), iterations=iterations, converged=converged
        )

    def _iteration(
        self,
        run: RunState,
        scope: Scope,
        number: int,
        last: Iteration | None,
        limit: int | None = None,
        *,
        speculative: bool = False,
    ) -> Iteration:
        provides = self.body._produced
        if last is not None:
            provides |= frozenset(self.carry)
        child = Iteration(
            run,
            self.body,
            scope,
            child_path(scope, f"{self.name}#{number}"),
            provides,
            speculative=speculative,
            limit=limit,
        )
        if last is not None:
            for name, source in self.carry.items():
                child.values[name] = last.values[source]
            if not speculative:
                # The carried values came from the previous iteration's end.
                child.router_execution = self._decider(run, last)
        return child

    def _ended(self, child: Scope, number: int) -> bool:
        if self.until not in child.values:
            raise RunError(
                f"loop {self.name!r}: iteration {number} ended without "
                f"{self.until!r} (an internal error of specroute; please report it)"
            )
        return bool(child.values[self.until])

    async def _one_by_one(
        self, run: RunState, scope: Scope, first: Iteration, foresight: Foresight | None
    ) -> tuple[Iteration, bool, int]:
        last: Iteration | None = None
        child = first
        done = False
        iterations = 0
        while iterations < self.max_iterations and not done:
            iterations += 1
            if last is not None:
                child = self._iteration(run, scope, iterations, last)
            await run_body(run, child)
            # A failure in the iteration has cancelled an enclosing scope.
            await trio.lowlevel.checkpoint_if_cancelled()
            done = self._ended(child, iterations)
            if not done and foresight is not None:
                foresight.refute()
            last = child
        assert last is not None  # max_iterations >= 1
        return last, done, iterations

    def _speculation(self, run: RunState, scope: Scope) -> tuple[int | None] | None:
        """Whether (and with which step limit) the next iteration starts speculatively: when
        the loop asks for it, the run speculates (not sequential or parallel mode) and its
        policy plans the loop's `"again"` branch."""
        if not self.speculate or run.policy is None or scope.nursery is None:
            return None
        steps = tuple(node.name for node in self.body.nodes)
        view = RouterView(
            name=self.name,
            labels=LABELS,
            branch_sizes={"again": len(steps)},
            branch_estimates={"again": tuple(_estimate(node) for node in self.body.nodes)},
            branch_steps={"again": steps},
            now=run.now(),
            memory=run.learned.router(self.name).predictor,
        )
        plan = run.policy.plan(view)
        return (plan["again"],) if "again" in plan else None

    async def _speculating(
        self,
        run: RunState,
        scope: Scope,
        first: Iteration,
        plan: tuple[int | None],
        foresight: Foresight | None,
    ) -> tuple[Iteration, bool, int]:
        """Iterations where the next one starts, speculatively, as soon as the values it
        carries exist (while `until` is still being worked out), and is chosen when `until`
        comes out false, cancelled (wasted) when it comes out true."""
        (limit,) = plan
        ended: dict[Iteration, trio.Event] = {first: trio.Event()}
        ahead: list[Iteration] = []
        try:
            return await self._iterate_ahead(run, scope, first, limit, ended, ahead, foresight)
        finally:
            # A watch that never fired would keep its iteration in a reference cycle.
            for child in ended:
                child.watches = []

    async def _iterate_ahead(
        self,
        run: RunState,
        scope: Scope,
        first: Iteration,
        limit: int | None,
        ended: dict[Iteration, trio.Event],
        ahead: list[Iteration],
        foresight: Foresight | None,
    ) -> tuple[Iteration, bool, int]:
        async with trio.open_nursery() as nursery:

            def arm(current: Iteration, number: int) -> None:
                if number >= self.max_iterations:
                    return

                def start_next() -> None:
                    child = self._iteration(
                        run, scope, number + 1, current, limit, speculative=True
                    )
                    ended[child] = trio.Event()
                    ahead.append(child)
                    nursery.start_soon(_run_ahead, child, ended[child])

                current.when_written(frozenset(self.carry.values()), start_next)

            current = first  # (its event is set by nobody: this task runs it)
            iterations = 1
            arm(current, iterations)
            await run_body(run, current)
            while True:
                await trio.lowlevel.checkpoint_if_cancelled()
                done = self._ended(current, iterations)
                if not done and foresight is not None:
                    foresight.refute()
                following = ahead.pop() if ahead else None
                if not done and following is None and iterations < self.max_iterations:
                    raise RunError(
                        f"loop {self.name!r}: iteration {iterations + 1} never started "
                        f"(an internal error of specroute; please report it)"
                    )
                if done or following is None:
                    if following is not None:
                        following.cancel()
                    break
                following.router_execution = self._decider(run, current)
                # Chosen: a failure it met while speculative now fails the loop's scope.
                following.choose({})
                if run.confirmed_stores:
                    await flush(run)
                current = following
                iterations += 1
                arm(current, iterations)
                await ended[current].wait()
            nursery.cancel_scope.cancel()
        return current, done, iterations

    def _foresight(self, run: RunState, scope: Scope, first: Iteration) -> Foresight | None:
        """The loop's predicted "valid", armed on its first iteration: when the loop asks
        for speculation, the run speculates, something after the loop reads its value, and
        nothing in the body reads `until` (so the first iteration's other values all exist
        before its verdict)."""
        if not self.speculate or run.policy is None or scope.nursery is None:
            return None
        if scope.flow.downstream(self.output) is None or self.body.downstream(self.until):
            return None
        foresight = Foresight(self, run, scope, first)
        writes = frozenset((self.until, stream_name(self.until)))
        first.when_written(self.body._produced - writes, foresight.open)
        return foresight

    def _check_seconds(self) -> float:
        """The expected duration of the step that writes `until`: what a guess can hide."""
        for node in self.body.nodes:
            if self.until in (node.outputs if isinstance(node, Router) else (node.output,)):
                return _estimate(node)[0]
        return 0.0

    def policy_labels(self) -> tuple[str, ...]:
        """`("again",)` for a loop that may speculate its next iteration, else none."""
        return LABELS if self.speculate else ()

    def _decider(self, run: RunState, last: Scope) -> Execution | None:
        found = producers(run, (last,), frozenset((self.until,)))
        return found[-1] if found else None

    def __repr__(self) -> str:
        return f"<Loop {self.name!r} until {self.until!r} writes {self.output!r}>"


class Iteration(BodyScope):
    """One iteration of a loop: a body scope that can tell callbacks once values exist."""

    __slots__ = ("watches",)

    def __init__(
        self,
        run: RunState,
        flow: Graph,
        parent: Scope,
        path: str,
        provides: frozenset[str],
        *,
        speculative: bool,
        limit: int | None,
    ) -> None:
        super().__init__(
            run, flow, parent, path, provides, isolated=False, speculative=speculative, limit=limit
        )
        self.watches: list[tuple[frozenset[str], Callable[[], None]]] = []

    writes_plainly = False  # every write may be one a `when_written` callback waits for

    def when_written(self, names: frozenset[str], callback: Callable[[], None]) -> None:
        """Call `callback` once, as soon as every value in `names` exists (now if they do)."""
        if names <= self.values.keys():
            callback()
        else:
            self.watches.append((names, callback))

    def write(self, name: str, value: Any) -> None:
        super().write(name, value)
        if not self.watches:
            return
        have = self.values.keys()
        due = [watch for watch in self.watches if name in watch[0] and watch[0] <= have]
        if due:
            self.watches = [watch for watch in self.watches if watch not in due]
            for _, callback in due:
                callback()


class Foresight:
    """A loop's predicted "valid": once its first iteration has every value but `until`,
    that iteration with `until` true is a predicted value of the loop (`_predicted`); the
    first verdict refutes it (false) or the loop's value confirms it (true at once)."""

    __slots__ = ("first", "guess", "loop", "run", "scope")

    def __init__(self, loop: Loop, run: RunState, scope: Scope, first: Iteration) -> None:
        self.loop = loop
        self.run = run
        self.scope = scope
        self.first = first
        self.guess: Guess | None = None

    def open(self) -> None:
        loop = self.loop
        first = self.first
        if loop.until in first.values:
            return  # the verdict came first: nothing left to predict
        predicted = loop._result(first, 1, converged=True)
        outputs = {**predicted.outputs, loop.until: True}
        predicted = attrs.evolve(predicted, outputs=MappingProxyType(outputs))
        values = {loop.output: predicted}
        seconds = loop._check_seconds()
        self.guess = predict(self.run, self.scope, loop.name, loop.output, values, 0.0, seconds)

    def refute(self) -> None:
        """The first iteration's `until` came out false."""
        guess = self.guess
        if guess is not None and guess.confirmed is None:
            decide(self.run, guess, False)

    def settle(self, result: LoopResult) -> None:
        """The loop's value is known: a prediction still open is kept if it equals it."""
        guess = self.guess
        if guess is not None and guess.confirmed is None:
            settle(self.run, guess, result, None)

    def close(self) -> None:
        """The loop ended (or failed): nothing is started on a prediction any more."""
        self.first.watches = []
        guess = self.guess
        if guess is not None and guess.confirmed is None:
            drop(self.run, guess, f"loop {self.loop.name!r} produced no value")


async def _run_ahead(child: Iteration, ended: trio.Event) -> None:
    try:
        await child.run_nodes()
    finally:
        ended.set()


def loop(
    body: Graph | Step | Sequence[Step | Router],
    *,
    until: str,
    into: str,
    max_iterations: int,
    carry: Mapping[str, str] | None = None,
    on_limit: OnLimit = "raise",
    speculate: bool = False,
    name: str | None = None,
) -> Loop:
    """Run `body` again until its value `until` is true, at most `max_iterations` times.

    The loop is a node of a flow like a step: it starts when every value the body reads
    from outside exists, and writes a `LoopResult` (the last iteration's outputs,
    how many iterations ran, whether `until` was true) under `into`. Each iteration runs in
    a scope of its own (trace branch `"<name>#k"`), so nothing of one iteration is seen by
    the next except what `carry` hands over.

    Args:
        body: The sub-flow of one iteration: a `Flow`, a list of steps and routers, or one
            step. It must produce `until`.
        until: The body value that ends the loop when true (a validator's verdict).
        into: The name the `LoopResult` is written under.
        max_iterations: The bound, >= 1 (one generation and three repairs: 4).
        carry: Body input -> the body value of the previous iteration it receives
            (`{"draft_before": "draft"}`). In the first iteration there is none, so each step
            reading a carried input must give its parameter a default.
        on_limit: What hitting the bound with `until` still false does: `"raise"` fails the
            loop's step (the run raises `StepFailedError` whose cause is a
            `LoopLimitError`); `"last"` writes the last iteration with `converged=False`.
        speculate: Let the loop speculate, in a speculative run, in two ways, each as the
            policy allows. The next iteration: when the policy plans the loop's branch
            `"again"` (`Always()` does; `Branches({"<name>": ["again"]})` names it), it
            starts as soon as the values it carries exist, while the current one is still
            working out `until`. It is a speculative branch: its effects wait, a failure in
            it counts only if it is chosen; it is chosen when `until` comes out false and
            cancelled (its work `wasted`) when it comes out true. The loop is then listed
            in `Flow.routers` with the one label `"again"`. A predicted "valid": when the
            policy's `speculate_value` says yes (`Always()` does, `PredictivePolicy` weighs
            how often this loop passed at once), the steps after the loop start, beside the
            first check, on the first iteration's values with `until` true; they are kept
            if that check passes (the loop's value equals the prediction: a check that
            returns a truthy value other than `True` refutes it) and restarted on the last
            iteration otherwise. It is
            recorded in `RunResult.predicted_values` under the loop's name (similarity 0)
            and its confirm rate learned under that name. No prediction is made when a step
            of the body reads `until`.
        name: The loop's name in traces, errors and the observer (default: `into`).

    Returns:
        The `Loop`, to put in a `Flow` like a step.

    Raises:
        StepDefinitionError: `until` or a carried value not produced by the body, a carried
            input it does not read, or one read without a default.
        ConfigurationError: `max_iterations` < 1, an unknown `on_limit`, or a name that is
            not an identifier; `ConfigurationTypeError` for a value of the wrong kind.
    """
    label = name or into
    where = f"loop {label!r}"
    for what, value in (("until", until), ("into", into), ("name", name)):
        _identifier(what, value, where, optional=what == "name")
    graph = body_graph(body, where)
    message = f"{where}: `max_iterations` must be an int >= 1, got {max_iterations!r}"
    if not isinstance(max_iterations, int) or isinstance(max_iterations, bool):
        raise ConfigurationTypeError(message)
    if max_iterations < 1:
        raise ConfigurationError(message)
    if on_limit not in ON_LIMIT:
        raise ConfigurationError(f"{where}: `on_limit` must be 'raise' or 'last', got {on_limit!r}")
    if until not in graph._produced:
        raise StepDefinitionError(
            f"{where}: `until={until!r}` is not produced by the body (it produces "
            f"{sorted(graph._produced)})"
        )
    if carry is not None and not isinstance(carry, Mapping):
        raise ConfigurationTypeError(
            f"{where}: `carry` must be a mapping input -> value of the previous iteration, "
            f"got {carry!r}"
        )
    given = dict(carry or {})
    for target, source in given.items():
        _identifier("carry", target, where, optional=False)
        _identifier("carry", source, where, optional=False)
        if source not in graph._produced:
            raise StepDefinitionError(
                f"{where}: `carry` hands over {source!r}, which the body does not produce "
                f"(it produces {sorted(graph._produced)})"
            )
        if target not in graph._externals:
            raise StepDefinitionError(
                f"{where}: `carry` hands {source!r} to input {target!r}, which no step of "
                f"the body reads from outside"
            )
        if target not in graph._optional:
            raise StepDefinitionError(
                f"{where}: carried input {target!r} has no value in the first iteration; "
                f"give the parameter a default in {list(graph._readers[target])}"
            )
    params = tuple(sorted(graph._externals - given.keys()))
    return Loop(
        label,
        outside_a_flow,
        StepOptions(output=into),
        params,
        graph._optional & frozenset(params),
        body=graph,
        until=until,
        carry=MappingProxyType(given),
        max_iterations=max_iterations,
        on_limit=on_limit,
        speculate=speculate,
    )
