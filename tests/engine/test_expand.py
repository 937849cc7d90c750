"""The scopes maps and loops run their bodies in (`engine/_expand.py`): a body scope chosen and
confirmed with its enclosing branch, an isolated one failing alone, items side by side in one
nursery (each counting its own inputs, holding its slot of the cap until its last step ends)
or one after another in sequential mode, and the helpers both expansions share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import (
    ConfigurationTypeError,
    Flow,
    ItemFailed,
    Route,
    StepDefinitionError,
    StepFailedError,
    StepStatus,
    loop,
    map_,
    router,
    step,
)
from specroute.engine._expand import (
    BodyScope,
    Gathering,
    ItemEnd,
    body_graph,
    child_path,
    outside_a_flow,
    producers,
)
from specroute.engine._graph import Graph, Router
from specroute.engine._state import Execution, RunState, Scope
from specroute.engine._usage import RunMeter
from specroute.routes import LearnedState

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from trio.testing import MockClock


@step
async def pick(request: str) -> Route:
    return Route("left")


@step
async def left(request: str) -> str:
    return request


BRANCHING = Flow([router(pick, {"left": [left]})])
ITEM = Graph([left], name="item")


def new_run() -> RunState:
    """A run's state with nothing configured (called inside trio: it reads the clock)."""
    return RunState(None, None, None, "", None, LearnedState(), RunMeter())


def branch_of(run: RunState, top: Scope) -> Scope:
    """Branch `pick:left` of `BRANCHING` under `top`, started before it was chosen."""
    node = BRANCHING.nodes[0]
    assert isinstance(node, Router)
    return Scope(run, node.branches["left"], top, node, "left", None)


def item_of(
    run: RunState, parent: Scope, *, isolated: bool = False, speculative: bool = False
) -> BodyScope:
    """Item 0 of a map `m` under `parent`."""
    path = child_path(parent, "m[0]")
    return BodyScope(
        run, ITEM, parent, path, frozenset(), isolated=isolated, speculative=speculative
    )


class Log:
    """When each body step started, by (step, item)."""

    def __init__(self) -> None:
        self.started: dict[tuple[str, int], float] = {}

    def start(self, name: str, item: int) -> None:
        self.started[name, item] = trio.current_time()


# -- the scopes -------------------------------------------------------------------------------


async def test_a_body_path_nests_under_its_parents_and_names_it_in_messages() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    branch = branch_of(run, top)
    assert child_path(top, "m[0]") == "m[0]"
    assert child_path(branch, "m[0]") == "pick:left/m[0]"
    assert item_of(run, branch).where == " in 'pick:left/m[0]'"


async def test_a_body_scope_is_chosen_and_confirmed_with_its_enclosing_branch() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    assert item_of(run, top).confirmed  # nothing above it is still in question
    branch = branch_of(run, top)
    item = item_of(run, branch)
    assert item.chosen
    assert not item.confirmed  # its effects wait for the branch's router
    branch.choose({})
    assert branch.confirmed
    assert item.confirmed


async def test_a_speculative_body_scope_waits_to_be_chosen_itself() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    branch = branch_of(run, top)
    ahead = item_of(run, branch, speculative=True)
    assert not ahead.chosen
    assert not ahead.confirmed
    branch.choose({})
    assert not ahead.confirmed  # a speculative iteration is confirmed only once chosen
    ahead.choose({})
    assert ahead.chosen
    assert ahead.confirmed


async def test_an_isolated_scope_keeps_its_first_failure_and_cancels_only_itself() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    item = item_of(run, top, isolated=True)
    sibling = item_of(run, top, isolated=True)
    first = StepFailedError("first", step="left", branch="m[0]")
    second = StepFailedError("second", step="left", branch="m[0]")
    item.fail(first)
    item.fail(second)
    assert item.failure is first
    assert item.doomed
    assert not sibling.doomed
    assert not run.failures  # the map reports it in its value instead


async def test_a_failure_in_a_scope_that_is_not_isolated_fails_what_encloses_it() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    item = item_of(run, top)
    error = StepFailedError("item failed", step="left", branch="m[0]")
    item.fail(error)
    assert list(run.failures) == [error]
    assert item.failure is None


async def test_the_items_done_count_down_to_the_gathering_and_free_their_slots() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    first, second = item_of(run, top), item_of(run, top)
    limiter = trio.CapacityLimiter(2)
    for item in (first, second):
        await limiter.acquire_on_behalf_of(item)
    told: list[BodyScope] = []
    gathering = Gathering(2, limiter, told.append)
    ItemEnd(gathering, first).set()
    assert told == [first]
    assert limiter.borrowed_tokens == 1
    assert not gathering.all_done.is_set()
    ItemEnd(gathering, second).set()
    assert told == [first, second]
    assert limiter.borrowed_tokens == 0
    assert gathering.all_done.is_set()


async def test_producers_are_the_kept_executions_of_the_names_asked_in_run_order() -> None:
    run = new_run()
    top = Scope(run, BRANCHING, None, None, "", None)
    one, two, other = item_of(run, top), item_of(run, top), item_of(run, top)

    def executed(scope: Scope, output: str, status: StepStatus) -> Execution:
        execution = Execution(scope, output, (), output, 0.0, False, 1.0, status)
        run.executions.append(execution)
        return execution

    wanted = [
        executed(two, "result", StepStatus.OK),
        executed(one, "result", StepStatus.CACHED),
        executed(one, "result", StepStatus.RECOVERED),
    ]
    executed(one, "draft", StepStatus.OK)  # not a name asked for
    executed(two, "result", StepStatus.FAILED)
    executed(two, "result", StepStatus.CANCELLED)
    executed(other, "result", StepStatus.OK)  # not a scope asked for
    assert producers(run, [one, two], frozenset({"result"})) == wanted


def test_a_body_is_one_step_a_list_or_a_flow() -> None:
    one = body_graph(left, "map 'm'")
    assert (one.name, list(one.nodes)) == ("left", [left])
    listed = body_graph([left], "map 'm'")
    assert (listed.name, list(listed.nodes)) == ("body", [left])
    assert body_graph(BRANCHING, "map 'm'") is BRANCHING
    with pytest.raises(ConfigurationTypeError, match="map 'm': branch 'body' must be a Flow"):
        body_graph("left", "map 'm'")


async def test_a_map_or_loop_called_on_its_own_says_to_put_it_in_a_flow() -> None:
    @step
    async def done(draft: str) -> bool:
        return True

    alone = [
        map_(left, over="requests", into="out"),
        loop([done], until="done", into="out", max_iterations=2),
    ]
    for expansion in alone:
        with pytest.raises(StepDefinitionError, match="put it in a Flow and run the flow"):
            await expansion(requests=["x"], draft="x")
    with pytest.raises(StepDefinitionError, match="only inside a flow"):
        await outside_a_flow()


# -- items side by side ---------------------------------------------------------------------


def two_step_map(log: Log, *, fails: Collection[tuple[str, int]] = (), **options: Any) -> Flow:
    """Per item: `draft` (1 s), then `polish` (1 s) reading it; each fails for the
    `(step, doc)` pairs in `fails`. `options` go to `map_`."""

    @step
    async def draft(doc: int) -> int:
        log.start("draft", doc)
        await trio.sleep(1)
        if ("draft", doc) in fails:
            raise ValueError(f"doc {doc} is unreadable")
        return doc

    @step
    async def polish(draft: int) -> int:
        log.start("polish", draft)
        await trio.sleep(1)
        if ("polish", draft) in fails:
            raise ValueError(f"doc {draft} cannot be polished")
        return draft * 10

    body = [draft, polish]
    return Flow([map_(body, over="docs", item="doc", result="polish", into="out", **options)])


async def test_items_whose_steps_wait_on_each_other_each_count_their_own_inputs(
    autojump_clock: MockClock,
) -> None:
    log = Log()
    with trio.fail_after(60):
        result = await two_step_map(log).run(docs=[0, 1, 2], mode="parallel")
    assert result.outputs["out"] == (0, 10, 20)
    assert [log.started["polish", doc] for doc in range(3)] == [1, 1, 1]
    assert result.wall_time == 2


async def test_a_capped_item_holds_its_slot_until_its_last_step_ends(
    autojump_clock: MockClock,
) -> None:
    log = Log()
    with trio.fail_after(60):
        result = await two_step_map(log, max_parallel=1).run(docs=[0, 1], mode="parallel")
    assert result.outputs["out"] == (0, 10)
    assert log.started == {("draft", 0): 0, ("polish", 0): 1, ("draft", 1): 2, ("polish", 1): 3}


async def test_items_queued_for_the_runs_cap_are_all_waited_for(
    autojump_clock: MockClock,
) -> None:
    log = Log()
    with trio.fail_after(60):
        result = await two_step_map(log).run(docs=[0, 1, 2], mode="parallel", max_concurrency=1)
    assert result.outputs["out"] == (0, 10, 20)
    assert result.wall_time == 6


async def test_each_item_is_told_finished_as_its_last_step_ends(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    # A checkpoint is what listens: it writes each finished item's result. (No deadline
    # here: the clock jumps ahead while the files are read in a thread.)
    log = Log()
    flow = two_step_map(log, checkpoint=tmp_path)
    await flow.run(docs=[0, 1, 2], mode="parallel")
    log.started.clear()
    again = await flow.run(docs=[0, 1, 2], mode="parallel")
    assert again.outputs["out"] == (0, 10, 20)
    assert log.started == {}  # all three were written, so none ran again


async def test_an_isolated_items_failure_cancels_the_rest_of_that_item_only(
    autojump_clock: MockClock,
) -> None:
    @step
    async def check(doc: int) -> bool:
        await trio.sleep(1)
        if doc == 1:
            raise ValueError("doc 1 is unreadable")
        return True

    @step
    async def summarize(doc: int) -> str:
        await trio.sleep(3)
        return f"s{doc}"

    @step
    async def result(check: bool, summarize: str) -> str:
        return summarize

    body = [check, summarize, result]
    flow = Flow([map_(body, over="docs", item="doc", into="out", on_error="collect")])
    with trio.fail_after(60):
        ran = await flow.run(docs=[0, 1, 2], mode="parallel")
    assert ran.outputs["out"][0::2] == ("s0", "s2")
    assert isinstance(ran.outputs["out"][1], ItemFailed)
    statuses = {(e.step, e.branch): e.status for e in ran.trace if e.step == "summarize"}
    assert statuses == {
        ("summarize", "out[0]"): StepStatus.OK,
        ("summarize", "out[1]"): StepStatus.CANCELLED,
        ("summarize", "out[2]"): StepStatus.OK,
    }


# -- items one after another --------------------------------------------------------------------


async def test_sequential_items_stop_at_the_first_failure(autojump_clock: MockClock) -> None:
    log = Log()
    with pytest.raises(StepFailedError, match="doc 1 is unreadable") as caught:
        await two_step_map(log, fails={("draft", 1)}).run(docs=[0, 1, 2], mode="sequential")
    assert log.started == {("draft", 0): 0, ("polish", 0): 1, ("draft", 1): 2}
    statuses = {(e.step, e.branch): e.status for e in caught.value.trace if e.branch}
    assert statuses == {
        ("draft", "out[0]"): StepStatus.OK,
        ("polish", "out[0]"): StepStatus.OK,
        ("draft", "out[1]"): StepStatus.FAILED,
        ("polish", "out[1]"): StepStatus.SKIPPED,
    }


async def test_sequential_items_with_a_router_run_it_then_its_branch(
    autojump_clock: MockClock,
) -> None:
    order: list[str] = []

    @step
    async def route(doc: int) -> Route:
        order.append(f"route {doc}")
        await trio.sleep(1)
        return Route("even" if doc % 2 == 0 else "odd")

    @step(output="kind")
    async def even(doc: int) -> str:
        order.append(f"even {doc}")
        await trio.sleep(1)
        return "even"

    @step(output="kind")
    async def odd(doc: int) -> str:
        order.append(f"odd {doc}")
        await trio.sleep(1)
        return "odd"

    body = [router(route, {"even": [even], "odd": [odd]})]
    flow = Flow([map_(body, over="docs", item="doc", result="kind", into="kinds")])
    with trio.fail_after(60):
        result = await flow.run(docs=[0, 1], mode="sequential")
    assert result.outputs["kinds"] == ("even", "odd")
    assert order == ["route 0", "even 0", "route 1", "odd 1"]
    assert result.wall_time == 4


async def test_sequential_isolated_items_tell_only_of_those_that_produced_their_value(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    log = Log()
    failing = two_step_map(log, fails={("draft", 1)}, on_error="collect", checkpoint=tmp_path)
    first = await failing.run(docs=[0, 1, 2], mode="sequential")
    assert isinstance(first.outputs["out"][1], ItemFailed)
    log.started.clear()
    again = await two_step_map(log, checkpoint=tmp_path).run(docs=[0, 1, 2])
    assert again.outputs["out"] == (0, 10, 20)
    assert set(log.started) == {("draft", 1), ("polish", 1)}  # only the failed one ran


async def test_a_sequential_item_whose_last_step_fails_is_not_finished(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    log = Log()
    with pytest.raises(StepFailedError, match="doc 1 cannot be polished"):
        await two_step_map(log, fails={("polish", 1)}, checkpoint=tmp_path).run(
            docs=[0, 1], mode="sequential"
        )
    log.started.clear()
    again = await two_step_map(log, checkpoint=tmp_path).run(docs=[0, 1], mode="sequential")
    assert again.outputs["out"] == (0, 10)
    assert set(log.started) == {("draft", 1), ("polish", 1)}  # item 1 was not written
