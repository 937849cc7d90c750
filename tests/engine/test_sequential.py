"""Sequential mode (`engine/_sequential.py`): one node at a time, in declaration order."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Flow, StepStatus, router, step
from specroute.routes import Route, StepFailedError

if TYPE_CHECKING:
    from trio.testing import MockClock


def make_flow(log: list[str], fail: str | None = None) -> Flow:
    """Two independent steps, a router picking `b`, its two-step branch, then a last step."""

    def timed(name: str, seconds: float, output: str | None = None) -> Any:
        async def body(x: int) -> Any:
            log.append(f"start {name}")
            await trio.sleep(seconds)
            log.append(f"end {name}")
            if name == fail:
                raise RuntimeError(f"{name} broke")
            return Route("b") if name == "pick" else name

        body.__name__ = name
        return step(name=name, output=output)(body)

    @step(output="last")
    async def last(out: str, two: str) -> str:
        log.append("start last")
        return out + two

    branches = {
        "a": Flow([timed("a_only", 1, "out")]),
        "b": Flow([timed("b_1", 1), timed("b_2", 1, "out")], outputs=["out"]),
    }
    nodes = [timed("one", 1), timed("two", 2), router(timed("pick", 1), branches), last]
    return Flow(nodes, name="seq")


async def test_nodes_run_one_at_a_time_in_declaration_order(autojump_clock: MockClock) -> None:
    log: list[str] = []
    result = await make_flow(log).run(x=0, mode="sequential")
    assert log == [
        "start one", "end one", "start two", "end two", "start pick", "end pick",
        "start b_1", "end b_1", "start b_2", "end b_2", "start last",
    ]  # fmt: skip
    assert result.outputs == {"one": "one", "last": "b_2two"}
    assert result.wall_time == pytest.approx(6.0)


async def test_no_two_executions_overlap(autojump_clock: MockClock) -> None:
    result = await make_flow([]).run(x=0, mode="sequential")
    spans = sorted((e.start, e.end) for e in result.trace)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start
    assert result.wall_time == pytest.approx(result.sequential_time)


async def test_the_router_runs_before_its_branch_and_nothing_is_speculative(
    autojump_clock: MockClock,
) -> None:
    result = await make_flow([]).run(x=0, mode="sequential")
    steps = [e.step for e in result.trace]
    assert steps.index("pick") < steps.index("b_1")
    assert "a_only" not in steps  # the branch not taken is not even skipped: never opened
    assert not any(e.speculative or e.wasted for e in result.trace)
    assert [(r.router, r.label) for r in result.routes] == [("pick", "b")]


async def test_the_first_failure_stops_the_run_and_the_rest_is_skipped(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    with pytest.raises(StepFailedError, match=r"step 'two' failed: RuntimeError") as info:
        await make_flow(log, fail="two").run(x=0, mode="sequential")
    assert log == ["start one", "end one", "start two", "end two"]
    status = {e.step: e.status for e in info.value.trace}
    assert status == {
        "one": StepStatus.OK,
        "two": StepStatus.FAILED,
        "pick": StepStatus.SKIPPED,
        "last": StepStatus.SKIPPED,
    }


async def test_a_failure_inside_a_branch_skips_the_branch_rest_and_the_flow_rest(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    with pytest.raises(StepFailedError, match=r"in branch 'pick:b'") as info:
        await make_flow(log, fail="b_1").run(x=0, mode="sequential")
    assert "start b_2" not in log
    status = {(e.step, e.branch): e.status for e in info.value.trace}
    assert status[("b_1", "pick:b")] is StepStatus.FAILED
    assert status[("b_2", "pick:b")] is StepStatus.SKIPPED
    assert status[("last", "")] is StepStatus.SKIPPED
