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
    RunError,
    SpecrouteError,
    StepDefinitionError,
)

from ._expand import BodyScope, body_graph, outside_a_flow, producers, run_body
from ._graph import Expansion
from ._map import _identifier
from ._step import StepOptions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._graph import Graph, Router
    from ._state import Execution, RunState, Scope
    from ._step import Step

__all__ = ["Loop", "LoopLimitError", "LoopResult", "loop"]

OnLimit = Literal["raise", "last"]
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
    """

    until: str = attrs.field(kw_only=True)
    carry: Mapping[str, str] = attrs.field(kw_only=True)
    max_iterations: int = attrs.field(kw_only=True)
    on_limit: OnLimit = attrs.field(kw_only=True, default="raise")

    async def expand(
        self, run: RunState, scope: Scope, kwargs: dict[str, Any], execution: Execution
    ) -> LoopResult:
        """Run iterations until `until` is true or the bound is hit."""
        carried = frozenset(self.carry)
        last: BodyScope | None = None
        done = False
        iterations = 0
        while iterations < self.max_iterations and not done:
            iterations += 1
            child = BodyScope(
                run,
                self.body,
                scope,
                f"{self.name}#{iterations}",
                carried if last is not None else frozenset(),
                isolated=False,
            )
            if last is not None:
                for name, source in self.carry.items():
                    child.values[name] = last.values[source]
                # The carried values came from the previous iteration's end.
                child.router_execution = self._decider(run, last)
            await run_body(run, child)
            # A failure in the iteration has cancelled an enclosing scope.
            await trio.lowlevel.checkpoint_if_cancelled()
            if self.until not in child.values:
                raise RunError(
                    f"loop {self.name!r}: iteration {iterations} ended without "
                    f"{self.until!r} (an internal error of specroute; please report it)"
                )
            done = bool(child.values[self.until])
            last = child
        assert last is not None  # max_iterations >= 1
        if not done and self.on_limit == "raise":
            raise LoopLimitError(
                f"loop {self.name!r} ran its {self.max_iterations} iterations and "
                f"{self.until!r} was still false; raise `max_iterations=`, or pass "
                f"`on_limit='last'` to go on with the last iteration's outputs"
            )
        # The loop's own entry is the gathering of the last iteration: zero length, at the end.
        execution.start = run.now()
        execution.waits = producers(run, (last,), self.body._produced)
        outputs = {name: last.values[name] for name in self.body._produced if name in last.values}
        return LoopResult(outputs=MappingProxyType(outputs), iterations=iterations, converged=done)

    def _decider(self, run: RunState, last: BodyScope) -> Execution | None:
        found = producers(run, (last,), frozenset((self.until,)))
        return found[-1] if found else None

    def __repr__(self) -> str:
        return f"<Loop {self.name!r} until {self.until!r} writes {self.output!r}>"


def loop(
    body: Graph | Step | Sequence[Step | Router],
    *,
    until: str,
    into: str,
    max_iterations: int,
    carry: Mapping[str, str] | None = None,
    on_limit: OnLimit = "raise",
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
    )
