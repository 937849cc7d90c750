"""Run state (`engine/_state.py`): overlays, barriers, and a run that frees itself."""

from __future__ import annotations

import gc
import weakref
from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Flow, _state, router, step
from specroute.routes import Route, StepFailedError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trio.testing import MockClock


@step
async def discovery(request: str) -> Route:
    await trio.sleep(0.5)
    return Route("reuse" if request == "known" else "generate")


@step(output="plan")
async def reuse_plan(request: str) -> str:
    await trio.sleep(0.3)
    return f"reused {request}"


@step
async def draft(request: str) -> str:
    await trio.sleep(1)
    return f"draft for {request}"


@step(output="plan")
async def generate_plan(draft: str) -> str:
    await trio.sleep(1)
    return draft.upper()


PLANNER = Flow(
    [router(discovery, {"reuse": [reuse_plan], "generate": Flow([draft, generate_plan])})]
)


@pytest.fixture
def tracked() -> Iterator[list[weakref.ref[Any]]]:
    """Weak references to every run state and scope made while the test runs."""
    refs: list[weakref.ref[Any]] = []
    original_run, original_scope = _state.RunState.__init__, _state.Scope.__init__

    def run_init(self: _state.RunState, *args: Any, **kwargs: Any) -> None:
        original_run(self, *args, **kwargs)
        refs.append(weakref.ref(self))

    def scope_init(self: _state.Scope, *args: Any, **kwargs: Any) -> None:
        original_scope(self, *args, **kwargs)
        refs.append(weakref.ref(self))

    _state.RunState.__init__ = run_init  # type: ignore[method-assign]
    _state.Scope.__init__ = scope_init  # type: ignore[method-assign]
    try:
        yield refs
    finally:
        _state.RunState.__init__ = original_run  # type: ignore[method-assign]
        _state.Scope.__init__ = original_scope  # type: ignore[method-assign]


@pytest.mark.parametrize("request_text", ["known", "new"])
async def test_finished_run_is_freed_without_the_cycle_collector(
    autojump_clock: MockClock, tracked: list[weakref.ref[Any]], request_text: str
) -> None:
    gc.collect()
    gc.disable()
    try:
        result = await PLANNER.run(request=request_text, mode="speculative")
        assert tracked, "the run made no state to track"
        # Both branches ran (one of them lost), and every scope is gone with the run.
        assert {entry.branch for entry in result.trace} >= {
            "discovery:reuse",
            "discovery:generate",
        }
        alive = [ref() for ref in tracked if ref() is not None]
        assert alive == []
    finally:
        gc.enable()


async def test_a_run_with_an_observer_is_freed_without_the_cycle_collector(
    autojump_clock: MockClock, tracked: list[weakref.ref[Any]]
) -> None:
    # The observer wrapper holds the run's `fail`: the run must let go of it when it ends.
    class Progress:
        def step_started(self, step: str, branch: str, speculative: bool) -> None:
            pass

        def step_finished(self, step: str, branch: str, status: Any, seconds: float) -> None:
            pass

    gc.collect()
    gc.disable()
    try:
        await PLANNER.run(request="new", mode="speculative", observer=Progress())
        assert tracked, "the run made no state to track"
        assert [ref() for ref in tracked if ref() is not None] == []
    finally:
        gc.enable()


async def test_losing_branch_writes_are_never_seen(autojump_clock: MockClock) -> None:
    result = await PLANNER.run(request="known", mode="speculative")
    assert result.outputs == {"plan": "reused known"}
    assert "draft" not in result.values
    wasted = {entry.step for entry in result.trace if entry.wasted}
    assert wasted == {"draft"} or wasted == {"draft", "generate_plan"}


async def test_effect_waits_for_its_branch_to_be_confirmed(autojump_clock: MockClock) -> None:
    started: list[float] = []

    @step(effect=True, output="plan")
    async def save(draft: str) -> str:
        started.append(trio.current_time())
        return draft

    flow = Flow([router(discovery, {"reuse": [reuse_plan], "generate": Flow([draft, save])})])
    result = await flow.run(request="new", mode="speculative")
    assert result.outputs == {"plan": "draft for new"}
    # The draft was ready at 1 s; the effect waited for nothing more (the router said at
    # 0.5 s), so it ran at 1 s; with the router slower, it would have waited.
    assert started == [pytest.approx(1.0)]


async def test_step_limit_parks_steps_until_the_branch_is_chosen(
    autojump_clock: MockClock,
) -> None:
    from specroute.routes import Branches

    @step
    async def slow_router(request: str) -> Route:
        await trio.sleep(3)
        return Route("generate")

    flow = Flow([router(slow_router, {"reuse": [reuse_plan], "generate": [draft, generate_plan]})])
    policy = Branches({"slow_router": {"generate": 1}})
    result = await flow.run(request="new", mode="speculative", speculate=policy)
    starts = {entry.step: entry.start for entry in result.trace}
    assert starts["draft"] == pytest.approx(0.0)  # inside the limit: started early
    assert starts["generate_plan"] == pytest.approx(3.0)  # past it: parked until chosen


async def test_a_scope_sharing_a_cancelled_cancel_scope_is_doomed() -> None:
    # Map items share one cancel scope: cancelling one stops them all, so none may start
    # another node; a scope with a cancel scope of its own is only doomed by its own cancel.
    from specroute.engine._graph import Graph
    from specroute.engine._usage import RunMeter
    from specroute.routes import LearnedState

    flow = Graph([draft], name="item")
    run = _state.RunState(None, None, None, "", None, LearnedState(), RunMeter())
    first, second, alone = (_state.Scope(run, flow, None, None, "", None) for _ in range(3))
    shared, own = trio.CancelScope(), trio.CancelScope()  # never entered: not needed here
    assert first.enter(shared, shared=True)
    assert second.enter(shared, shared=True)
    assert alone.enter(own)
    first.cancel()
    assert first.doomed
    assert second.doomed  # not cancelled itself: its cancel scope was
    assert not alone.doomed
    own.cancel()  # cancelled behind its back, which only a deadline does
    assert not alone.doomed
    alone.cancel()
    assert alone.doomed


async def test_only_a_branch_chosen_before_it_starts_runs_without_a_cancel_scope_of_its_own() -> (
    None
):
    # Nothing but an enclosing scope cancels a chosen branch (its failure fails its parent),
    # so it needs no cancel scope; a top scope, a branch that may lose and a body scope
    # (an isolated map item cancels itself) each get one.
    from specroute.engine._expand import BodyScope
    from specroute.engine._graph import Router
    from specroute.engine._usage import RunMeter
    from specroute.routes import LearnedState

    run = _state.RunState(None, None, None, "", None, LearnedState(), RunMeter())
    top = _state.Scope(run, PLANNER, None, None, "", None)
    node = PLANNER.nodes[0]
    assert isinstance(node, Router)
    reuse = node.branches["reuse"]
    branch = _state.Scope(run, reuse, top, node, "reuse", None)
    item = BodyScope(run, reuse, top, "item", frozenset(), isolated=True)
    assert isinstance(top.cancel_scope_here(), trio.CancelScope)
    assert isinstance(branch.cancel_scope_here(), trio.CancelScope)  # it may still lose
    assert item.chosen
    assert isinstance(item.cancel_scope_here(), trio.CancelScope)
    branch.choose({})
    with branch.cancel_scope_here() as cancel_scope:
        assert cancel_scope is None


@pytest.mark.parametrize("mode", ["parallel", "speculative"])
async def test_a_chosen_branch_stops_when_the_run_fails_elsewhere(
    autojump_clock: MockClock, mode: str
) -> None:
    # The branch runs under the run's cancel scope alone: the failure still stops it.
    @step
    async def pick(request: str) -> Route:
        return Route("reuse")

    @step(output="first")
    async def slow(request: str) -> str:
        await trio.sleep(2)
        return request

    @step(output="second")
    async def after(first: str) -> str:
        return first

    @step(output="other")
    async def boom(request: str) -> str:
        await trio.sleep(1)
        raise ValueError("no")

    flow = Flow([router(pick, {"reuse": [slow, after]}), boom])
    with pytest.raises(StepFailedError, match="boom") as caught:
        await flow.run(request="x", mode=mode)
    statuses = {entry.step: entry.status.value for entry in caught.value.trace}
    assert statuses == {"pick": "ok", "slow": "cancelled", "after": "skipped", "boom": "failed"}
    assert trio.current_time() == 1
