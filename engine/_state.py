"""Run state: the values of one run, its branch overlays and the barriers that hold steps.

A run is a tree of scopes. The top scope holds the run's inputs and committed values; each
branch execution gets a child scope, its overlay: it reads its ancestors' values and writes
only its own. When a router picks a branch, the branch's outputs are written through to
its parent (and, from then on, every output it writes); a losing branch is cancelled and
its overlay dropped, so nothing it wrote is ever seen. A scope starts each node the moment
its inputs exist, unless a barrier holds it: past a speculation's step limit (until the
branch is chosen) or an effect (until every enclosing branch is confirmed).

This layer knows values and barriers, not how a node runs: it hands a ready node to the
run's `start_step` / `start_router`, which the scheduler (a layer up) provides.

Reference cycles: a scope points at its run and parent, and the run lists its scopes and
records. `RunState.close` breaks these links when the run ends, so a finished run is freed
by reference counting alone and leaves nothing for the cyclic garbage collector.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import trio
from specroute.cache import CacheError
from specroute.routes import RunError, SpecrouteError

from ._step import Step
from ._trace import StepStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
    from contextlib import AbstractContextManager

    from specroute.cache import CacheMiss, StepCache
    from specroute.routes import LearnedState, Prediction, SpeculationPolicy

    from ._graph import Downstream, Graph, Router
    from ._observer import RunObserver
    from ._usage import RunMeter

__all__ = [
    "NOTHING",
    "Decision",
    "Execution",
    "Guess",
    "PendingStore",
    "RunState",
    "Scope",
    "add",
    "flush",
    "skipped_executions",
    "start_each",
    "store",
    "unstarted_steps",
]

_MISSING: Any = object()
SKIPPED = StepStatus.SKIPPED
# In place of a list that most runs and scopes never add to (failures, parked nodes, chosen
# children, pending stores, ...): one shared empty tuple, replaced by a list on the first
# add. Every object a run keeps alive is more work for the cyclic collector while 1000
# runs are in flight.
NOTHING: Any = ()
_NO_EXPORTS: frozenset[str] = frozenset()
# What a scope that needs no cancel scope of its own runs under (see `Scope.cancel_scope_here`).
_UNDER_ENCLOSING: AbstractContextManager[None] = contextlib.nullcontext()


class Execution:
    """One step execution as the scheduler records it (mutable: it is built on the per-step
    path; the frozen `TraceEntry` is made from it when the run ends).

    The fields every execution sets are slots; the ones few set are class attributes, and an
    execution that sets one gets an instance dict for it. Building one is then a frame of
    nine slot stores (about 100 ns less than shared-key instance attributes), and a plain
    step builds it once, when it ends, with everything it knows.
    """

    __slots__ = (
        "__dict__",
        "calls",
        "end",
        "name",
        "output",
        "params",
        "scope",
        "speculative",
        "start",
        "status",
    )

    # Set by the few executions that need them; these are the defaults for all others.
    error: BaseException | None = None
    similarity: float | None = None
    # None: wasted exactly when its scope was not committed; a prediction decides its own.
    wasted: bool | None = None
    # A streamed step's stream (its items and when the first came).
    stream: Any = None
    # A step that read streams: seconds it spent waiting for their items.
    stream_wait: float | None = None
    # Executions it waited on besides the producers of its params (a map's items).
    waits: list[Execution] | None = None

    def __init__(
        self,
        scope: Scope,
        name: str,
        params: tuple[str, ...],
        output: str | None,
        start: float,
        speculative: bool,
        end: float,
        status: StepStatus = StepStatus.CANCELLED,
        calls: Any = None,
    ) -> None:
        self.scope = scope
        self.name = name
        self.params = params
        self.output = output
        self.start = start
        self.end = end
        self.status = status
        self.speculative = speculative
        self.calls = calls


class Guess:
    """One predicted value: a near match, or a loop's predicted "valid" (built into a public
    `PredictedValue`)."""

    __slots__ = (
        "adopted",
        "at",
        "child",
        "confirmed",
        "downstream",
        "finished",
        "note",
        "scope",
        "similarity",
        "speculated",
        "step",
        "value",
    )

    def __init__(self, scope: Scope, step: str, value: Any, similarity: float) -> None:
        self.scope = scope
        self.step = step
        self.value = value
        self.similarity = similarity
        self.speculated = False
        self.confirmed: bool | None = None
        self.at: float | None = None
        self.note = ""
        self.child: Scope | None = None
        self.downstream: Downstream | None = None
        self.adopted = False
        self.finished = False


class Decision:
    """What one router execution predicted, planned and said (built into a public
    `RouterDecision` when the run ends)."""

    __slots__ = (
        "at",
        "cache",
        "handoff_confirmed",
        "label",
        "note",
        "order",
        "plan",
        "prediction",
        "reasons",
        "router",
        "scope",
        "similarity",
    )

    def __init__(self, scope: Scope, router: str) -> None:
        self.scope = scope
        self.router = router
        self.prediction: Prediction | None = None
        self.note = ""
        self.plan: Mapping[str, int | None] = {}
        self.reasons: Mapping[str, Any] = {}
        self.cache: str | None = None
        self.similarity: float | None = None
        self.label: str | None = None
        self.at: float | None = None
        # Its place among the run's answers (None: it never answered).
        self.order: int | None = None
        self.handoff_confirmed: bool | None = None


class PendingStore:
    """A computed value waiting to enter the cache until its branch is confirmed."""

    __slots__ = ("miss", "scope", "seconds", "step", "value")

    def __init__(self, scope: Scope, step: str, miss: CacheMiss, value: Any, seconds: float):
        self.scope = scope
        self.step = step
        self.miss = miss
        self.value = value
        self.seconds = seconds


async def store(store: PendingStore, cache: StepCache) -> None:
    """Put a confirmed value in the cache; a value the cache refuses fails its step's scope."""
    try:
        await cache.store(store.miss, store.value, seconds=store.seconds)
    except CacheError as exc:
        scope = store.scope
        failure = RunError(f"step {store.step!r}{scope.where}: {exc}")
        failure.__cause__ = exc
        scope.fail(failure)


async def flush(run: RunState) -> None:
    """Store every value whose branch was confirmed since the last flush."""
    while run.confirmed_stores and run.cache is not None:
        await store(run.confirmed_stores.pop(0), run.cache)


class RunState:
    """State shared by every scope of one run. The scheduler subclasses it to say how a
    ready node starts (`start_step`, `start_router`)."""

    __slots__ = (
        "__weakref__",
        "answers",
        "cache",
        "cache_hits",
        "cache_misses",
        "cache_saved",
        "confirmed_stores",
        "decisions",
        "executions",
        "failures",
        "guesses",
        "learned",
        "limiter",
        "meter",
        "namespace",
        "now",
        "observer",
        "policy",
        "scopes",
        "skipped",
        "tail_index",
        "tail_scope",
        "top",
    )

    def __init__(
        self,
        policy: SpeculationPolicy | None,
        limiter: trio.CapacityLimiter | None,
        cache: StepCache | None,
        namespace: str,
        observer: RunObserver | None,
        learned: LearnedState,
        meter: RunMeter,
    ) -> None:
        self.policy = policy
        self.limiter = limiter
        self.cache = cache
        self.namespace = namespace
        self.observer = observer
        self.learned = learned
        self.meter = meter
        # The run's clock, read without trio.current_time()'s two layers of lookup.
        self.now = trio.lowlevel.current_clock().current_time
        self.cache_hits = 0
        self.cache_misses = 0
        self.cache_saved = 0.0
        self.executions: list[Execution] = []
        self.scopes: list[Scope] = []
        # The rest start as `NOTHING` and become lists when first added to (`add`).
        # Scopes that closed with nodes never started: (where in `executions` their skipped
        # records go, the scope, when, whether it was speculative then). The records are made
        # only if the trace is built.
        self.skipped: list[tuple[int, Scope, float, bool]] = NOTHING
        self.decisions: list[Decision] = NOTHING
        # How many routers have answered: each answer's place in that order (`Decision.order`).
        self.answers = 0
        self.failures: list[SpecrouteError] = NOTHING
        self.confirmed_stores: list[PendingStore] = NOTHING
        # Semantic near matches used as predicted values (`Guess`).
        self.guesses: list[Guess] = NOTHING
        # While a plain step's task writes its value, the one plain step of the same scope
        # that the write makes ready may run next in that task (see `run_plain_step`).
        self.tail_scope: Scope | None = None
        self.tail_index = -1
        self.top: Scope | None = None

    def start_step(self, scope: Scope, index: int) -> None:
        """Start step `index` of `scope`, whose inputs all exist."""
        raise NotImplementedError

    def start_router(self, scope: Scope, index: int) -> None:
        """Start router `index` of `scope`, whose inputs all exist."""
        raise NotImplementedError

    def start_ready(self, scope: Scope, ready: Sequence[int]) -> None:
        """Start the nodes `ready` of `scope`, which has just begun: each has all its inputs.
        Nothing is parked there and nothing runs meanwhile (see `Scope.begin`)."""
        start_each(self, scope, ready)

    def run_here(self, scope: Scope, index: int) -> Coroutine[Any, Any, None]:
        """Node `index` of `scope` to await in the calling task (a tail it took)."""
        raise NotImplementedError

    def take_tail(self) -> int:
        """The node the current task agreed to run next (-1: none), and stop offering."""
        index = self.tail_index
        self.tail_scope = None
        self.tail_index = -1
        return index

    def fail(self, error: SpecrouteError) -> None:
        self.failures = add(self.failures, error)
        if len(self.failures) == 1 and self.top is not None:
            self.top.cancel()

    def close(self) -> None:
        """Break the links between scopes and the run once nothing will use them again."""
        # A scope keeps its parent (the trace is built from those links): a child points
        # at its parent and never the other way once `chosen_children` is gone.
        for scope in self.scopes:
            scope.chosen_children = NOTHING
            scope.watchers = None
            scope.nursery = None
        self.scopes = self.executions = self.skipped = NOTHING
        self.decisions = self.confirmed_stores = self.guesses = NOTHING
        self.top = None
        # A guarded observer holds this run's `fail`: a cycle through the run otherwise.
        self.observer = None


class SerialNursery:
    """Stands in for the nursery of a scope whose nodes can only run one at a time
    (`Tables.serial`): a node started here runs next in the scope's own task."""

    __slots__ = ("queued", "wake")

    def __init__(self) -> None:
        # Most such scopes run in order and never queue a node (`Scope.in_order`).
        self.queued: list[tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]] = NOTHING
        self.wake: trio.Event | None = None

    def start_soon(
        self, node: Callable[..., Awaitable[None]], *args: Any, name: object = None
    ) -> None:
        self.queued = add(self.queued, (node, args))
        if self.wake is not None:
            self.wake.set()


class Scope:
    """One flow execution: the top level, or one branch (an overlay over its parent)."""

    __slots__ = (
        "__dict__",
        "__weakref__",
        "cancel_requested",
        "cancel_scope",
        "chosen",
        "chosen_children",
        "closed",
        "confirmed",
        "done",
        "exports",
        "finished",
        "flow",
        "in_order",
        "launched",
        "limit",
        "may_park",
        "missing",
        "nursery",
        "parent",
        "path",
        "picks",
        "provides",
        "router_execution",
        "run",
        "shares_cancel_scope",
        "tables",
        "values",
        "waits_outside",
        "watchers",
    )

    # What few scopes ever set are class attributes, as in `Execution`: a scope that sets one
    # gets an instance dict for it, and every other scope (one per map item) stores fewer.
    # A run's timeout, on its top scope.
    deadline: float | None = None
    # Why this branch failed before it was chosen (see `fail`).
    failure: SpecrouteError | None = None
    # Nodes held by a barrier (see `ready`), sorted when released.
    parked: list[int] = NOTHING
    # What this branch computed for the cache, stored only if the branch wins.
    pending_stores: list[PendingStore] = NOTHING

    # False in a subclass whose `write` does more (a loop's `Iteration` tells watchers of
    # its values): then the step path never stores a value around `write` (`Tables.unread`).
    writes_plainly = True
    # False in a subclass that may cancel itself once chosen (an isolated map item does when
    # it fails, a loop its iterations that are not needed), not only with an enclosing scope.
    stops_with_parent = True

    def __init__(
        self,
        run: RunState,
        flow: Graph,
        parent: Scope | None,
        router: Router | None,
        label: str,
        limit: int | None,
        provides: frozenset[str] | None = None,
    ) -> None:
        self.run = run
        run.scopes.append(self)
        self.flow = flow
        self.tables = tables = flow._tables
        self.parent = parent
        self.limit = limit
        self.values: dict[str, Any] = {}
        # Made on first use: most scopes are watched by none and wait on no Event.
        self.watchers: dict[str, list[tuple[Scope, int]]] | None = None
        self.missing: list[int] = []
        # Bit i set: node i was started (an int: no list per scope for the collector).
        self.launched = 0
        self.done = 0
        self.finished: trio.Event | None = None
        # The nursery's own cancel scope, once it is open; until then a cancel or a
        # deadline is only requested (one cancel scope per scope, not two).
        self.cancel_scope: trio.CancelScope | None = None
        self.cancel_requested = False
        # Its cancel scope is also other scopes' (map items): another's `cancel` cancels it.
        self.shares_cancel_scope = False
        self.nursery: trio.Nursery | SerialNursery | None = None
        self.chosen_children: list[Scope] = NOTHING
        self.closed = False
        self.router_execution: Execution | None = None
        self.waits_outside = False
        self.may_park = False
        # Set by `_run_serially`: only each node's predecessor makes it ready.
        self.in_order = False
        if parent is None or router is None:
            self.path = ""
            self.exports = _NO_EXPORTS
            self.chosen = self.confirmed = True
            self.provides = provides or flow._produced
            # A body scope's outside reads are mostly its own values (a map's item, a loop's
            # carried values): picked, and only a read from further out misses and gathers.
            self.picks = tables.picks
        else:
            prefix = f"{parent.path}/" if parent.path else ""
            self.path = f"{prefix}{router.name}:{label}"
            self.exports = router.outputs
            self.chosen = self.confirmed = False
            self.provides = router._provides[label]
            # A branch's outside reads are mostly its enclosing scopes' values: gathered.
            self.picks = tables.nested_picks

    @property
    def where(self) -> str:
        """Where the scope is, for messages: "" at the top, else " in branch '<path>'"."""
        return f" in branch {self.path!r}" if self.path else ""

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
        if self.nursery is not None and not self.closed:
            consumers = self.tables.consumers.get(name)
            if consumers:
                missing = self.missing  # `satisfy`, inline: one call fewer per reader
                for index in consumers:
                    missing[index] -= 1
                    if not missing[index]:
                        self.ready(index)
        if self.watchers:
            watchers = self.watchers.pop(name, None)
            if watchers:
                for child, index in watchers:
                    child.satisfy(index)
        if self.exports and self.chosen and name in self.exports:  # a run's top scope has none
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
        return self.tables.effects[index] and not self.confirmed

    def ready(self, index: int) -> None:
        # Nothing more starts in a scope that, or whose enclosing branch, was cancelled: its
        # nursery may already be closed (trio closes it when the body has left and the last
        # child ended, before our `finally` runs), for instance when a nested router answers
        # in the very instant its enclosing branch loses.
        if self.doomed:
            return
        # `may_park` is False exactly when `blocked` can never be True (see `begin`).
        if self.may_park and self.blocked(index):
            self.parked = add(self.parked, index)
            return
        if self.tables.routers_at[index]:
            self.run.start_router(self, index)
        else:
            self.run.start_step(self, index)

    def release(self) -> None:
        if self.nursery is None or not self.parked:
            return
        parked, self.parked = sorted(self.parked), NOTHING
        for index in parked:
            self.ready(index)

    def _count_missing(self) -> Sequence[int]:
        """Count what each node waits for; the nodes that wait for nothing.

        A scope's own values when it begins (handed over by its router, a map's item, a
        loop's carried values) are all names its flow reads from outside (each is checked
        when the flow is built), so a node waits for all its local reads, and for each
        outside read that the enclosing scope providing it does not hold yet (watched for).
        """
        tables = self.tables
        missing = list(tables.local_reads)
        for index, external in tables.outside:
            for name in external:
                # A branch provides its handed-over values itself; the rest come from above.
                provider: Scope | None = self
                while provider is not None and name not in provider.provides:
                    provider = provider.parent
                if provider is not None and name not in provider.values:
                    if provider.watchers is None:
                        provider.watchers = {}
                    provider.watchers.setdefault(name, []).append((self, index))
                    self.waits_outside = True
                    missing[index] += 1
        self.missing = missing
        # Only a node that reads nothing produced here can be ready.
        return [index for index in tables.first if not missing[index]]

    def begin(self) -> None:
        tables = self.tables
        ready: Sequence[int]
        if self.parent is None:
            # A run's top scope: its values are the run's inputs, which `_check_inputs`
            # keeps to names no step of the flow produces, and its outside reads are those
            # inputs. So each node waits for exactly its local reads.
            self.missing = list(tables.local_reads)
            ready = tables.first
        else:
            ready = self._count_missing()
        self.may_park = not self.confirmed and (self.limit is not None or tables.has_effects)
        if self.may_park or self.doomed:
            for index in ready:
                self.ready(index)
            return
        # `ready` without its checks: nothing is parked here, and nothing runs (so nothing
        # is cancelled) while the ready nodes start.
        self.run.start_ready(self, ready)

    def begin_taking_tail(self) -> int:
        """`begin`, keeping back for the calling task the first plain step or router it
        makes ready (-1: none), which the caller then runs itself."""
        run = self.run
        run.tail_scope = self
        try:
            self.begin()
        finally:
            index = run.take_tail()
        return index

    def node_done(self) -> None:
        self.done += 1
        if self.finished is not None and self.done == len(self.missing):
            self.finished.set()

    def run_nodes(self, speculated: bool = False) -> Coroutine[Any, Any, None]:
        """Run every node of this scope's flow, each as its inputs appear; return when all
        are done or the scope is cancelled. Returns the coroutine to await: no frame of
        ours in between, since every resume of a step passes through each frame its task
        awaits in (and each stays alive while the scope runs).

        A `speculated` branch runs as a task of its own, and its router's node is done when
        the branch is: here if it was chosen before it ended, else when the router chooses
        it (see `run_router`)."""
        if self.tables.serial:
            return self._run_serially(speculated)
        return self._run_in_nursery(speculated)

    async def _run_in_nursery(self, speculated: bool) -> None:
        """`run_nodes` for a flow whose nodes may run side by side: in a nursery."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                if self.enter(nursery.cancel_scope):
                    # The body runs the first ready node itself rather than idle in a task.
                    index = self.begin_taking_tail()
                    if index >= 0:
                        await self.run.run_here(self, index)
                    # Each started node is a task of this nursery, and a node's inputs are
                    # written by tasks of this nursery before they end, so the nursery
                    # itself waits for everything, unless a node waits on a value from an
                    # enclosing scope, may be parked by a barrier, or queues for a slot of
                    # the run's cap (the admitter is elsewhere): then wait for the last node.
                    waits = self.waits_outside or self.may_park or self.run.limiter is not None
                    if self.done < len(self.missing) and waits:
                        self.finished = trio.Event()
                        await self.finished.wait()
        finally:
            self.close()
        if speculated and self.chosen:
            self.parent.node_done()  # type: ignore[union-attr]

    async def _run_serially(self, speculated: bool) -> None:
        """`run_nodes` for a flow whose nodes can only run one at a time (`Tables.serial`):
        each in this task, under a cancel scope of the scope's own if it needs one
        (`cancel_scope_here`) and no nursery (a nursery costs two objects more, and a
        schedule point when it closes)."""
        try:
            with self.cancel_scope_here() as cancel_scope:
                serial = SerialNursery()
                self.nursery = serial
                if cancel_scope is None or self.enter(cancel_scope):
                    index = self.begin_taking_tail()
                    # Each node reads the one before it (`one_at_a_time`), so when nothing
                    # can hold a node back (a value from an enclosing scope, a barrier) and
                    # `write` is only a write, a node is ready the moment the one before it
                    # ends: the step path then runs them one after another in flow order,
                    # counting no inputs (see `run_plain_step`, which a run with a cap or an
                    # observer does not use). Not under a run's timeout: trio notices a
                    # passed deadline only when it schedules, so a step that overran it
                    # without yielding would not stop the next one, where `ready` reads the
                    # clock (`doomed`).
                    run = self.run
                    self.in_order = (
                        not (self.waits_outside or self.may_park)
                        and self.writes_plainly
                        and run.top is not None
                        and run.top.deadline is None
                    )
                    if index >= 0:
                        await run.run_here(self, index)
                    # A node made ready from elsewhere (a value from an enclosing scope, a
                    # parked node released, a slot of the run's cap) was queued by
                    # `start_soon`.
                    count = len(self.missing)
                    while self.done < count:
                        if not serial.queued:
                            if self.doomed:  # nothing more starts here: do not wait for it
                                break
                            serial.wake = trio.Event()
                            await serial.wake.wait()
                            serial.wake = None
                            continue
                        node, args = serial.queued.pop(0)
                        await node(*args)
        finally:
            self.close()
        if speculated and self.chosen:
            self.parent.node_done()  # type: ignore[union-attr]

    def close(self) -> None:
        """Nothing more starts here; the nodes that never started are noted as skipped."""
        self.closed = True
        if self.done < len(self.flow.nodes):
            self._record_skipped()

    def cancel_scope_here(self) -> AbstractContextManager[trio.CancelScope | None]:
        """A new cancel scope for this scope's nodes to run under, or none (`with` gives
        None) for a branch its router chose before it started: nothing cancels it but an
        enclosing scope (its failure fails its parent: see `fail`), whose cancel scope its
        nodes run under already. A cancel scope costs some 400 bytecodes to open and close."""
        if self.chosen and self.parent is not None and self.stops_with_parent:
            return _UNDER_ENCLOSING
        return trio.CancelScope()

    def enter(self, cancel_scope: trio.CancelScope, *, shared: bool = False) -> bool:
        """Adopt the cancel scope the scope's nodes run under (`shared` with other scopes),
        applying what was asked of it before it existed; False if the scope was cancelled
        before it started."""
        self.cancel_scope = cancel_scope
        self.shares_cancel_scope = shared
        if self.deadline is not None:
            cancel_scope.deadline = self.deadline
        if self.cancel_requested:
            cancel_scope.cancel()
            return False
        return True

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def _record_skipped(self) -> None:
        """Note that the nodes never started here were skipped (see `skipped_executions`)."""
        run = self.run
        run.skipped = add(run.skipped, (len(run.executions), self, run.now(), not self.confirmed))
        observer = run.observer
        if observer is not None:
            for step in unstarted_steps(self):
                observer.step_finished(step.name, self.path, SKIPPED, 0.0)

    # -- routing outcomes -----------------------------------------------------------------

    def choose(self, handed: Mapping[str, Any]) -> None:
        parent = self.parent
        assert parent is not None
        if self.failure is not None:
            parent.fail(self.failure)
            return
        self.chosen = True
        parent.chosen_children = add(parent.chosen_children, self)
        for name in self.exports & self.values.keys():
            parent.write(name, self.values[name])
        for name, value in handed.items():
            self.write(name, value)
        if parent.confirmed:
            self.confirm()
        self.release()

    def confirm(self) -> None:
        self.confirmed = True
        if self.pending_stores:
            # Whoever confirmed the branch (its router's task) stores them: see `flush`.
            run = self.run
            for pending in self.pending_stores:
                run.confirmed_stores = add(run.confirmed_stores, pending)
            self.pending_stores = NOTHING
        self.release()
        for child in self.chosen_children:
            child.confirm()

    def fail(self, error: SpecrouteError) -> None:
        if self.parent is None:
            self.run.fail(error)
        elif self.chosen:
            self.parent.fail(error)
        else:
            if self.failure is None:
                self.failure = error
            self.cancel()

    @property
    def doomed(self) -> bool:
        """This scope or an enclosing one was cancelled: nothing new should start in it."""
        scope: Scope | None = self
        while scope is not None:
            if scope.closed or scope.cancel_requested:
                return True
            # A cancel scope of its own is cancelled only by `cancel` (which set the flag
            # above) or by its deadline; `cancel_called` reads the clock, so ask it only
            # then, or when the cancel scope is shared and another scope may have cancelled it.
            if (scope.deadline is not None or scope.shares_cancel_scope) and (
                scope.cancel_scope is not None and scope.cancel_scope.cancel_called
            ):
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


def start_each(run: RunState, scope: Scope, ready: Sequence[int]) -> None:
    """Start the nodes `ready` of `scope` one by one (`start_step`, `start_router`)."""
    routers_at = scope.tables.routers_at
    for index in ready:
        if routers_at[index]:
            run.start_router(scope, index)
        else:
            run.start_step(scope, index)


def add(items: list[Any], item: Any) -> list[Any]:
    """`items` with `item` appended: `items` itself, or a new list in place of `NOTHING`."""
    if items is NOTHING:
        return [item]
    items.append(item)
    return items


def unstarted_steps(scope: Scope) -> list[Step]:
    """The steps (a router's own step for a router) of `scope` that never started."""
    nodes = scope.flow.nodes
    steps = []
    launched = scope.launched
    for index in range(len(nodes)):
        if not launched >> index & 1:
            node = nodes[index]
            steps.append(node if isinstance(node, Step) else node.step)
    return steps


def skipped_executions(scope: Scope, at: float, *, speculative: bool) -> list[Execution]:
    """A record for each node of `scope` that never started (it closed at `at`)."""
    executions = []
    for step in unstarted_steps(scope):
        execution = Execution(scope, step.name, step.params, None, at, speculative, at, SKIPPED)
        executions.append(execution)
    return executions
