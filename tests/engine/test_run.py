"""Run-time behaviour: isolation, effects, failures, cancellation, limits, timeouts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pytest
import trio
from specroute.engine import Flow, Mode, Step, StepStatus, router, step
from specroute.routes import (
    Always,
    Branches,
    ConfigurationError,
    HandoffError,
    MissingInputError,
    Never,
    Route,
    RouteStatistics,
    RunTimeoutError,
    StepFailedError,
    UnknownInputError,
    UnknownRouteError,
)

if TYPE_CHECKING:
    from trio.testing import MockClock


def make_flow(effects: list[str], *, fail_in: str | None = None) -> Flow:
    """A router (0.5 s) picking `fast` or `slow`; `slow` has a 1 s step and an effect step."""

    @step
    async def decide(request: str) -> Route:
        await trio.sleep(0.5)
        return Route("fast", answer="cached") if request == "known" else Route("slow")

    @step(output="draft")
    async def think(request: str) -> str:
        await trio.sleep(1)
        if fail_in == "think":
            raise ValueError("model refused")
        return f"draft for {request}"

    @step(output="saved", effect=True)
    async def save(draft: str) -> str:
        effects.append(draft)
        await trio.sleep(0.1)
        return "saved"

    @step(output="answer")
    async def finish(draft: str, saved: str) -> str:
        return draft.upper()

    slow = Flow([think, save, finish], name="slow", outputs=["answer"])
    fast = Flow([], name="fast", outputs=["answer"])
    return Flow(
        [router(decide, {"fast": fast, "slow": slow}, handoff={"fast": ["answer"]})],
        name="demo",
    )


async def test_loser_writes_are_never_seen_and_its_effects_never_run(
    autojump_clock: MockClock,
) -> None:
    effects: list[str] = []
    result = await make_flow(effects).run(request="known", speculate=Always())
    assert result.outputs == {"answer": "cached"}
    assert "draft" not in result.values
    assert effects == []
    think = next(e for e in result.trace if e.step == "think")
    assert think.status is StepStatus.CANCELLED
    assert think.wasted
    assert think.speculative
    assert result.wall_time == pytest.approx(0.5)
    assert result.wasted_time == pytest.approx(0.5)


async def test_winner_effect_waits_for_confirmation_then_runs_once(
    autojump_clock: MockClock,
) -> None:
    effects: list[str] = []
    result = await make_flow(effects).run(request="new", speculate=Always())
    assert result.outputs == {"answer": "DRAFT FOR NEW"}
    assert effects == ["draft for new"]
    save = next(e for e in result.trace if e.step == "save")
    # think ran speculatively 0..1 s; the route was known at 0.5 s, so save did not wait.
    assert save.start - result.started == pytest.approx(1.0)
    assert result.wall_time == pytest.approx(1.1)


async def test_effect_in_unconfirmed_branch_waits_at_the_barrier(autojump_clock: MockClock) -> None:
    effects: list[str] = []

    @step
    async def slow_decide(request: str) -> Route:
        await trio.sleep(2)
        return Route("go")

    @step(output="done", effect=True)
    async def act(request: str) -> str:
        effects.append(request)
        return "done"

    flow = Flow([router(slow_decide, {"go": Flow([act], name="go")})])
    result = await flow.run(request="r", speculate=Always())
    act_entry = next(e for e in result.trace if e.step == "act")
    assert act_entry.start - result.started == pytest.approx(2.0)
    assert effects == ["r"]


async def test_modes_agree_on_outputs(autojump_clock: MockClock) -> None:
    for request in ("known", "new"):
        outputs = set()
        for mode in Mode:
            result = await make_flow([]).run(request=request, mode=mode)
            outputs.add(tuple(sorted(result.outputs.items())))
        assert len(outputs) == 1


async def test_winner_failure_names_the_step_with_cause_and_trace(
    autojump_clock: MockClock,
) -> None:
    with pytest.raises(
        StepFailedError, match=r"step 'think' failed in branch 'decide:slow'"
    ) as info:
        await make_flow([], fail_in="think").run(request="new", speculate=Always())
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.step == "think"
    assert info.value.branch == "decide:slow"
    assert any(e.status is StepStatus.FAILED for e in info.value.trace)


async def test_failure_in_losing_branch_before_routing_does_not_fail_the_run(
    autojump_clock: MockClock,
) -> None:
    @step
    async def decide() -> Route:
        await trio.sleep(1)
        return Route("good")

    @step(output="out")
    async def broken() -> str:
        raise RuntimeError("boom")

    @step(output="out")
    async def fine() -> str:
        return "ok"

    flow = Flow([router(decide, {"bad": Flow([broken]), "good": Flow([fine])})])
    result = await flow.run(speculate=Always())
    assert result.outputs == {"out": "ok"}
    failed = [e for e in result.trace if e.status is StepStatus.FAILED]
    assert [e.step for e in failed] == ["broken"]
    assert failed[0].wasted


async def test_concurrent_failures_give_one_error(autojump_clock: MockClock) -> None:
    # Event.wait wakes both steps in one batch, so both fail before the cancellation lands.
    go = trio.Event()

    @step(output="trigger")
    async def fire() -> None:
        await trio.sleep(1)
        go.set()

    @step(output="one")
    async def first() -> None:
        await go.wait()
        raise ValueError("first")

    @step(output="two")
    async def second() -> None:
        await go.wait()
        raise KeyError("second")

    with pytest.raises(StepFailedError) as info:
        await Flow([fire, first, second]).run()
    assert len(info.value.concurrent_failures) == 1
    other = info.value.concurrent_failures[0]
    assert isinstance(other, StepFailedError)
    assert {info.value.step, other.step} == {"first", "second"}


async def test_unknown_label_names_label_and_known_ones(autojump_clock: MockClock) -> None:
    @step
    async def decide() -> Route:
        return Route("sideways")

    flow = Flow([router(decide, {"up": Flow([]), "down": Flow([])})])
    with pytest.raises(UnknownRouteError, match=r"'sideways'.*known labels: 'up', 'down'"):
        await flow.run()


async def test_handoff_mismatch_is_an_error(autojump_clock: MockClock) -> None:
    @step
    async def decide() -> Route:
        return Route("up", surprise=1)

    flow = Flow([router(decide, {"up": Flow([])})])
    with pytest.raises(HandoffError, match=r"handed \['surprise'\] to branch 'up'"):
        await flow.run()


async def test_inputs_are_checked_before_anything_runs(autojump_clock: MockClock) -> None:
    started: list[str] = []

    @step
    async def use(x: int) -> int:
        started.append("use")
        return x

    flow = Flow([use])
    with pytest.raises(MissingInputError, match=r"'x' \(read by 'use'\)"):
        await flow.run()
    with pytest.raises(UnknownInputError, match=r"no value named 'y'"):
        await flow.run(x=1, y=2)
    with pytest.raises(UnknownInputError, match=r"produced by a step"):
        await flow.run(x=1, use=2)
    assert started == []


async def test_run_timeout_cancels_everything(autojump_clock: MockClock) -> None:
    running = 0

    @step
    async def forever() -> None:
        nonlocal running
        running += 1
        try:
            await trio.sleep_forever()
        finally:
            running -= 1

    with pytest.raises(RunTimeoutError, match=r"timeout of 2"):
        await Flow([forever]).run(timeout=2)
    assert running == 0


@pytest.mark.parametrize("shape", ["chain", "chain in a branch", "not a chain"])
@pytest.mark.parametrize("mode", ["parallel", "speculative"])
async def test_a_step_that_overruns_the_timeout_without_yielding_stops_the_run(
    autojump_clock: MockClock, shape: str, mode: str
) -> None:
    # `slow` passes the deadline without a checkpoint, so trio has not noticed it when
    # `slow` ends: the run must notice it itself, start nothing more, and time out (not end
    # short of its outputs, nor run `after` and return as if it had been in time).
    called: list[str] = []

    @step
    async def slow(x: int) -> int:
        await trio.sleep(1)
        autojump_clock.jump(10)  # past the 5 s timeout, without yielding
        return x

    @step(output="out")
    async def after(slow: int) -> int:
        called.append("after")
        return slow

    @step
    async def beside(x: int) -> int:
        return x

    async def pick(x: int) -> Route:
        return Route("go")

    nodes = {
        "chain": [slow, after],
        "chain in a branch": [router(step(pick), {"go": [slow, after]})],
        "not a chain": [slow, after, beside],
    }[shape]
    flow = Flow(nodes, outputs=["out"])
    with pytest.raises(RunTimeoutError, match=r"timeout of 5s") as info:
        await flow.run(x=1, mode=mode, timeout=5)
    assert called == []
    statuses = {entry.step: entry.status for entry in info.value.trace}
    assert statuses["slow"] is StepStatus.OK
    assert statuses["after"] is StepStatus.SKIPPED


async def test_outside_cancellation_propagates_and_leaves_nothing_running(
    autojump_clock: MockClock,
) -> None:
    running = 0

    @step
    async def slow() -> None:
        nonlocal running
        running += 1
        try:
            await trio.sleep(10)
        finally:
            running -= 1

    with trio.move_on_after(1) as scope:
        await Flow([slow]).run()
    assert scope.cancelled_caught
    assert running == 0


async def test_keyboard_interrupt_reaches_the_caller_unwrapped(autojump_clock: MockClock) -> None:
    @step(output="one")
    async def interrupted() -> None:
        await trio.sleep(1)
        raise KeyboardInterrupt

    @step(output="two")
    async def bystander() -> None:
        await trio.sleep(5)

    with pytest.raises(KeyboardInterrupt):
        await Flow([interrupted, bystander]).run()


async def test_step_timeout_fails_the_step(autojump_clock: MockClock) -> None:
    @step(timeout=1)
    async def sluggish() -> None:
        await trio.sleep(2)

    with pytest.raises(StepFailedError, match=r"sluggish.*StepTimeoutError"):
        await Flow([sluggish]).run()


async def test_max_concurrency_caps_steps_in_flight(autojump_clock: MockClock) -> None:
    in_flight = peak = 0

    def make(index: int):  # type: ignore[no-untyped-def]
        @step(name=f"s{index}")
        async def work() -> int:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await trio.sleep(1)
            in_flight -= 1
            return index

        return work

    result = await Flow([make(i) for i in range(7)]).run(max_concurrency=3)
    assert peak == 3
    assert result.wall_time == pytest.approx(3.0)
    assert (await Flow([make(i) for i in range(3)]).run(mode="sequential")).wall_time == 3.0


async def test_step_limit_starts_only_the_first_steps_early(autojump_clock: MockClock) -> None:
    flow = make_flow([])
    result = await flow.run(request="known", speculate=Branches({"decide": {"slow": 1}}))
    assert [e.step for e in result.trace if e.status is StepStatus.CANCELLED] == ["think"]
    result = await flow.run(request="known", speculate=Never())
    assert result.wasted_time == 0
    assert all(not e.speculative for e in result.trace)


async def test_nested_router_inside_speculative_branch(autojump_clock: MockClock) -> None:
    @step
    async def outer() -> Route:
        await trio.sleep(1)
        return Route("deep")

    @step
    async def inner() -> Route:
        await trio.sleep(0.2)
        return Route("b")

    @step(output="leaf")
    async def leaf_a() -> str:
        await trio.sleep(0.5)
        return "a"

    @step(output="leaf")
    async def leaf_b() -> str:
        await trio.sleep(0.5)
        return "b"

    deep = Flow([router(inner, {"a": Flow([leaf_a]), "b": Flow([leaf_b])})], name="deep")
    flow = Flow([router(outer, {"deep": deep, "shallow": Flow([leaf_a])})])
    result = await flow.run(speculate=Always())
    assert result.outputs == {"leaf": "b"}
    # in the order they were decided: the speculative inner router resolved first
    assert [(t.router, t.label) for t in result.routes] == [("inner", "b"), ("outer", "deep")]
    assert result.wall_time == pytest.approx(1.0)
    wasted = sorted((e.step, e.branch) for e in result.trace if e.wasted)
    assert wasted == [("leaf_a", "outer:deep/inner:a"), ("leaf_a", "outer:shallow")]


async def test_observer_sees_every_step_start_and_end(autojump_clock: MockClock) -> None:
    events: list[tuple[str, str, str]] = []

    class Recorder:
        def step_started(self, step: str, branch: str, speculative: bool) -> None:
            events.append(("start", step, branch))

        def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
            events.append((status.value, step, branch))

    result = await make_flow([]).run(request="known", speculate=Always(), observer=Recorder())
    finished = [(status, step) for status, step, _ in events if status != "start"]
    assert sorted(finished) == sorted((e.status.value, e.step) for e in result.trace)
    assert ("start", "think", "decide:slow") in events


async def test_capped_steps_start_in_declaration_order(autojump_clock: MockClock) -> None:
    # Three ready steps of different lengths and one slot: the order, and so the trace, is
    # the order they were written, every time (not trio's scheduling order).
    def make(name: str, seconds: float):  # type: ignore[no-untyped-def]
        @step(name=name)
        async def work() -> str:
            await trio.sleep(seconds)
            return name

        return work

    flow = Flow([make("c", 3), make("a", 1), make("b", 2)])
    for _ in range(5):
        result = await flow.run(max_concurrency=1)
        assert [(e.step, e.start - result.started) for e in result.trace] == [
            ("c", 0.0),
            ("a", 3.0),
            ("b", 4.0),
        ]


async def test_one_limiter_caps_concurrent_runs(autojump_clock: MockClock) -> None:
    in_flight = peak = 0

    @step
    async def busy(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await trio.sleep(1)
        in_flight -= 1
        return x

    shared = trio.CapacityLimiter(2)
    flow = Flow([busy])
    async with trio.open_nursery() as nursery:
        for x in range(5):
            nursery.start_soon(lambda x=x: flow.run(x=x, max_concurrency=shared))
    assert peak == 2


async def test_nested_router_answering_as_its_branch_loses(autojump_clock: MockClock) -> None:
    # The outer and the nested router answer in the same instant; the nested one's winner
    # must not start work in a branch that has just lost (its nursery may be closed).
    @step
    async def outer() -> Route:
        await trio.sleep(2)
        return Route("plain")

    @step
    async def inner() -> Route:
        await trio.sleep(2)
        return Route("x")

    @step(output="first")
    async def first() -> int:
        return 1

    @step(output="leaf")
    async def second(first: int) -> int:
        return first

    @step(output="leaf")
    async def plain() -> int:
        return 0

    # With a predictor the router step runs in a task of its own, and the router task wakes
    # through an event in the same batch in which the lost branch closes its nursery.
    x_branch = Flow([first, second], outputs=["leaf"])
    nested = Flow([router(inner, {"x": x_branch}, predictor=RouteStatistics())], name="n")
    flow = Flow([router(outer, {"deep": nested, "plain": Flow([plain])})])
    policy = Branches({"outer": ["deep"], "inner": {"x": 1}})
    for _ in range(40):  # trio orders same-instant wake-ups at random
        result = await flow.run(speculate=policy)
        assert result.outputs == {"leaf": 0}


def sleeper(name: str, seconds: float) -> Step:
    async def work() -> float:
        await trio.sleep(seconds)
        return trio.current_time()

    return step(name=name, estimated_seconds=seconds)(work)


@pytest.mark.parametrize(("admit", "makespan"), [("ready", 9.0), ("longest", 7.0)])
async def test_longest_first_admission_keeps_a_capped_stage_short(
    autojump_clock: MockClock, admit: Literal["ready", "longest"], makespan: float
) -> None:
    # Declared shortest first: in ready order the 6 s step waits for a slot until 3 s.
    flow = Flow([sleeper(f"s{seconds}", seconds) for seconds in (3, 4, 5, 6)])
    result = await flow.run(mode="parallel", max_concurrency=3, admit=admit)
    assert result.wall_time == pytest.approx(makespan)


async def test_admit_is_checked() -> None:
    with pytest.raises(ConfigurationError, match='`admit` must be "ready"'):
        await Flow([sleeper("s", 1)]).run(admit="fastest")  # type: ignore[arg-type]


async def test_a_step_started_in_a_task_of_its_own_names_the_task_after_itself() -> None:
    # A trio task dump or instrument shows which step a task runs; the first ready step
    # runs in the run's own task.
    names: dict[str, str] = {}

    @step(output="first")
    async def first(x: int) -> int:
        names["first"] = trio.lowlevel.current_task().name
        return x

    @step(output="second")
    async def second(x: int) -> int:
        names["second"] = trio.lowlevel.current_task().name
        return x

    await Flow([first, second]).run(x=1, mode="parallel")
    assert names["second"] == "specroute node 'second'"
    assert names["first"] == trio.lowlevel.current_task().name
