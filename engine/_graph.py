"""Build-time analysis: a flow's graph is derived from the names its steps read and write,
checked when it is built, and indexed into the tables the scheduler reads on every step.

`Graph` is everything a flow is except a way to run it (`Flow`, one layer up, adds `run`),
so routers can hold their branches without this layer naming the scheduler.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
from specroute.routes import (
    BranchError,
    ConfigurationTypeError,
    CycleError,
    DuplicateProducerError,
    MissingInputError,
    SpeculationPolicy,
    StepDefinitionError,
    StepEstimate,
)

from ._step import Step
from ._stream import stream_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from specroute.routes import Predictor

__all__ = ["Downstream", "Expansion", "Graph", "Router", "Tables", "check_policy", "router"]

Node: TypeAlias = "Step | Router"


@attrs.frozen(eq=False, repr=False)
class Expansion(Step):
    """A step whose value comes from running a sub-flow at run time, in scopes of its own
    (a map over a list, a bounded loop). To the graph it is a step: it reads its `params`
    (the values its body reads from outside, and what drives it) and writes one value.

    The scheduler never calls `fn`: `_call.call` awaits `expand` instead, which runs the
    body through the run's state (subclasses live a layer up, beside the schedulers).
    """

    body: Graph = attrs.field(kw_only=True)

    async def expand(self, run: Any, scope: Any, kwargs: dict[str, Any], execution: Any) -> Any:
        """Run the body for the values `kwargs` and return the step's value."""
        raise NotImplementedError

    def policy_labels(self) -> tuple[str, ...]:
        """The labels a speculation policy may plan for this node (none: it is no router)."""
        return ()


@attrs.frozen(eq=False, repr=False)
class Router:
    """A router step and the branches it chooses between. Build one with `router()`.

    Attributes:
        step: The router step; it returns a `Route`.
        branches: Label -> the `Flow` that runs when the router picks that label.
        handoff: Label -> the names of the values the router hands to that branch.
        outputs: The values every branch produces; they appear in the enclosing flow.
        predictor: Predicts the label before the router returns (for predictive policies).
        estimates: Label -> (seconds, dollars) expected per step of that branch, in order.
    """

    step: Step
    branches: Mapping[str, Graph]
    handoff: Mapping[str, frozenset[str]]
    outputs: frozenset[str]
    predictor: Predictor | None = None
    estimates: Mapping[str, tuple[StepEstimate, ...]] = attrs.Factory(dict)
    # What every run shows a policy of this router (`RouterView`): worked out once here,
    # not per router execution.
    _labels: tuple[str, ...] = attrs.field(init=False)
    _branch_sizes: Mapping[str, int] = attrs.field(init=False)
    _branch_steps: Mapping[str, tuple[str, ...]] = attrs.field(init=False)
    # Label -> what a scope of that branch provides itself (its own values and those handed
    # to it): one set per router, not one per branch execution.
    _provides: Mapping[str, frozenset[str]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        branches = self.branches
        provides = {label: b._produced | self.handoff[label] for label, b in branches.items()}
        object.__setattr__(self, "_provides", MappingProxyType(provides))
        object.__setattr__(self, "_labels", tuple(branches))
        sizes = {label: len(branch.nodes) for label, branch in branches.items()}
        object.__setattr__(self, "_branch_sizes", MappingProxyType(sizes))
        steps = {label: tuple(n.name for n in branch.nodes) for label, branch in branches.items()}
        object.__setattr__(self, "_branch_steps", MappingProxyType(steps))

    @property
    def name(self) -> str:
        """The router step's name."""
        return self.step.name

    @property
    def reads(self) -> frozenset[str]:
        """Every value the router and its branches read from outside."""
        reads = set(self.step.params)
        for label, branch in self.branches.items():
            reads |= branch._externals - self.handoff[label]
        return frozenset(reads)

    def __repr__(self) -> str:
        return f"<Router {self.name!r} branches {list(self.branches)}>"


def router(
    step: Step,
    branches: Mapping[str, Graph | Sequence[Step | Router]],
    *,
    handoff: Mapping[str, Iterable[str]] | None = None,
    predictor: Predictor | None = None,
) -> Router:
    """Make a router: `step` returns a `Route` whose label picks one of `branches`.

    Args:
        step: The router step.
        branches: Label -> a `Flow` (or a list of steps, made into a branch graph).
        handoff: Label -> names of the values the router's `Route` hands to that branch;
            a branch may read them like any other value.
        predictor: Predicts the label from the router's inputs before it returns (see
            `specroute.routes.PredictivePolicy`); told each real answer.

    Returns:
        The `Router`, to put in a `Flow` like a step.

    Raises:
        BranchError: No branches, a handoff for an unknown label, a handoff name that the
            branch also produces, or branches whose outputs differ.
        ConfigurationTypeError: `branches` or `handoff` not a mapping, a branch that is not
            a flow or a list of steps, a handoff or branch given as one string (which would
            be read letter by letter), or a `predictor` without `predict` and `observe`.
    """
    if not isinstance(step, Step):
        raise StepDefinitionError(f"router step must be a Step (use @step), got {step!r}")
    where = f"router {step.name!r}"
    if not isinstance(branches, Mapping):
        raise ConfigurationTypeError(
            f"{where}: `branches` must be a mapping label -> Flow or list of steps, got "
            f"{branches!r}; write {{'label': [...]}}"
        )
    if not branches:
        raise BranchError(f"router {step.name!r} has no branches; give it at least one")
    flows = {label: _branch(flow, label, where) for label, flow in branches.items()}
    if handoff is not None and not isinstance(handoff, Mapping):
        raise ConfigurationTypeError(
            f"{where}: `handoff` must be a mapping label -> value names, got {handoff!r}"
        )
    if predictor is not None and not _has_methods(predictor, "predict", "observe"):
        raise ConfigurationTypeError(
            f"{where}: `predictor` must have `predict` and `observe` methods (see "
            f"Predictor), got {predictor!r}"
        )
    handoff = {
        label: value_names(names, f"the handoff to branch {label!r}", where)
        for label, names in (handoff or {}).items()
    }
    for label in handoff:
        if label not in flows:
            raise BranchError(
                f"router {step.name!r}: handoff names label {label!r}, which has no branch "
                f"(labels: {', '.join(map(repr, flows))})"
            )
    frozen_handoff = {label: frozenset(handoff.get(label, ())) for label in flows}
    outputs: dict[str, frozenset[str]] = {}
    for label, flow in flows.items():
        given = frozen_handoff[label]
        clash = given & flow._deep_produced
        if clash:
            raise BranchError(
                f"router {step.name!r}, branch {label!r}: handoff value(s) "
                f"{sorted(clash)} are also produced by the branch; rename one of them"
            )
        outputs[label] = flow.outputs
        missing = flow.outputs - flow._produced - given
        if missing:
            raise BranchError(
                f"router {step.name!r}, branch {label!r}: outputs {sorted(missing)} are "
                f"neither produced by the branch nor handed over by the router"
            )
    first_label, first = next(iter(outputs.items()))
    for label, names in outputs.items():
        if names != first:
            raise BranchError(
                f"router {step.name!r}: branches must produce the same outputs, but "
                f"{first_label!r} produces {sorted(first)} and {label!r} produces "
                f"{sorted(names)}; declare `outputs=[...]` on each branch's Flow"
            )
    estimates = {
        label: tuple(_estimate(node) for node in flow.nodes) for label, flow in flows.items()
    }
    return Router(
        step,
        MappingProxyType(flows),
        MappingProxyType(frozen_handoff),
        first,
        predictor,
        MappingProxyType(estimates),
    )


def _branch(flow: object, label: str, where: str) -> Graph:
    """A branch as a graph; refuse what would be read as something else."""
    if isinstance(flow, Graph):
        return flow
    if isinstance(flow, str | Step | Router) or not isinstance(flow, Iterable):
        shown = f"the string {flow!r}" if isinstance(flow, str) else repr(flow)
        raise ConfigurationTypeError(
            f"{where}: branch {label!r} must be a Flow or a list of steps, got {shown}"
        )
    return Graph(flow, name=label)


def value_names(names: object, what: str, where: str) -> tuple[str, ...]:
    """`names` as a tuple of value names; a lone string would be read letter by letter."""
    if isinstance(names, str):
        raise ConfigurationTypeError(
            f"{where}: {what} must be a list of value names, got the string {names!r}; "
            f"write [{names!r}]"
        )
    if not isinstance(names, Iterable):
        raise ConfigurationTypeError(
            f"{where}: {what} must be a list of value names, got {names!r}"
        )
    given = tuple(names)
    for name in given:
        if not isinstance(name, str):
            raise ConfigurationTypeError(
                f"{where}: {what} must be a list of value names, got {names!r} (holding {name!r})"
            )
    return given


def _has_methods(value: object, *names: str) -> bool:
    return all(callable(getattr(value, name, None)) for name in names)


def check_policy(policy: object, routers: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse what is not a speculation policy, then let the policy check the routers."""
    if not _has_methods(policy, "check", "plan"):
        raise ConfigurationTypeError(
            f"`speculate` must be a speculation policy (Always(), Never(), Branches(...) or "
            f"PredictivePolicy(...)), got {policy!r}"
        )
    policy.check(routers)  # type: ignore[attr-defined]


def _estimate(node: Node) -> StepEstimate:
    options = (node.step if isinstance(node, Router) else node).options
    return StepEstimate(options.estimated_seconds or 0.0, options.estimated_dollars or 0.0)


def _node_reads(node: Node) -> frozenset[str]:
    return node.reads if isinstance(node, Router) else frozenset(node.params)


def _node_writes(node: Node) -> frozenset[str]:
    if isinstance(node, Router):
        return node.outputs
    if node.streamed:  # its stream first, for readers that start on its first item
        return frozenset((node.output, stream_name(node.output)))
    return frozenset((node.output,))


def _functions_by_step_name(nodes: Sequence[Node], flow: str) -> Mapping[str, object]:
    """Step name -> its function, over the whole tree; refuses two functions under one name.

    A name identifies a step in traces, policies and cache keys, so two different functions
    under one name (in two branches, say) would be mistaken for each other. The same
    function under one name in several branches is one step, and allowed.
    """
    functions: dict[str, object] = {}

    def add(step_name: str, function: object) -> None:
        known = functions.setdefault(step_name, function)
        if known is not function:
            first, second = _qualified(known), _qualified(function)
            alike = " (one factory made both)" if first == second else ""
            raise StepDefinitionError(
                f"flow {flow!r}: step name {step_name!r} is given to two different functions,"
                f" {first} and {second}{alike}; a name identifies one step in traces,"
                f" policies and cache keys, so give one of them another name with"
                f" @step(name=...); to share cache entries between them, give both one"
                f" CacheOptions(name=...)"
            )

    for node in nodes:
        if isinstance(node, Router):
            add(node.step.name, node.step.fn)
            for branch in node.branches.values():
                for step_name, function in branch._functions.items():
                    add(step_name, function)
        else:
            add(node.name, node.fn)
            if isinstance(node, Expansion):
                for step_name, function in node.body._functions.items():
                    add(step_name, function)
    return MappingProxyType(functions)


def _qualified(function: object) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__qualname__', type(function).__qualname__)}"


def one_at_a_time(
    nodes: Sequence[Node],
    reads: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
    plain: Sequence[bool],
) -> bool:
    """Whether at most one node of a flow can ever be ready or running at once: every node a
    plain step, and each (in topological order) downstream of the one before it, so no node
    can be ready before every node above it has written its value."""
    if not all(plain):
        return False
    producer = {node.output: index for index, node in enumerate(nodes)}  # type: ignore[union-attr]
    above: list[int] = []  # bit p of above[i]: node p is upstream of node i
    for index, (local, _external) in enumerate(reads):
        mask = 0
        for name in local:
            source = producer[name]
            mask |= above[source] | 1 << source
        if index and not mask >> (index - 1) & 1:
            return False
        above.append(mask)
    return True


def _topological(nodes: Sequence[Node], producer: Mapping[str, int], flow: str) -> list[int]:
    """Kahn's algorithm, earliest declaration first; raises `CycleError` naming the cycle."""
    deps = [{producer[n] for n in _node_reads(node) if n in producer} for node in nodes]
    users: list[list[int]] = [[] for _ in nodes]
    for index, needed in enumerate(deps):
        for dep in needed:
            users[dep].append(index)
    remaining = [len(needed) for needed in deps]
    # Always take the earliest-declared ready node, so a flow written in a valid order keeps
    # it: "the first k steps" of a branch are the first k the user wrote.
    ready = [index for index, count in enumerate(remaining) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users[index]:
            remaining[user] -= 1
            if remaining[user] == 0:
                heapq.heappush(ready, user)
    if len(order) == len(nodes):
        return order
    # Walk back along unfinished dependencies until a node repeats: that is a cycle.
    stuck = next(index for index, count in enumerate(remaining) if count)
    path = [stuck]
    while True:
        stuck = next(dep for dep in deps[stuck] if remaining[dep])
        if stuck in path:
            cycle = [*path[path.index(stuck) :], stuck]
            break
        path.append(stuck)
    cycle.reverse()
    links = []
    for before, after in itertools.pairwise(cycle):
        value = sorted(_node_writes(nodes[before]) & _node_reads(nodes[after]))[0]
        links.append(f"{nodes[after].name!r} reads {value!r} from {nodes[before].name!r}")
    names = " -> ".join(nodes[index].name for index in cycle)
    raise CycleError(
        f"flow {flow!r} has a cycle: {names} ({'; '.join(links)}); "
        f"break it by removing one of these reads"
    )


def _node_list(nodes: object, name: str) -> list[Step | Router]:
    if isinstance(nodes, str | Step | Router) or not isinstance(nodes, Iterable):
        raise ConfigurationTypeError(
            f"flow {name!r}: `nodes` must be a list of steps and routers, got {nodes!r}"
        )
    return list(nodes)


@attrs.frozen
class Downstream:
    """The nodes of a graph that read one value, directly or through other nodes' values:
    what a predicted value of that name may start early.

    Attributes:
        graph: Those nodes as a graph of their own (its overlay reads the rest from above).
        indices: Their indices in the enclosing graph's `nodes`.
        steps: Their names, in that order.
        estimates: (seconds, dollars) expected for each of them, in that order.
    """

    graph: Graph
    indices: tuple[int, ...]
    steps: tuple[str, ...]
    estimates: tuple[StepEstimate, ...]


@attrs.frozen(slots=True)
class Tables:
    """What the scheduler looks up per step: who consumes each value, what each node reads
    (values produced in this flow, values from outside), which nodes are effects or routers,
    and which are plain steps (no cache, timeout, fallback or effect: the short path)."""

    consumers: Mapping[str, tuple[int, ...]]
    reads: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    effects: tuple[bool, ...]
    routers_at: tuple[bool, ...]
    plain: tuple[bool, ...]
    # At most one node can be ready or running at once (`one_at_a_time`): a scope of this
    # flow runs its nodes in one task, under a cancel scope, with no nursery.
    serial: bool
    # The name of the task a node starts in (trio's own would be formatted per task).
    task_names: tuple[str, ...]
    # Per node, how many of its reads this flow produces: all it waits for in a run's top
    # scope, which starts from the run's inputs alone (none of them a produced name).
    local_reads: tuple[int, ...]
    # The nodes that read nothing this flow produces: the only ones ready when a scope
    # begins with no values of its own (a run's top scope, a branch nothing was handed to).
    first: tuple[int, ...]
    # Bit i set: node i is in `first` (a top scope's `launched` made in one step).
    ready_at_start: int
    # (node, the names it reads from outside the flow), for the nodes that read any: what a
    # branch or body scope looks up in its enclosing scopes when it begins.
    outside: tuple[tuple[int, tuple[str, ...]], ...]
    # Some node is an effect: a speculative scope may have to park it (see `Scope.begin`).
    has_effects: bool
    # Per node, how a plain step's inputs are picked from its scope's values in one call
    # (`Step.pick`), or None: gathered by name (`Scope.gather`). `nested_picks` is for a
    # scope with a parent, where a name read from outside is in an enclosing scope, so a
    # node that reads one is gathered (not picked, missed, then gathered).
    picks: tuple[Callable[[Mapping[str, Any]], Any] | None, ...]
    nested_picks: tuple[Callable[[Mapping[str, Any]], Any] | None, ...]
    # Per node: a plain step whose value nothing reads here (no node of this flow, and no
    # branch or body under one), like a fan-out's sinks. In a scope that exports nothing and
    # hooks no writes (`Scope.writes_plainly`), writing it only stores it: there is no reader
    # to count down and no watcher to wake.
    unread: tuple[bool, ...]


class Graph:
    """A set of steps and routers; the graph comes from the names they read and write.

    `Flow` is the public name: a graph you can run, whose docstring lists the arguments.
    A router's branches given as lists of steps are graphs.
    """

    def __init__(
        self,
        nodes: Iterable[Step | Router],
        *,
        name: str = "flow",
        outputs: Iterable[str] | None = None,
        inputs: Iterable[str] | None = None,
        speculate: SpeculationPolicy | None = None,
    ) -> None:
        self.name = name
        given = _node_list(nodes, name)
        producer: dict[str, int] = {}
        seen_names: dict[str, Node] = {}
        for index, node in enumerate(given):
            if not isinstance(node, Step | Router):
                raise StepDefinitionError(
                    f"flow {name!r}: item {index} is {node!r}; a flow holds steps (made "
                    f"with @step) and routers (made with router())"
                )
            if node.name in seen_names:
                raise StepDefinitionError(
                    f"flow {name!r} has two steps named {node.name!r}; give one of them "
                    f"another name with @step(name=...)"
                )
            seen_names[node.name] = node
            for value in _node_writes(node):
                if value in producer:
                    raise DuplicateProducerError(
                        f"flow {name!r}: value {value!r} would be written by both "
                        f"{given[producer[value]].name!r} and {node.name!r}; give one an "
                        f"`output=` of its own and merge them in an explicit step"
                    )
                producer[value] = index
        order = _topological(given, producer, name)
        self.nodes: tuple[Node, ...] = tuple(given[index] for index in order)
        self._functions = _functions_by_step_name(self.nodes, name)
        self._produced: frozenset[str] = frozenset(producer)
        deep = set(producer)
        for node in self.nodes:
            if isinstance(node, Router):
                for label, branch in node.branches.items():
                    inner = (branch._deep_produced | node.handoff[label]) - node.outputs
                    clash = inner & self._produced
                    if clash:
                        value = sorted(clash)[0]
                        raise DuplicateProducerError(
                            f"flow {name!r}: value {value!r} is written by "
                            f"{given[producer[value]].name!r} and also inside branch "
                            f"{label!r} of router {node.name!r}; rename one of them"
                        )
                    deep |= inner
        self._deep_produced: frozenset[str] = frozenset(deep)
        readers: dict[str, list[str]] = {}
        optional_everywhere: dict[str, bool] = {}
        for node in self.nodes:
            if isinstance(node, Router):
                self._collect_router_reads(node, readers, optional_everywhere)
            for value in node.params if isinstance(node, Step) else node.step.params:
                if value not in self._produced:
                    readers.setdefault(value, []).append(node.name)
                    is_optional = value in (
                        node.optional if isinstance(node, Step) else node.step.optional
                    )
                    optional_everywhere[value] = (
                        optional_everywhere.get(value, True) and is_optional
                    )
        if outputs is None:
            read_here = set().union(*(_node_reads(node) for node in self.nodes))
            # A stream is read inside its flow only: outside, readers get the whole value.
            streams = {stream_name(node.output) for node in self.nodes if isinstance(node, Step)}
            self.outputs: frozenset[str] = frozenset(self._produced - read_here - streams)
        else:
            self.outputs = frozenset(value_names(outputs, "`outputs`", f"flow {name!r}"))
            # An output no step produces passes a value through: a run input, or a value
            # the enclosing router hands over.
            for value in self.outputs - self._produced:
                readers.setdefault(value, []).append(f"{name} outputs")
                optional_everywhere[value] = False
        self._externals: frozenset[str] = frozenset(readers)
        self._readers: Mapping[str, tuple[str, ...]] = MappingProxyType(
            {value: tuple(names) for value, names in readers.items()}
        )
        self._optional = frozenset(v for v, flag in optional_everywhere.items() if flag)
        self._inputs = self._externals - self._optional
        # What a run may be given: a value the flow reads and no step of it writes.
        self._accepted = self._externals - self._deep_produced
        if inputs is not None:
            declared = frozenset(value_names(inputs, "`inputs`", f"flow {name!r}"))
            missing = sorted(self._externals - declared - self._optional)
            if missing:
                value = missing[0]
                raise MissingInputError(
                    f"flow {name!r}: step {self._readers[value][0]!r} reads {value!r}, "
                    f"which no step produces and which is not among the inputs "
                    f"{sorted(declared)}; add a step that produces it or list it as an input"
                )
        self.routers = MappingProxyType(self._collect_routers())
        self._index_for_runs()
        self.speculate = speculate
        if speculate is not None:
            check_policy(speculate, self.routers)
        self._downstream: dict[str, Downstream | None] = {}

    def downstream(self, value: str) -> Downstream | None:
        """The nodes that wait for `value` to start, directly or through what they produce
        (None: none). Worked out on first use and kept: only predicted values ask."""
        try:
            return self._downstream[value]
        except KeyError:
            pass
        names = {value, stream_name(value)}
        indices = []
        # What waits for a value to start: a step's inputs, a router step's own inputs (a
        # router whose branches alone read the value starts without it, and its branches
        # wait for the real value).
        for index, node in enumerate(self.nodes):  # topological: one pass finds them all
            params = node.step.params if isinstance(node, Router) else node.params
            if names.intersection(params):
                indices.append(index)
                names |= _node_writes(node)
        found = None
        if indices:
            nodes = [self.nodes[index] for index in indices]
            graph = Graph(nodes, name=f"{self.name}/after {value}")
            found = Downstream(
                graph=graph,
                indices=tuple(indices),
                steps=tuple(node.name for node in nodes),
                estimates=tuple(_estimate(node) for node in nodes),
            )
        self._downstream[value] = found
        return found

    def _collect_router_reads(
        self,
        node: Router,
        readers: dict[str, list[str]],
        optional_everywhere: dict[str, bool],
    ) -> None:
        for label, branch in node.branches.items():
            for value in branch._externals - node.handoff[label] - self._produced:
                readers.setdefault(value, []).extend(branch._readers[value])
                optional_everywhere[value] = (
                    optional_everywhere.get(value, True) and value in branch._optional
                )

    def _collect_routers(self) -> dict[str, tuple[str, ...]]:
        routers: dict[str, list[str]] = {}

        def add(name: str, labels: Iterable[str]) -> None:
            known = routers.setdefault(name, [])
            known.extend(label for label in labels if label not in known)

        for node in self.nodes:
            if isinstance(node, Router):
                add(node.name, node.branches)
                for branch in node.branches.values():
                    for name, labels in branch.routers.items():
                        add(name, labels)
            elif isinstance(node, Expansion):
                if node.policy_labels():
                    add(node.name, node.policy_labels())
                for name, labels in node.body.routers.items():
                    add(name, labels)
        return {name: tuple(labels) for name, labels in routers.items()}

    def _index_for_runs(self) -> None:
        """Tables the scheduler reads on every step, so its hot path only looks things up."""
        consumers: dict[str, list[int]] = {}
        reads = []
        for index, node in enumerate(self.nodes):
            step = node.step if isinstance(node, Router) else node
            local = tuple(name for name in step.params if name in self._produced)
            external = tuple(name for name in step.params if name not in self._produced)
            for name in local:
                consumers.setdefault(name, []).append(index)
            reads.append((local, external))
        plain = tuple(
            isinstance(node, Step)
            and node.options.cache is None
            and node.options.timeout is None
            and node.options.fallback is None
            and not node.options.effect
            and not node.streamed
            and not node.options.streams
            and not isinstance(node, Expansion)
            for node in self.nodes
        )
        picks = tuple(
            node.pick if is_plain and isinstance(node, Step) else None
            for is_plain, node in zip(plain, self.nodes, strict=True)
        )
        read_here = frozenset().union(*(_node_reads(node) for node in self.nodes))
        first = tuple(index for index, (local, _) in enumerate(reads) if not local)
        effects = tuple(
            (node.step if isinstance(node, Router) else node).options.effect for node in self.nodes
        )
        self._tables = Tables(
            consumers={name: tuple(users) for name, users in consumers.items()},
            reads=tuple(reads),
            effects=effects,
            routers_at=tuple(isinstance(node, Router) for node in self.nodes),
            plain=plain,
            serial=one_at_a_time(self.nodes, reads, plain),
            task_names=tuple(f"specroute node {node.name!r}" for node in self.nodes),
            local_reads=tuple(len(local) for local, _external in reads),
            first=first,
            ready_at_start=sum(1 << index for index in first),
            outside=tuple(
                (index, external) for index, (_, external) in enumerate(reads) if external
            ),
            has_effects=any(effects),
            picks=picks,
            nested_picks=tuple(
                None if external else pick for pick, (_, external) in zip(picks, reads, strict=True)
            ),
            unread=tuple(
                is_plain and isinstance(node, Step) and node.output not in read_here
                for is_plain, node in zip(plain, self.nodes, strict=True)
            ),
        )

    @property
    def inputs(self) -> frozenset[str]:
        """The values a run must give (no step produces them and no default covers them)."""
        return self._inputs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} nodes {[node.name for node in self.nodes]}>"
