"""The scopes a map or a loop runs its body in, and how a body runs in each mode.

Each map item and each loop iteration is a `BodyScope`: a child of the scope that holds the
map (or loop), reading its values and writing only its own. It is not a speculation: it
counts as chosen, so what it computes is kept whenever its enclosing scope is, and it is
confirmed with its enclosing scope, so its effects wait exactly as its enclosing branch's
do. A lost enclosing branch cancels it with everything else in that branch. (The one
exception is a speculating loop's next iteration, made `speculative`: it is chosen with
`Scope.choose` or cancelled, exactly as a speculative branch.)

A failure inside it goes up like a failure in a chosen branch (it fails the enclosing
branch, or the run), unless the scope is `isolated`: then only the scope itself is cancelled
and the failure stays in `failure`, for the map to report in its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from specroute.routes import StepDefinitionError

from ._call import call
from ._graph import Graph, _branch

# `_nodes` is the sequential scheduler's loop over one scope's nodes, without the cancel
# scope `run_in_order` opens around it: items that are never cancelled one by one share one.
from ._sequential import _nodes as run_nodes_in_order
from ._sequential import run_in_order
from ._state import Execution, Scope, add, start_each
from ._step import Step
from ._trace import StepStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from specroute.routes import SpecrouteError

    from ._state import RunState

__all__ = [
    "BodyScope",
    "Gathering",
    "body_graph",
    "child_path",
    "outside_a_flow",
    "producers",
    "run_body",
    "run_in_sequence",
    "run_together",
]

KEPT = frozenset((StepStatus.OK, StepStatus.CACHED, StepStatus.RECOVERED))


class Gathering:
    """The items of one map that run in one shared nursery: how many are left, and the
    per-map cap each holds a slot of (the item scope is the borrower) until it is done."""

    __slots__ = ("all_done", "finished", "left", "limiter")

    def __init__(
        self,
        left: int,
        limiter: trio.CapacityLimiter | None,
        finished: Callable[[BodyScope], None] | None,
    ) -> None:
        self.left = left
        self.limiter = limiter
        self.finished = finished
        self.all_done = trio.Event()

    def item_done(self, scope: BodyScope) -> None:
        if self.limiter is not None:
            self.limiter.release_on_behalf_of(scope)
        if self.finished is not None:
            self.finished(scope)
        self.left -= 1
        if self.left == 0:
            self.all_done.set()


class ItemEnd:
    """Stands in for a body scope's `finished` event, which the scope's last node to end
    sets (`Scope.node_done`, and the step path's inlined copy of it): it counts the item
    done for its gathering. No event, and no task waiting on one, per item."""

    __slots__ = ("gathering", "scope")

    def __init__(self, gathering: Gathering, scope: BodyScope) -> None:
        self.gathering = gathering
        self.scope = scope

    def set(self) -> None:
        self.gathering.item_done(self.scope)


class BodyScope(Scope):
    """One map item or loop iteration: a chosen child scope under `parent`, at `path` (see
    `child_path`)."""

    __slots__ = ("isolated",)

    stops_with_parent = False  # an isolated item cancels itself when it fails

    def __init__(
        self,
        run: RunState,
        flow: Graph,
        parent: Scope,
        path: str,
        provides: frozenset[str],
        *,
        isolated: bool,
        speculative: bool = False,
        limit: int | None = None,
    ) -> None:
        # Called once per map item: `Scope.__init__` directly, the path made by the caller.
        # `provides`: what it provides itself (its body's values and, say, a map's item).
        Scope.__init__(self, run, flow, parent, None, "", limit, provides)
        self.isolated = isolated
        self.path = path
        if speculative:
            # Started before it is known to be needed: chosen (`Scope.choose`) or cancelled,
            # exactly as a speculative branch; past `limit` its nodes wait to be chosen.
            self.chosen = self.confirmed = False
        elif not parent.confirmed:
            # Confirmed with its enclosing branch (`Scope.confirm` walks chosen children).
            self.confirmed = False
            parent.chosen_children = add(parent.chosen_children, self)

    @property
    def where(self) -> str:
        return " in " + repr(self.path)

    def fail(self, error: SpecrouteError) -> None:
        if not self.isolated:
            super().fail(error)
            return
        if self.failure is None:
            self.failure = error
        self.cancel()


def child_path(parent: Scope, label: str) -> str:
    """The trace path of a body scope named `label` under `parent`."""
    return f"{parent.path}/{label}" if parent.path else label


async def run_body(run: RunState, scope: BodyScope) -> None:
    """Run a body scope the way its enclosing scope runs: in order in this task (sequential
    mode, where no scope has a nursery), else as dataflow in a nursery of its own."""
    parent = scope.parent
    assert parent is not None
    if parent.nursery is None:
        await run_in_order(run, scope)
    else:
        await scope.run_nodes()


async def run_together(
    run: RunState,
    scopes: list[BodyScope],
    limiter: trio.CapacityLimiter | None,
    finished: Callable[[BodyScope], None] | None = None,
) -> None:
    """Run body scopes that are not isolated side by side in one nursery, starting them in
    order as `limiter` (if any) lets them; return when all are done. `finished` is told of
    each scope as its last node ends.

    No task and no nursery per scope: a scope's ready nodes start in the shared nursery (the
    first plain one as a task of its own, a chain in that task), and its last node to end
    counts it done (`ItemEnd`). Scopes that are not isolated are never cancelled one by one
    (a failure cancels an enclosing scope), so they can share the nursery's cancel scope.
    Where nothing is told of each scope's end (no cap, no `finished`), every node a scope
    will run is a task of the nursery before the one before it ends, so leaving the nursery
    waits for them all, and scopes after the first are not tracked one by one.
    """
    gathering = Gathering(len(scopes), limiter, finished)
    started = 0
    track = True
    # What the first scope's `begin` counted, for the others to copy (None: each counts).
    template: list[int] | None = None
    ready: list[int] = []
    shared = False
    try:
        async with trio.open_nursery() as nursery:
            cancel_scope = nursery.cancel_scope
            for scope in scopes:
                assert not scope.isolated
                if limiter is not None:
                    await limiter.acquire_on_behalf_of(scope)
                if track:
                    scope.finished = ItemEnd(gathering, scope)  # type: ignore[assignment]
                else:
                    gathering.left -= 1
                scope.nursery = nursery
                started += 1
                if not scope.enter(cancel_scope, shared=True):
                    return
                if template is None:
                    scope.begin()
                    if scope.doomed:
                        return
                    if not (scope.waits_outside or scope.may_park):
                        # Every later scope counts the same: what it reads from outside
                        # exists already (values never go away), and nothing parks.
                        template = scope.missing.copy()
                        ready = [index for index, count in enumerate(template) if count == 0]
                        # No node waiting for another: nothing ever counts down, so all
                        # scopes can share one list.
                        shared = not any(template)
                        # A node queued for the run's cap is no task yet: then track all.
                        untold = limiter is None and finished is None and run.limiter is None
                        track = not untold
                    continue
                # Without a cap nothing awaited since the first scope was found not doomed.
                if limiter is not None and scope.doomed:
                    return
                scope.missing = template if shared else template.copy()
                start_each(run, scope, ready)
            if gathering.left:
                await gathering.all_done.wait()
    finally:
        for scope in scopes[:started]:
            # `Scope.close`, inline: one call fewer per map item.
            scope.closed = True
            if scope.done < len(scope.flow.nodes):
                scope._record_skipped()
            # No cycle through the gathering outlives the run.
            scope.finished = None


async def run_in_sequence(
    run: RunState, scopes: list[BodyScope], finished: Callable[[BodyScope], None] | None = None
) -> None:
    """Sequential mode: run body scopes one after another in this task, under one cancel
    scope for all of them when they are not isolated (a cancel scope costs as much as a
    small step); `finished` is told of each scope that produced its values."""
    if scopes and not scopes[0].isolated:
        flow = scopes[0].flow
        count = len(flow.nodes)
        # Steps only (no router): each item's steps are awaited right here, one `call` each
        # (`run_in_order`'s loop, without a coroutine of its own per item).
        steps: Sequence[Step] | None = None
        if not any(flow._tables.routers_at):
            steps = flow.nodes  # type: ignore[assignment]
        with trio.CancelScope() as shared:
            for scope in scopes:
                if not scope.enter(shared, shared=True):
                    return
                try:
                    if steps is None:
                        await run_nodes_in_order(run, scope)
                    else:
                        for index, step in enumerate(steps):
                            if run.failures:
                                break
                            scope.launched |= 1 << index
                            called = await call(run, scope, step)
                            if not called.ok:
                                break
                            scope.write(step.output, called.value)
                            scope.done += 1
                finally:
                    scope.close()
                if scope.done < count:
                    # A failure has cancelled an enclosing scope: stop here.
                    await trio.lowlevel.checkpoint_if_cancelled()
                    return
                if finished is not None:
                    finished(scope)
        return
    for scope in scopes:
        await run_in_order(run, scope)
        await trio.lowlevel.checkpoint_if_cancelled()
        if finished is not None and scope.failure is None:
            finished(scope)


def producers(run: RunState, scopes: Iterable[Scope], names: frozenset[str]) -> list[Execution]:
    """The executions in `scopes` whose kept values are named in `names`, in run order."""
    wanted = set(scopes)
    return [
        execution
        for execution in run.executions
        if execution.scope in wanted and execution.output in names and execution.status in KEPT
    ]


def body_graph(body: object, where: str) -> Graph:
    """A body as a graph: a `Flow`, a list of steps and routers, or one step."""
    if isinstance(body, Step):
        return Graph([body], name=body.name)
    return _branch(body, "body", where)


async def outside_a_flow(**values: Any) -> Any:
    """The `fn` of a map or loop: it runs only as a node of a flow."""
    raise StepDefinitionError(
        "a map or loop runs only inside a flow: put it in a Flow and run the flow"
    )
