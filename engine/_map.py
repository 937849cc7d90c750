"""Map: run a sub-flow once per item of a list made during the run.

A `Map` is a node of a flow like a step: it starts when the list and every value its body
reads from outside exist, runs one `BodyScope` per item (trace path `"<map>[i]"`), and
writes the items' results, in input order, as one tuple. Items start in input order, at
most `max_parallel` at once, and their steps share the run's `max_concurrency` like any
others; in sequential mode they run one after another.

Trace: besides the items' own steps, a map records `"<map>.split"` (zero length, when the
list arrived: each item's steps wait on it) and its own entry (zero length, when the last
item ended: it waits on each item's result), so a critical path walks through the items
and `step_time` counts the items' work once.

A map whose list is a predicted value (a near match on the step that makes it) runs in
that prediction's overlay like any step downstream of it: its items start on the predicted
list. If the list proves wrong, the real map takes the items both lists share that had
finished (`Earlier`) and runs the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
from specroute.cache import UnencodableInputError, make_key
from specroute.routes import (
    ConfigurationError,
    ConfigurationTypeError,
    RunError,
    SpecrouteError,
    StepDefinitionError,
)

from ._checkpoint import Checkpoint, Saved, Writer
from ._expand import (
    KEPT,
    BodyScope,
    body_graph,
    child_path,
    outside_a_flow,
    producers,
    run_body,
    run_in_sequence,
    run_together,
)
from ._graph import Expansion
from ._state import Execution
from ._step import StepOptions
from ._trace import StepStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._graph import Graph, Router
    from ._state import RunState, Scope
    from ._step import Step

__all__ = ["ItemFailed", "Map", "map_"]

OnError = Literal["raise", "collect"]
ON_ERROR: tuple[OnError, ...] = ("raise", "collect")


@attrs.frozen(kw_only=True)
class ItemFailed:
    """What a map with `on_error="collect"` holds in place of a failed item's result.

    Attributes:
        index: The item's position in the list.
        item: The item itself.
        error: Why it failed (a `StepFailedError` naming the step and the item's path).
    """

    index: int
    item: Any
    error: SpecrouteError


@attrs.frozen(eq=False, repr=False)
class Map(Expansion):
    """A sub-flow mapped over a list value. Build one with `map_()`.

    Attributes:
        over: The list value it maps over.
        item: The name each item is read under by the body.
        result: The body output taken as each item's result.
        max_parallel: Items in flight at once (None: no cap beyond the run's).
        on_error: `"raise"` (an item's failure fails the run) or `"collect"` (it becomes an
            `ItemFailed` in the map's value, and the other items go on).
        checkpoint: The folder finished items are written to and resumed from (None: none).
    """

    over: str = attrs.field(kw_only=True)
    item: str = attrs.field(kw_only=True)
    result: str = attrs.field(kw_only=True)
    max_parallel: int | None = attrs.field(kw_only=True, default=None)
    on_error: OnError = attrs.field(kw_only=True, default="raise")
    checkpoint: Path | None = attrs.field(kw_only=True, default=None)

    async def expand(
        self, run: RunState, scope: Scope, kwargs: dict[str, Any], execution: Execution
    ) -> tuple[Any, ...]:
        """Run the body once per item; the items' results in input order."""
        items = _as_list(kwargs[self.over], self.name, self.over)
        at = run.now()
        split = Execution(
            scope,
            f"{self.name}.split",
            self.params,
            None,
            at,
            not scope.confirmed,
            at,
            StepStatus.OK,
        )
        run.executions.append(split)
        checkpoint = None if self.checkpoint is None else Checkpoint(self.checkpoint, self.name)
        keys = [] if checkpoint is None else [checkpoint.key(item) for item in items]
        resumed = {} if checkpoint is None else await checkpoint.load(keys)
        provides = self.body._produced | {self.item}
        isolated = self.on_error == "collect"
        prefix = child_path(scope, f"{self.name}[")
        earlier = Earlier.find(run, scope, self)
        scopes: list[BodyScope] = []
        pending: list[BodyScope] = []
        taken: list[BodyScope] = []
        for index, item in enumerate(items):
            child = BodyScope(
                run,
                self.body,
                scope,
                f"{prefix}{index}]",
                provides,
                isolated=isolated,
            )
            child.values[self.item] = item
            child.router_execution = split
            scopes.append(child)
            if index in resumed:
                self._resume(run, child, resumed[index])
            elif earlier is not None and earlier.take(run, child, item):
                taken.append(child)
            else:
                pending.append(child)
        if checkpoint is None:
            await self._run_items(run, scope, pending, None)
        else:
            position = {child: index for index, child in enumerate(scopes)}
            async with trio.open_nursery() as nursery:
                writer = Writer(checkpoint, nursery.cancel_scope)
                nursery.start_soon(writer.run)

                def finished(child: BodyScope) -> None:
                    index = position[child]
                    writer.put(Saved(index, keys[index], child.values[self.result]))

                for child in taken:
                    finished(child)
                with writer.send:
                    await self._run_items(run, scope, pending, finished)
            if writer.error is not None:
                raise writer.error
        results: list[Any] = []
        for index, child in enumerate(scopes):
            if child.failure is not None:
                results.append(ItemFailed(index=index, item=items[index], error=child.failure))
            elif self.result in child.values:
                results.append(child.values[self.result])
            else:
                raise RunError(
                    f"map {self.name!r}: item {index} ended without its result "
                    f"{self.result!r} (an internal error of specroute; please report it)"
                )
        # The map's own entry is the gathering of the results: zero length, at the end.
        execution.start = run.now()
        execution.waits = producers(run, scopes, frozenset((self.result,)))
        return tuple(results)

    def _resume(self, run: RunState, child: BodyScope, result: Any) -> None:
        """An item done by an earlier run: its saved result, in the trace as `cached`."""
        now = run.now()
        resumed = Execution(
            child,
            f"{self.name}.resumed",
            (self.item,),
            self.result,
            now,
            False,
            now,
            StepStatus.CACHED,
        )
        resumed.speculative = not child.confirmed
        run.executions.append(resumed)
        child.values[self.result] = result
        child.closed = True

    async def _run_items(
        self,
        run: RunState,
        scope: Scope,
        pending: list[BodyScope],
        finished: Callable[[BodyScope], None] | None,
    ) -> None:
        """Run the items not done yet; `finished` is told of each that produced its result."""
        if scope.nursery is None:  # sequential mode: one item after another, in this task
            await run_in_sequence(run, pending, finished)
            return
        if not pending:
            return
        limiter = None if self.max_parallel is None else trio.CapacityLimiter(self.max_parallel)
        if not pending[0].isolated:
            await run_together(run, pending, limiter, finished)
            return
        async with trio.open_nursery() as nursery:
            for child in pending:
                token = None
                if limiter is not None:
                    token = object()
                    await limiter.acquire_on_behalf_of(token)
                nursery.start_soon(_item, run, child, limiter, token, finished)

    def __repr__(self) -> str:
        return f"<Map {self.name!r} over {self.over!r} writes {self.output!r}>"


class Earlier:
    """The items a map finished on a predicted list that proved wrong (`_predicted`): an
    item of the real list equal to one of them, read by the same body with nothing else
    the prediction changed, computes the same result, so the map takes it instead of
    running it again (`"<map>.reused"` in the trace, waiting on the earlier item's steps).
    Only items that finished before the prediction was refuted are kept; the rest were
    cancelled with it."""

    __slots__ = ("by_key", "by_scope", "map")

    def __init__(self, map: Map, by_key: dict[str, list[BodyScope]]) -> None:
        self.map = map
        self.by_key = by_key
        # The earlier items' executions, found in one pass over the run's records.
        self.by_scope: dict[Scope, list[Execution]] = {}

    @classmethod
    def find(cls, run: RunState, scope: Scope, map: Map) -> Earlier | None:
        """The finished items of `map` in refuted predictions in `scope` (None: none)."""
        by_key: dict[str, list[BodyScope]] = {}
        reads = frozenset(map.params[1:])
        for guess in run.guesses:
            overlay = guess.child
            if guess.scope is not scope or guess.confirmed is not False or overlay is None:
                continue
            if reads & overlay.provides:
                continue  # the body read something else the prediction changed
            prefix = child_path(overlay, f"{map.name}[")
            for other in run.scopes:
                if (
                    isinstance(other, BodyScope)
                    and other.parent is overlay
                    and other.path.startswith(prefix)
                    and other.done == len(other.flow.nodes)
                    and other.failure is None
                    and map.result in other.values
                    and not other.pending_stores
                    and not other.chosen_children
                ):
                    key = _item_key(map, other.values[map.item])
                    if key is not None:
                        by_key.setdefault(key, []).append(other)
        if not by_key:
            return None
        earlier = cls(map, by_key)
        found = {other for scopes in by_key.values() for other in scopes}
        for execution in run.executions:
            if execution.scope in found:
                earlier.by_scope.setdefault(execution.scope, []).append(execution)
        return earlier

    def take(self, run: RunState, child: BodyScope, item: Any) -> bool:
        """Give `child` the result of an earlier equal item, if there is one left."""
        key = _item_key(self.map, item)
        same = self.by_key.get(key, []) if key is not None else []
        if not same:
            return False
        earlier = same.pop(0)
        result = self.map.result
        done = self.by_scope.get(earlier, [])
        at = run.now()
        taken = Execution(
            child, f"{self.map.name}.reused", (self.map.item,), result, at, False, at, StepStatus.OK
        )
        taken.speculative = not child.confirmed
        taken.waits = [e for e in done if e.output == result and e.status in KEPT]
        if child.committed:
            # Work started on the wrong list that the right one used after all.
            for execution in done:
                execution.wasted = False
        run.executions.append(taken)
        child.values[result] = earlier.values[result]
        child.closed = True
        return True


def _item_key(map: Map, item: Any) -> str | None:
    """A digest of `item` (None: it has none, so it is never taken from elsewhere)."""
    try:
        return make_key(f"map:{map.name}", "reuse", "default", {"item": item}).digest
    except UnencodableInputError:
        return None


async def _item(
    run: RunState,
    child: BodyScope,
    limiter: trio.CapacityLimiter | None,
    token: object,
    finished: Callable[[BodyScope], None] | None,
) -> None:
    try:
        await run_body(run, child)
    finally:
        if limiter is not None:
            limiter.release_on_behalf_of(token)
    if finished is not None and child.failure is None:
        finished(child)


def _as_list(value: object, name: str, over: str) -> Sequence[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(
            f"map {name!r} maps over {over!r}, which must be a list (or another iterable "
            f"that is not a string or mapping), got {type(value).__name__} {value!r:.80}"
        )
    return value if isinstance(value, list | tuple) else list(value)


def map_(
    body: Graph | Step | Sequence[Step | Router],
    *,
    over: str,
    into: str,
    item: str | None = None,
    result: str | None = None,
    max_parallel: int | None = None,
    on_error: OnError = "raise",
    checkpoint: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Map:
    """Map `body` over the list value `over`: one run of the body per item, in parallel.

    The map is a node of a flow like a step: it starts when `over` and every value the body
    reads from outside exist, and writes a tuple of the items' results, in input order,
    under `into`. Each item runs in a scope of its own (trace branch `"<name>[i]"`), reads
    its item under `item` and the enclosing flow's values, and writes only its own values.
    In a speculative branch the map is speculative like everything in it: a lost branch
    cancels all its items, and their effects wait until the branch is confirmed. When
    `over` is a predicted value (a semantic near match on the step that makes the list,
    where the policy's `speculate_value` allows), the items start on the predicted list;
    if the real list differs, each of its items equal to one that finished on the guess
    takes that result (`"<name>.reused"` in the trace) and the others run.

    Args:
        body: The sub-flow run per item: a `Flow`, a list of steps and routers, or one step.
        over: The name of the list value to map over.
        into: The name the tuple of results is written under.
        item: The name the body reads each item under (default: the body's one value read
            from outside, when it has exactly one).
        result: The body output taken as each item's result (default: the body's one
            output, when it has exactly one).
        max_parallel: Items in flight at once (default: no cap beyond the run's
            `max_concurrency`, which the items' steps share).
        on_error: `"raise"`: an item's failure fails the run (or the enclosing branch) like
            any step's. `"collect"`: the failed item is cancelled, its place in the result
            holds an `ItemFailed`, and the other items go on.
        checkpoint: A folder that makes the map resumable: each item's result is written
            there as the item ends (one JSON file per item, named by a digest of the item
            and the map's name), and a later run over a list holding equal items takes
            their results from there instead of running them again (they show in the
            trace as `"<name>.resumed"`, `cached`). Results must be JSON data, and come
            back as JSON data; failed items are not written, so they run again. Delete the
            folder when the body changes.
        name: The map's name in traces, errors and the observer (default: `into`).

    Returns:
        The `Map`, to put in a `Flow` like a step.

    Raises:
        StepDefinitionError: `item` or `result` not given and not clear from the body, an
            `item` the body does not read or produces itself, or a `result` it does not
            produce.
        ConfigurationError: `max_parallel` < 1, an unknown `on_error`, or a name that is
            not an identifier; `ConfigurationTypeError` for a value of the wrong kind
            (a `checkpoint` that is not a path).
    """
    label = name or into
    where = f"map {label!r}"
    for what, value in (("over", over), ("into", into), ("item", item), ("name", name)):
        _identifier(what, value, where, optional=what in ("item", "name"))
    graph = body_graph(body, where)
    if item is None:
        if len(graph._externals) != 1:
            raise StepDefinitionError(
                f"{where}: say which value the body reads each item under with `item=`; "
                f"it reads {sorted(graph._externals)} from outside"
            )
        (item,) = graph._externals
    if item not in graph._externals:
        raise StepDefinitionError(
            f"{where}: the body never reads `item={item!r}` from outside (it reads "
            f"{sorted(graph._externals)}); name the parameter its first step takes"
        )
    result = _result(graph, result, where)
    if item == over:
        raise StepDefinitionError(
            f"{where}: `item` and `over` are both {item!r}; give the item its own name"
        )
    if max_parallel is not None:
        message = f"`max_parallel` must be None or an int >= 1, got {max_parallel!r}"
        if not isinstance(max_parallel, int) or isinstance(max_parallel, bool):
            raise ConfigurationTypeError(f"{where}: {message}")
        if max_parallel < 1:
            raise ConfigurationError(f"{where}: {message}")
    if on_error not in ON_ERROR:
        raise ConfigurationError(
            f"{where}: `on_error` must be 'raise' or 'collect', got {on_error!r}"
        )
    if checkpoint is not None and not isinstance(checkpoint, str | os.PathLike):
        raise ConfigurationTypeError(
            f"{where}: `checkpoint` must be None or a folder path, got {checkpoint!r}"
        )
    outside = sorted(graph._externals - {item})
    params = (over, *(n for n in outside if n != over))
    return Map(
        label,
        outside_a_flow,
        StepOptions(output=into),
        params,
        graph._optional & frozenset(params),
        body=graph,
        over=over,
        item=item,
        result=result,
        max_parallel=max_parallel,
        on_error=on_error,
        checkpoint=None if checkpoint is None else Path(checkpoint),
    )


def _result(graph: Graph, result: str | None, where: str) -> str:
    if result is None:
        if len(graph.outputs) != 1:
            raise StepDefinitionError(
                f"{where}: say which body output is each item's result with `result=`; "
                f"the body's outputs are {sorted(graph.outputs)}"
            )
        (result,) = graph.outputs
    if result not in graph._produced:
        raise StepDefinitionError(
            f"{where}: `result={result!r}` is not produced by the body (it produces "
            f"{sorted(graph._produced)})"
        )
    return result


def _identifier(what: str, value: object, where: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    message = f"{where}: `{what}` must be a value name (an identifier), got {value!r}"
    if not isinstance(value, str):
        raise ConfigurationTypeError(message)
    if not value.isidentifier():
        raise ConfigurationError(message)
