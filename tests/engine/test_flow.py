"""Build-time checks: every bad flow is refused by `Flow(...)`, naming what is at fault."""

from __future__ import annotations

import pytest
from specroute.engine import Flow, router, step
from specroute.routes import (
    BranchError,
    Branches,
    CycleError,
    DuplicateProducerError,
    FlowError,
    MissingInputError,
    Route,
    SpecrouteError,
    StepDefinitionError,
    UnknownBranchError,
)


@step
async def a(x: int) -> int:
    return x


@step
async def b(a: int) -> int:
    return a


@step
async def pick(x: int) -> Route:
    return Route("left")


def test_every_build_error_is_a_flow_error_under_the_root() -> None:
    for error in (
        CycleError,
        MissingInputError,
        DuplicateProducerError,
        BranchError,
        StepDefinitionError,
        UnknownBranchError,
    ):
        assert issubclass(error, FlowError)
    assert issubclass(FlowError, SpecrouteError)


def test_graph_comes_from_names() -> None:
    flow = Flow([b, a])
    assert [node.name for node in flow.nodes] == ["a", "b"]
    assert flow.inputs == {"x"}
    assert flow.outputs == {"b"}


def test_cycle_is_named() -> None:
    @step
    async def p(r: int) -> int:
        return r

    @step
    async def q(p: int) -> int:
        return p

    @step
    async def r(q: int) -> int:
        return q

    with pytest.raises(CycleError, match=r"p -> q -> r -> p|q -> r -> p -> q|r -> p -> q -> r"):
        Flow([p, q, r], name="loop")


def test_value_nothing_produces_is_refused_when_inputs_are_declared() -> None:
    with pytest.raises(MissingInputError, match=r"step 'b' reads 'a'"):
        Flow([b], inputs=["x"])


def test_two_producers_of_one_value_are_refused() -> None:
    @step(output="a")
    async def other(x: int) -> int:
        return x

    with pytest.raises(DuplicateProducerError, match=r"'a' would be written by both 'a' and"):
        Flow([a, other])


def test_branch_may_not_shadow_a_value_of_the_enclosing_flow() -> None:
    @step(output="a")
    async def outer(x: int) -> int:
        return x

    inner = Flow([a, b], name="left", outputs=["b"])
    with pytest.raises(DuplicateProducerError, match=r"'a' .* inside branch 'left'"):
        Flow([outer, router(pick, {"left": inner})])


def test_router_needs_branches_with_equal_outputs() -> None:
    with pytest.raises(BranchError, match=r"same outputs"):
        router(pick, {"left": Flow([a]), "right": Flow([a, b])})
    with pytest.raises(BranchError, match=r"no branches"):
        router(pick, {})


def test_handoff_for_unknown_label_is_refused() -> None:
    with pytest.raises(BranchError, match=r"handoff names label 'up'"):
        router(pick, {"left": Flow([a])}, handoff={"up": ["y"]})


def test_non_async_step_is_refused() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(StepDefinitionError, match=r"step 'plain'.*async def"):
        step(plain)  # type: ignore[arg-type]


def test_variadic_step_is_refused() -> None:
    async def many(*values: int) -> int:
        return 0

    with pytest.raises(StepDefinitionError, match=r"variadic"):
        step(many)


def test_policy_naming_unknown_branch_is_refused_at_build() -> None:
    flow_nodes = [router(pick, {"left": Flow([a])})]
    with pytest.raises(UnknownBranchError, match=r"branch 'right' of router 'pick'"):
        Flow(flow_nodes, speculate=Branches({"pick": ["right"]}))
    with pytest.raises(UnknownBranchError, match=r"router 'nope'"):
        Flow(flow_nodes, speculate=Branches({"nope": ["left"]}))


def test_same_step_twice_in_one_flow_is_refused() -> None:
    with pytest.raises(StepDefinitionError, match=r"two steps named 'a'"):
        Flow([a, a])


def test_not_a_step_is_refused() -> None:
    with pytest.raises(StepDefinitionError, match=r"item 0"):
        Flow([print])  # type: ignore[list-item]
