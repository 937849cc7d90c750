"""Random flows as plain data, turned into real flows, plus a reference interpreter for them.

A `FlowSpec` is a tree of `StepSpec`/`RouterSpec` with integer durations. Names encode the
position (`r1b_s0` is step 0 of branch `b` of router `r1`), so a shrunk counterexample reads
as a graph. Every step's value is a function of its name and its inputs' values, so the
reference interpreter below can say what any mode must produce.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import attrs
import trio
from hypothesis import strategies as st
from specroute.cache import CacheHit, CacheMiss, CacheOptions, StepIdentity, make_key
from specroute.engine import Flow, Step, router, step
from specroute.routes import Branches, Prediction, Route, RouterView

if TYPE_CHECKING:
    from collections.abc import Mapping

INF = math.inf


@attrs.frozen
class StepSpec:
    name: str
    reads: tuple[str, ...]
    duration: int
    fails: bool = False
    effect: bool = False
    output: str = ""

    @property
    def writes(self) -> str:
        return self.output or f"v_{self.name}"


@attrs.frozen
class RouterSpec:
    name: str
    reads: tuple[str, ...]
    duration: int
    choice: str
    branches: dict[str, FlowSpec]
    plan: dict[str, int | None]  # label -> step limit, for the speculation policy
    fails: bool = False

    @property
    def writes(self) -> str:
        return f"o_{self.name}"


@attrs.frozen
class FlowSpec:
    nodes: tuple[StepSpec | RouterSpec, ...]

    def describe(self, indent: str = "") -> str:
        lines = []
        for node in self.nodes:
            flags = "".join(
                (" FAILS" if node.fails else "", " effect" * getattr(node, "effect", 0))
            )
            head = f"{indent}{node.name}({', '.join(node.reads)}) {node.duration}s{flags}"
            if isinstance(node, RouterSpec):
                lines.append(f"{head} -> {node.choice!r}, speculate {node.plan}")
                for label, branch in node.branches.items():
                    lines.append(f"{indent}  [{label}]")
                    lines.append(branch.describe(indent + "    "))
            else:
                lines.append(f"{head} -> {node.writes}")
        return "\n".join(lines)

    def routers(self) -> list[RouterSpec]:
        found = []
        for node in self.nodes:
            if isinstance(node, RouterSpec):
                found.append(node)
                for branch in node.branches.values():
                    found.extend(branch.routers())
        return found


@st.composite
def flow_specs(
    draw: st.DrawFn,
    prefix: str = "",
    visible: tuple[str, ...] = (),
    depth: int = 0,
    final_output: str = "",
    failures: bool = True,
) -> FlowSpec:
    """A random flow; a branch (`final_output` set) ends in a step writing its output."""
    nodes: list[StepSpec | RouterSpec] = []
    local: list[str] = []
    count = draw(st.integers(1 if not final_output else 0, 4 - depth))
    fails = st.sampled_from([False] * 6 + [True]) if failures else st.just(False)
    for index in range(count):
        reads = tuple(draw(st.lists(st.sampled_from([*visible, *local]), unique=True, max_size=3))
                      if visible or local else ())  # fmt: skip
        duration = draw(st.integers(0, 5))
        if depth < 2 and draw(st.integers(0, 1 + depth)) == 0:
            name = f"{prefix}r{index}"
            labels = ["a", "b", "c"][: draw(st.integers(1, 3))]
            branches = {
                label: draw(
                    flow_specs(f"{name}{label}_", (*visible, *local), depth + 1,
                               f"o_{name}", failures)
                )
                for label in labels
            }  # fmt: skip
            plan = {
                label: limit
                for label in labels
                if (limit := draw(st.sampled_from([-1, None, 1, 2]))) != -1
            }
            node: StepSpec | RouterSpec = RouterSpec(
                name, reads, duration, draw(st.sampled_from(labels)), branches, plan, draw(fails)
            )
        else:
            name = f"{prefix}s{index}"
            node = StepSpec(name, reads, duration, draw(fails), draw(st.booleans()))
        nodes.append(node)
        local.append(node.writes)
    if final_output:
        reads = tuple(draw(st.lists(st.sampled_from(local), unique=True, max_size=2))
                      if local else ())  # fmt: skip
        nodes.append(StepSpec(f"{prefix}out", reads, draw(st.integers(0, 2)),
                              draw(fails), False, final_output))  # fmt: skip
    return FlowSpec(tuple(nodes))


def value_of(name: str, inputs: dict[str, Any]) -> Any:
    return (name, tuple(sorted(inputs.items())))


@attrs.define
class Probe:
    """What the steps of one run did: effects started and finished, tasks still running."""

    effects: list[tuple[str, str]] = attrs.Factory(list)
    running: int = 0
    started_at: dict[str, float] = attrs.Factory(dict)


def _function(spec: StepSpec | RouterSpec, probe: Probe) -> Any:
    async def body(**inputs: Any) -> Any:
        probe.running += 1
        try:
            if getattr(spec, "effect", False):
                probe.effects.append(("start", spec.name))
                probe.started_at[spec.name] = trio.current_time()
            await trio.sleep(spec.duration)
            if spec.fails:
                raise ValueError(f"{spec.name} failed on purpose")
            if getattr(spec, "effect", False):
                probe.effects.append(("end", spec.name))
            if isinstance(spec, RouterSpec):
                return Route(spec.choice)
            return value_of(spec.name, inputs)
        finally:
            probe.running -= 1

    body.__name__ = spec.name
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in spec.reads]
    )
    return body


@attrs.frozen
class FixedPredictor:
    """Predicts the same probabilities whatever the inputs: random or adversarial."""

    probabilities: dict[str, float]

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        return Prediction(probabilities=self.probabilities, source="test")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        return None


def build(
    spec: FlowSpec,
    probe: Probe,
    name: str = "top",
    outputs: str = "",
    predictions: Mapping[str, dict[str, float]] | None = None,
    cached_routers: frozenset[str] = frozenset(),
    effect_grace: float | None = None,
    cached_steps: Mapping[str, CacheOptions] | None = None,
) -> Flow:
    """A real flow for `spec`; routers get fixed predictors and cache options if asked,
    steps named in `cached_steps` their cache options, and effects `effect_grace` if given.

    Steps estimate their own cost honestly: their duration, and a tenth of a cent a second.
    """
    predictions = predictions or {}
    nodes: list[Step | Any] = []
    for node in spec.nodes:
        estimates = {"estimated_seconds": node.duration, "estimated_dollars": node.duration / 1000}
        if isinstance(node, RouterSpec):
            branches = {
                label: build(branch, probe, f"{node.name}{label}", node.writes, predictions,
                             cached_routers, effect_grace, cached_steps)
                for label, branch in node.branches.items()
            }  # fmt: skip
            cache = CacheOptions() if node.name in cached_routers else None
            router_step = step(_function(node, probe), cache=cache, **estimates)
            predictor = FixedPredictor(predictions[node.name]) if node.name in predictions else None
            nodes.append(router(router_step, branches, predictor=predictor))
        else:
            grace = {"effect_grace": effect_grace} if node.effect and effect_grace else {}
            step_cache = (cached_steps or {}).get(node.name)
            nodes.append(
                step(_function(node, probe), output=node.writes, effect=node.effect,
                     cache=step_cache, **estimates, **grace)
            )  # fmt: skip
    return Flow(nodes, name=name, outputs=[outputs] if outputs else None)


@st.composite
def predictions_for(draw: st.DrawFn, spec: FlowSpec) -> dict[str, dict[str, float]]:
    """Per router, random probabilities: right, wrong, confident or undecided."""
    found = {}
    for node in spec.routers():
        labels = list(node.branches)
        weights = [draw(st.integers(0, 10)) for _ in labels]
        total = sum(weights) or 1
        found[node.name] = {label: w / total for label, w in zip(labels, weights, strict=True)}
    return found


@attrs.define
class AdversarialCache:
    """A cache whose every router lookup is a near match predicting `routes[router]`.

    Only the engine's side of verify mode is under test: the real caches have their own.
    """

    routes: dict[str, str]

    async def lookup(
        self, step: StepIdentity, options: Any, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        key = make_key(step, options.version, namespace, inputs, depends_on=options.depends_on)
        if step.name in self.routes:
            return CacheHit(value=Route(self.routes[step.name]), kind="semantic", key=key,
                            similarity=0.96, matched_key=key, seconds=1.0)  # fmt: skip
        return CacheMiss(key=key, exact=True, embedding=None)

    async def compute_once(self, key: Any, compute: Any) -> Any:
        return await compute()

    async def store(self, miss: Any, value: Any, *, seconds: float) -> None:
        return None

    def statistics(self) -> Any:
        return None


@attrs.define
class GuessingCache:
    """A cache whose every lookup of a step named in `guesses` is a near match: its value
    the step's real one (True) or another (False). Routers and other steps miss."""

    guesses: dict[str, bool]

    async def lookup(
        self, step: StepIdentity, options: Any, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        key = make_key(step, options.version, namespace, inputs, depends_on=options.depends_on)
        right = self.guesses.get(step.name)
        if right is None:
            return CacheMiss(key=key, exact=True, embedding=None)
        value = value_of(step.name, dict(inputs)) if right else ("wrong guess", step.name)
        return CacheHit(value=value, kind="semantic", key=key, similarity=0.97,
                        matched_key=key, seconds=1.0)  # fmt: skip

    async def compute_once(self, key: Any, compute: Any) -> Any:
        return await compute()

    async def store(self, miss: Any, value: Any, *, seconds: float) -> None:
        return None

    def statistics(self) -> Any:
        return None


def steps_of(spec: FlowSpec) -> list[StepSpec]:
    """Every step of `spec`, branches included."""
    found = []
    for node in spec.nodes:
        if isinstance(node, RouterSpec):
            for branch in node.branches.values():
                found.extend(steps_of(branch))
        else:
            found.append(node)
    return found


def policy(spec: FlowSpec) -> Branches:
    return Branches({r.name: r.plan for r in spec.routers() if r.plan})


@attrs.define
class Reference:
    """The sequential meaning of a spec: values, routes, failing and effect steps."""

    values: dict[str, Any] = attrs.Factory(dict)
    routes: list[tuple[str, str]] = attrs.Factory(list)
    failed: str | None = None  # the first failing step in sequential order
    winning_effects: set[str] = attrs.Factory(set)
    winning_failures: set[str] = attrs.Factory(set)
    sequential_time: int = 0


def _interpret(spec: FlowSpec, env: dict[str, Any], ref: Reference, stop: list[bool]) -> None:
    for node in spec.nodes:
        if stop[0]:
            return
        inputs = {name: env[name] for name in node.reads}
        ref.sequential_time += node.duration
        if node.fails:
            ref.failed = node.name
            stop[0] = True
            return
        if isinstance(node, RouterSpec):
            ref.routes.append((node.name, node.choice))
            inner = dict(env)
            _interpret(node.branches[node.choice], inner, ref, stop)
            if not stop[0]:
                env[node.writes] = inner[node.writes]
        else:
            env[node.writes] = value_of(node.name, inputs)


def _winning_path(spec: FlowSpec, ref: Reference) -> None:
    """Every node a run may execute for real (not speculatively), failure or not."""
    for node in spec.nodes:
        if isinstance(node, StepSpec) and node.effect:
            ref.winning_effects.add(node.name)
        if node.fails:
            ref.winning_failures.add(node.name)
        elif isinstance(node, RouterSpec):
            _winning_path(node.branches[node.choice], ref)


def reference(spec: FlowSpec) -> Reference:
    """Run the spec in plain Python, one step at a time."""
    ref = Reference()
    _interpret(spec, ref.values, ref, [False])
    _winning_path(spec, ref)
    return ref
