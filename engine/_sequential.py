"""Sequential mode: one node at a time, in the flow's order, in the run's own task.

The flow's node order is topological with the earliest-declared node first, so a flow
written in a valid order runs in the order it was written, each router before its chosen
branch. Nothing runs beside anything else, so no task is started per step: a step is one
`await` away from the run, which is what makes this mode cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._call import call
from ._routing import close_decision, consult_cache, open_decision, without_lookup
from ._state import Scope

if TYPE_CHECKING:
    from ._graph import Router
    from ._state import RunState
    from ._step import Step

__all__ = ["run_in_order"]


async def run_in_order(run: RunState, scope: Scope) -> None:
    """Run every node of `scope`'s flow in order; stop at the first failure."""
    with scope.cancel_scope_here() as cancel_scope:
        try:
            if cancel_scope is None or scope.enter(cancel_scope):
                await _nodes(run, scope)
        finally:
            scope.close()


async def _nodes(run: RunState, scope: Scope) -> None:
    routers_at = scope.tables.routers_at
    for index, node in enumerate(scope.flow.nodes):
        if run.failures:
            return
        scope.launched |= 1 << index
        if routers_at[index]:
            if not await _router(run, scope, node):  # type: ignore[arg-type]
                return
        else:
            step: Step = node  # type: ignore[assignment]
            called = await call(run, scope, step)
            if not called.ok:
                return
            scope.write(step.output, called.value)
        scope.done += 1


async def _router(run: RunState, scope: Scope, node: Router) -> bool:
    kwargs = scope.gather(node.step.params)
    consulted = without_lookup(run, node) or await consult_cache(run, node, kwargs)
    found, verifying = consulted.found, consulted.verifying
    record = open_decision(run, scope, node, found, verifying)
    called = await call(run, scope, consulted.step, found, kwargs=kwargs)
    if not called.ok:
        return False
    route = close_decision(run, scope, node, record, called.value, kwargs, verifying, None)
    if route is None:
        return False
    branch = Scope(run, node.branches[route.label], scope, node, route.label, None)
    branch.router_execution = called.execution
    branch.choose(route.values)
    await run_in_order(run, branch)
    return not run.failures and branch.done == len(branch.flow.nodes)
