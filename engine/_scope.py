"""A scope: one flow execution, the top level or a branch, overlaid on its parent's values.

Each branch execution gets a child scope, its overlay: it reads its ancestors' values and
writes only its own. When a router picks a branch, the branch's outputs are written
through to its parent (and, from then on, every output it writes); a losing branch is
cancelled and its overlay dropped, so nothing it wrote is ever seen. A scope starts each of
its nodes the moment the node's inputs exist, unless a barrier holds it: past a
speculation's step limit (until the branch is chosen) or an effect (until every enclosing
branch is confirmed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from specroute.cache import CacheError, CacheMiss
from specroute.routes import RunError, SpecrouteError

from ._flow import Router
from ._trace import StepStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._flow import Flow
    from ._run import Run
    from ._step import Step

__all__ = ["Record", "Scope"]

_MISSING: Any = object()
SKIPPED = StepStatus.SKIPPED
# scope, step, start, end, status, speculative, error, similarity, LLM calls
Record = tuple["Scope", "Step", float, float, StepStatus, bool, Any, "float | None", Any]


class Scope:
    """One flow execution: the top level, or one branch (an overlay over its parent)."""

    def __init__(
        self,
        run: Run,
        flow: Flow,
        parent: Scope | None,
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
        self.watchers: dict[str, list[tuple[Scope, int]]] = {}
        self.missing: list[int] = []
        self.launched = [False] * len(flow.nodes)
        self.parked: list[int] = []
        self.done = 0
        self.finished = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.nursery: trio.Nursery | None = None
        self.chosen_children: list[Scope] = []
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
            scope: Scope | None = self
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
        # Nothing more starts in a scope that, or whose enclosing branch, was cancelled: its
        # nursery may already be closed (trio closes it when the body has left and the last
        # child ended, before our `finally` runs), for instance when a nested router answers
        # in the very instant its enclosing branch loses.
        if self.doomed:
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
                provider: Scope | None = self
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
        scope: Scope | None = self
        while scope is not None:
            if scope.closed or scope.cancel_scope.cancel_called:
                return True
            scope = scope.parent
        return False

    @property
    def committed(self) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if not scope.chosen:
                return False
            scope = scope.parent
        return True
