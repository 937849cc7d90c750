"""Build-time analysis (`engine/_graph.py`): `router()`, graph order, inputs, run tables.

`tests/engine/test_flow.py` covers the errors `Flow(...)` raises; this file covers the
graph layer under it: what `router()` refuses and derives, and what a graph indexes.
"""

from __future__ import annotations

import pytest
from specroute.engine import Flow, Router, Step, router, step
from specroute.engine._graph import Graph
from specroute.routes import BranchError, Route, StepDefinitionError


@step
async def pick(x: int) -> Route:
    return Route("a")


@step(estimated_seconds=2.0, estimated_dollars=0.01)
async def draft(x: int) -> str:
    return "d"


@step(output="out")
async def polish(draft: str) -> str:
    return draft


@step(output="out")
async def reuse(saved: str) -> str:
    return saved


@step(output="out")
async def plain(x: int, hint: str = "") -> str:
    return hint


def test_router_names_branches_outputs_and_estimates() -> None:
    node = router(pick, {"gen": [draft, polish], "plain": [plain]})
    assert isinstance(node, Router)
    assert node.name == "pick"
    assert list(node.branches) == ["gen", "plain"]
    assert node.outputs == {"out"}
    assert node.estimates == {"gen": ((2.0, 0.01), (0.0, 0.0)), "plain": ((0.0, 0.0),)}
    assert node.estimates["gen"][0].seconds == 2.0  # a `StepEstimate`, read by name
    assert repr(node) == "<Router 'pick' branches ['gen', 'plain']>"


def test_a_router_reads_its_branches_inputs_but_not_what_it_hands_over() -> None:
    node = router(pick, {"saved": [reuse], "gen": [draft, polish]}, handoff={"saved": ["saved"]})
    assert node.reads == {"x"}
    assert node.handoff == {"saved": {"saved"}, "gen": frozenset()}


def test_router_refuses_a_non_step() -> None:
    with pytest.raises(StepDefinitionError, match=r"router step must be a Step \(use @step\)"):
        router(print, {"a": [plain]})  # type: ignore[arg-type]


def test_handoff_of_a_value_the_branch_produces_is_refused() -> None:
    with pytest.raises(BranchError, match=r"branch 'gen': handoff value\(s\) \['draft'\]"):
        router(pick, {"gen": [draft, polish]}, handoff={"gen": ["draft"]})


def test_a_declared_output_nothing_produces_or_hands_over_is_refused() -> None:
    with pytest.raises(BranchError, match=r"branch 'a': outputs \['missing'\] are neither"):
        router(pick, {"a": Flow([plain], outputs=["out", "missing"])})


def test_unequal_outputs_name_both_labels_and_the_fix() -> None:
    expected = r"'a' produces \['out'\] and 'b' produces \['draft'\]; declare `outputs="
    with pytest.raises(BranchError, match=expected):
        router(pick, {"a": [plain], "b": [draft]})


def test_nodes_run_in_declaration_order_among_equals() -> None:
    @step
    async def c(x: int) -> int:
        return x

    @step
    async def b(x: int) -> int:
        return x

    @step
    async def a(b: int, c: int) -> int:
        return b + c

    graph = Graph([a, c, b])
    assert [node.name for node in graph.nodes] == ["c", "b", "a"]
    assert graph.outputs == {"a"}


def test_inputs_leave_out_values_with_a_default_everywhere() -> None:
    graph = Graph([plain])
    assert graph.inputs == {"x"}
    assert graph._externals == {"x", "hint"}


def test_routers_of_nested_branches_are_collected_with_their_labels() -> None:
    @step
    async def inner(x: int) -> Route:
        return Route("p")

    nested = Graph([router(inner, {"p": [plain]})], outputs=["out"])
    graph = Graph([router(pick, {"a": nested, "b": [draft, polish]})])
    assert dict(graph.routers) == {"pick": ("a", "b"), "inner": ("p",)}


def test_tables_mark_routers_effects_and_plain_steps() -> None:
    @step(output="saved", effect=True)
    async def save(out: str) -> str:
        return out

    @step(output="final", timeout=3)
    async def check(saved: str) -> str:
        return saved

    graph = Graph([router(pick, {"a": [plain]}), save, check])
    tables = graph._tables
    assert tables.routers_at == (True, False, False)
    assert tables.effects == (False, True, False)
    assert tables.plain == (False, False, False)  # an effect takes the general path
    assert tables.consumers == {"out": (1,), "saved": (2,)}
    # What each node waits for in a run's top scope: the values this flow produces.
    assert tables.local_reads == (0, 1, 1)
    assert tables.ready_at_start == 0b001  # only the router reads nothing produced here
    assert tables.first == (0,)
    assert tables.has_effects


def test_ready_at_start_has_a_bit_for_each_node_that_reads_only_inputs() -> None:
    @step(output="left")
    async def first(x: int) -> int:
        return x

    @step(output="both")
    async def join(left: int, right: int) -> int:
        return left + right

    @step(output="right")
    async def second(x: int, y: int) -> int:
        return x + y

    graph = Graph([first, join, second])
    tables = graph._tables
    mask = tables.ready_at_start
    ready = {node.name for index, node in enumerate(graph.nodes) if mask >> index & 1}
    assert ready == {"first", "second"}
    assert [graph.nodes[index].name for index in tables.first] == ["first", "second"]
    # What a branch or body scope looks up outside when it begins: by node, in node order.
    outside = [(graph.nodes[index].name, names) for index, names in tables.outside]
    assert outside == [("first", ("x",)), ("second", ("x", "y"))]
    assert not tables.has_effects
    # How each step's inputs are picked: in a run's top scope every plain step picks its
    # own from the scope's values; nested, a step that reads from outside gathers them.
    assert tables.picks == tuple(node.pick for node in graph.nodes)
    nested = {node.name: pick for node, pick in zip(graph.nodes, tables.nested_picks, strict=True)}
    assert nested == {"first": None, "second": None, "join": join.pick}
    assert join.pick is not None


def test_a_flow_is_serial_when_each_step_is_downstream_of_the_one_before() -> None:
    # Serial: at most one node can be ready at once, so a scope runs them in one task.
    @step
    async def a(x: int) -> int:
        return x

    @step
    async def b(a: int) -> int:
        return a

    @step
    async def c(b: int, a: int, x: int) -> int:  # also reads further up: still serial
        return b

    @step
    async def d(x: int) -> int:  # reads only the input: may run beside `a`
        return x

    @step(output="c", timeout=3)
    async def timed_c(b: int) -> int:
        return b

    assert Graph([a])._tables.serial
    assert Graph([a, b, c])._tables.serial
    assert Graph([c, b, a])._tables.serial  # declared out of order: graph order decides
    assert not Graph([a, b, d])._tables.serial
    assert not Graph([a, b, timed_c])._tables.serial  # not plain: it needs a task
    assert not Graph([router(pick, {"a": [plain]})])._tables.serial
    assert Graph([draft, polish])._tables.serial


def test_downstream_holds_every_node_that_reads_a_value_directly_or_not() -> None:
    @step
    async def first(query: str) -> str:
        return query

    @step
    async def second(first: str) -> str:
        return first

    @step
    async def third(second: str, query: str) -> str:
        return second + query

    @step
    async def beside(query: str) -> str:
        return query

    graph = Graph([first, second, third, beside], name="qa")
    found = graph.downstream("first")
    assert found is not None
    assert found.steps == ("second", "third")
    assert [graph.nodes[index].name for index in found.indices] == ["second", "third"]
    assert found.graph.inputs == {"first", "query"}
    assert graph.downstream("first") is found  # worked out once
    assert graph.downstream("third") is None


def summarizer(answer: str) -> Step:
    """A step named `summarize` whose function is new on every call."""

    @step(name="summarize", output="summary")
    async def summarize(text: str) -> str:
        return answer

    return summarize


def test_two_functions_under_one_name_in_two_branches_are_refused() -> None:
    @step
    async def length(text: str) -> Route:
        return Route("short" if len(text) < 100 else "long")

    short, long = summarizer("SHORT"), summarizer("LONG")
    with pytest.raises(StepDefinitionError) as info:
        Flow([router(length, {"short": [short], "long": [long]})], name="digest")
    message = str(info.value)
    assert "'summarize'" in message
    assert message.count(f"{__name__}.summarizer.<locals>.summarize") == 2
    assert "@step(name=...)" in message
    assert "CacheOptions(name=" in message


def test_two_functions_under_one_name_in_a_flow_and_a_nested_branch_are_refused() -> None:
    inner = Flow([router(pick, {"a": [summarizer("A")]})], name="inner")
    with pytest.raises(StepDefinitionError, match=r"'summarize'"):
        Flow([router(pick, {"a": inner}), step(name="summarize")(draft.fn)], name="outer")


def test_one_function_in_two_branches_is_allowed() -> None:
    shared = summarizer("SAME")
    again = step(name="summarize", output="summary", timeout=5)(shared.fn)
    flow = Flow([router(pick, {"a": [shared], "b": [again], "c": [shared]})])
    assert flow.outputs == {"summary"}


def test_unread_marks_the_plain_steps_whose_value_nothing_here_or_below_reads() -> None:
    used = step(name="used", output="w")(polish.fn)  # reads `draft`, and nothing reads `w`
    for_the_branch = step(name="for_the_branch", output="saved")(draft.fn)  # `reuse` reads it
    timed = step(name="timed", output="t", timeout=1)(draft.fn)  # unread, but not plain

    graph = Graph([draft, used, for_the_branch, router(pick, {"a": [reuse]}), timed])
    unread = {
        node.name for node, flag in zip(graph.nodes, graph._tables.unread, strict=True) if flag
    }
    assert unread == {"used"}
