"""From execution records to a result (`engine/_results.py`): waited_on, waste, routes."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Flow, StepStatus, router, step
from specroute.routes import Always, Never, Route

if TYPE_CHECKING:
    from trio.testing import MockClock


def index(result: Any, name: str) -> int:
    return next(i for i, e in enumerate(result.trace) if e.step == name)


def sleeper(name: str, seconds: float, reads: tuple[str, ...] = ()) -> Any:
    async def body(**values: Any) -> Any:
        await trio.sleep(seconds)
        return name

    body.__name__ = name
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in reads]
    )
    return step(body)


def chooser(name: str, seconds: float, label: str, **handed: Any) -> Any:
    async def body(x: int) -> Route:
        await trio.sleep(seconds)
        return Route(label, **handed)

    body.__name__ = name
    return step(body)


async def test_a_step_waited_on_the_steps_whose_values_it_read(autojump_clock: MockClock) -> None:
    a, b = sleeper("a", 1, ("x",)), sleeper("b", 1, ("x",))
    c = sleeper("c", 1, ("a", "b", "x"))
    result = await Flow([a, b, c]).run(x=0)
    assert result.trace[index(result, "a")].waited_on == ()
    assert set(result.trace[index(result, "c")].waited_on) == {
        index(result, "a"),
        index(result, "b"),
    }


async def test_a_chosen_branch_waited_on_its_router_and_what_it_handed_over(
    autojump_clock: MockClock,
) -> None:
    use = step(output="out")(sleeper("use", 1, ("given",)).fn)
    flow = Flow(
        [router(chooser("pick", 1, "go", given=5), {"go": [use]}, handoff={"go": ["given"]})]
    )
    result = await flow.run(x=0, speculate=Never())
    assert result.trace[index(result, "use")].waited_on == (index(result, "pick"),)
    assert [e.step for e in result.critical_path] == ["pick", "use"]


async def test_losers_are_wasted_and_skipped_steps_are_not(autojump_clock: MockClock) -> None:
    lose_1 = step(output="mid")(sleeper("lose_1", 2, ("x",)).fn)
    lose_2 = step(output="out")(sleeper("lose_2", 1, ("mid",)).fn)
    win = step(output="out")(sleeper("win", 1, ("x",)).fn)
    branches = {"lose": Flow([lose_1, lose_2]), "win": Flow([win])}
    result = await Flow([router(chooser("pick", 1, "win"), branches)]).run(x=0, speculate=Always())
    by_name = {e.step: e for e in result.trace}
    assert by_name["lose_1"].wasted
    assert by_name["lose_1"].status is StepStatus.CANCELLED
    assert by_name["lose_2"].status is StepStatus.SKIPPED
    assert not by_name["lose_2"].wasted
    assert not by_name["win"].wasted
    assert not by_name["pick"].wasted
    assert result.wasted_time == pytest.approx(1.0)


async def test_routes_are_in_the_order_the_routers_answered(autojump_clock: MockClock) -> None:
    async def late_body(warmup: str) -> Route:
        await trio.sleep(0.2)
        return Route("only")

    out_1 = step(output="o1")(sleeper("out_1", 0, ("x",)).fn)
    out_2 = step(output="o2")(sleeper("out_2", 0, ("x",)).fn)
    early = router(chooser("early", 2, "only"), {"only": [out_1]})
    late = router(step(name="late")(late_body), {"only": [out_2]})
    result = await Flow([early, sleeper("warmup", 0.5, ("x",)), late]).run(x=0)
    assert [(r.router, r.label) for r in result.routes] == [("late", "only"), ("early", "only")]
    assert [r.at - result.started for r in result.routes] == pytest.approx([0.7, 2.0])
    # Decisions are in the order the routers started.
    assert [d.router for d in result.decisions] == ["early", "late"]


async def test_a_router_inside_a_losing_branch_is_no_route_and_a_wasted_decision(
    autojump_clock: MockClock,
) -> None:
    leaf = step(output="out")(sleeper("leaf", 0, ("x",)).fn)
    inner = router(chooser("inner", 0.5, "deep"), {"deep": [leaf]})
    win = step(output="out")(sleeper("win", 0, ("x",)).fn)
    branches = {"lose": Flow([inner]), "win": Flow([win])}
    result = await Flow([router(chooser("outer", 1, "win"), branches)]).run(x=0, speculate=Always())
    assert [(r.router, r.label) for r in result.routes] == [("outer", "win")]
    inner_decision = next(d for d in result.decisions if d.router == "inner")
    assert inner_decision.label == "deep"
    assert inner_decision.branch == "outer:lose"
    assert inner_decision.wasted
    assert not next(d for d in result.decisions if d.router == "outer").wasted
