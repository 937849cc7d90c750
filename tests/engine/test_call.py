"""The step path (`engine/_call.py`): fallback, timeout, failure wrapping, observer calls."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Flow, StepOptions, StepStatus, router, step
from specroute.engine._step import DEFAULT_EFFECT_GRACE
from specroute.routes import (
    Branches,
    ConfigurationError,
    ConfigurationTypeError,
    Never,
    Route,
    StepFailedError,
    StepTimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trio.testing import MockClock


def entry(result: Any, name: str) -> Any:
    return next(e for e in result.trace if e.step == name)


async def test_a_fallback_stands_in_and_the_trace_says_recovered(
    autojump_clock: MockClock,
) -> None:
    seen: list[BaseException] = []

    def empty(exc: BaseException) -> list[str]:
        seen.append(exc)
        return []

    @step(fallback=empty)
    async def search(query: str) -> list[str]:
        await trio.sleep(0.5)
        raise ConnectionError("index down")

    @step
    async def answer(search: list[str]) -> str:
        return f"{len(search)} hits"

    result = await Flow([search, answer]).run(query="q")
    assert result.outputs == {"answer": "0 hits"}
    recovered = entry(result, "search")
    assert recovered.status is StepStatus.RECOVERED
    assert recovered.error == "ConnectionError('index down')"
    assert recovered.duration == pytest.approx(0.5)
    assert [type(exc) for exc in seen] == [ConnectionError]


async def test_a_two_argument_fallback_gets_the_steps_inputs(autojump_clock: MockClock) -> None:
    def echo(exc: BaseException, inputs: Mapping[str, Any]) -> str:
        return f"default for {inputs['query']}"

    @step(fallback=echo)
    async def search(query: str) -> str:
        raise ValueError("no")

    result = await Flow([search]).run(query="cats")
    assert result.outputs == {"search": "default for cats"}


async def test_a_failing_fallback_is_the_steps_failure(autojump_clock: MockClock) -> None:
    def also_broken(exc: BaseException) -> str:
        raise KeyError("fallback broke")

    @step(fallback=also_broken)
    async def search(query: str) -> str:
        raise ValueError("no")

    with pytest.raises(StepFailedError, match=r"step 'search' failed: KeyError") as info:
        await Flow([search]).run(query="q")
    assert isinstance(info.value.__cause__, KeyError)
    assert entry(info.value, "search").status is StepStatus.FAILED


async def test_a_step_past_its_timeout_fails_with_a_step_timeout(
    autojump_clock: MockClock,
) -> None:
    @step(timeout=2)
    async def slow(x: int) -> int:
        await trio.sleep(10)
        return x

    start = trio.current_time()
    with pytest.raises(StepFailedError, match=r"step 'slow' failed: StepTimeoutError") as info:
        await Flow([slow]).run(x=1)
    assert isinstance(info.value.__cause__, StepTimeoutError)
    assert "timeout of 2s" in str(info.value.__cause__)
    assert trio.current_time() - start == pytest.approx(2.0)


async def test_a_step_inside_its_timeout_returns_its_value(autojump_clock: MockClock) -> None:
    @step(timeout=2)
    async def quick(x: int) -> int:
        await trio.sleep(1.5)
        return x + 1

    assert (await Flow([quick]).run(x=1)).outputs == {"quick": 2}


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
async def test_a_failure_is_wrapped_once_naming_step_and_branch(
    autojump_clock: MockClock, mode: str
) -> None:
    @step
    async def pick(x: int) -> Route:
        return Route("go")

    @step(output="out")
    async def boom(x: int) -> int:
        raise ZeroDivisionError("x/0")

    flow = Flow([router(pick, {"go": [boom]})])
    with pytest.raises(StepFailedError) as info:
        await flow.run(x=1, mode=mode, speculate=Never())
    error = info.value
    assert str(error) == "step 'boom' failed in branch 'pick:go': ZeroDivisionError: x/0"
    assert (error.step, error.branch) == ("boom", "pick:go")
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert error.concurrent_failures == ()


async def test_time_queued_for_a_slot_is_not_step_time(autojump_clock: MockClock) -> None:
    @step
    async def first(x: int) -> int:
        await trio.sleep(1)
        return x

    @step(timeout=5)  # not a plain step: it goes through `call`
    async def second(x: int) -> int:
        await trio.sleep(1)
        return x

    result = await Flow([first, second]).run(x=1, max_concurrency=1)
    assert [round(e.duration, 6) for e in result.trace] == [1.0, 1.0]
    assert result.wall_time == pytest.approx(2.0)


async def test_the_observer_hears_the_status_the_trace_records(autojump_clock: MockClock) -> None:
    heard: list[tuple[str, StepStatus, float]] = []

    class Listener:
        def step_started(self, step: str, branch: str, speculative: bool) -> None:
            heard.append((step, StepStatus.CANCELLED, -1.0))  # a start, for the order

        def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
            heard.append((step, status, seconds))

    @step(fallback=lambda exc: 0)
    async def shaky(x: int) -> int:
        await trio.sleep(0.5)
        raise ValueError("no")

    result = await Flow([shaky]).run(x=1, observer=Listener())
    assert heard == [("shaky", StepStatus.CANCELLED, -1.0), ("shaky", StepStatus.RECOVERED, 0.5)]
    assert entry(result, "shaky").status is StepStatus.RECOVERED


# -- effects are all or nothing ----------------------------------------------------------


def effect_flow(log: list[str], *, seconds: float, grace: float | None = None) -> Flow:
    """`save` (an effect taking `seconds`) beside `check` (fails after 1 s)."""
    extra = {} if grace is None else {"effect_grace": grace}

    @step(effect=True, output="saved", **extra)
    async def save(order: str) -> str:
        log.append("save started")
        await trio.sleep(seconds)
        log.append("save finished")
        return order

    @step
    async def check(order: str) -> str:
        await trio.sleep(1)
        raise ValueError("card declined")

    return Flow([save, check], name="checkout")


@pytest.mark.parametrize("mode", ["parallel", "speculative"])
async def test_an_effect_runs_to_its_end_when_a_sibling_fails(
    autojump_clock: MockClock, mode: str
) -> None:
    log: list[str] = []
    with pytest.raises(StepFailedError) as caught:
        await effect_flow(log, seconds=3).run(order="o-1", mode=mode)
    assert log == ["save started", "save finished"]
    assert trio.current_time() == 3
    saved = entry(caught.value, "save")
    assert (saved.status, saved.end) == (StepStatus.OK, 3)


@pytest.mark.parametrize("mode", ["parallel", "speculative"])
async def test_an_effect_past_its_grace_is_cancelled_and_the_trace_says_so(
    autojump_clock: MockClock, mode: str
) -> None:
    log: list[str] = []
    with pytest.raises(StepFailedError) as caught:
        await effect_flow(log, seconds=10, grace=2).run(order="o-1", mode=mode)
    assert log == ["save started"]
    assert trio.current_time() == 3  # the sibling failed at 1, plus a grace of 2
    saved = entry(caught.value, "save")
    assert (saved.status, saved.end) == (StepStatus.CANCELLED, 3)
    assert "effect_grace" in (saved.error or "")


@pytest.mark.parametrize("mode", ["sequential", "parallel", "speculative"])
async def test_an_effect_runs_to_its_end_when_the_run_is_cancelled_from_outside(
    autojump_clock: MockClock, mode: str
) -> None:
    log: list[str] = []
    with trio.move_on_after(1) as outside:
        await effect_flow(log, seconds=3).run(order="o-1", mode=mode)
    assert outside.cancelled_caught
    assert log == ["save started", "save finished"]
    assert trio.current_time() == 3


@pytest.mark.parametrize("mode", ["sequential", "parallel", "speculative"])
@pytest.mark.parametrize("effect", [True, False])
async def test_no_step_is_called_once_its_scope_is_cancelled(mode: str, effect: bool) -> None:
    log: list[str] = []
    with trio.CancelScope() as outside:

        @step
        async def first(order: str) -> str:
            outside.cancel()  # its value appears in the same instant as the cancel
            return order

        @step(effect=effect, output="saved")
        async def then(first: str) -> str:
            log.append("called")
            await trio.lowlevel.checkpoint()
            return first

        await Flow([first, then]).run(order="o-1", mode=mode)
    assert outside.cancelled_caught
    assert log == []


@pytest.mark.parametrize("grace", [0, -1, math.nan, math.inf])
def test_effect_grace_must_be_a_positive_number(grace: float) -> None:
    with pytest.raises(ConfigurationError, match="`effect_grace` must be a number > 0"):
        StepOptions(effect=True, effect_grace=grace)


@pytest.mark.parametrize("grace", ["5", True, None])
def test_effect_grace_of_the_wrong_kind_is_refused(grace: Any) -> None:
    with pytest.raises(ConfigurationTypeError, match="`effect_grace`"):
        StepOptions(effect=True, effect_grace=grace)


def test_effect_grace_has_a_documented_default() -> None:
    assert StepOptions().effect_grace == DEFAULT_EFFECT_GRACE > 0


async def test_an_effects_llm_calls_are_never_hedged(autojump_clock: MockClock) -> None:
    # Both steps call a server whose first answers take 100 s, later ones 1 s; the client
    # hedges after 1 s. Only the plain step's call is hedged: an effect runs as written.
    from hedge_mocks import Scripted, client_over
    from specroute.engine.llm import Hedge, HedgeRole

    opened: list[Any] = []
    client = client_over(
        Scripted([100.0, 100.0, 1.0]), opened, hedge=Hedge(initial_delay=1.0, max_extra=1.0)
    )
    try:

        @step(output="draft")
        async def write(order: str) -> str:
            return (await client.complete(order, model="gpt-4o", stream=True)).text

        @step(effect=True, output="sent")
        async def send(order: str) -> str:
            return (await client.complete(order, model="gpt-4o", stream=True)).text

        result = await Flow([write, send], name="mail").run(order="hi")
    finally:
        for http in opened:
            await http.aclose()

    write_usage = entry(result, "write").usage
    send_usage = entry(result, "send").usage
    assert (write_usage.calls, write_usage.hedges_started, write_usage.hedges_won) == (2, 1, 1)
    assert (send_usage.calls, send_usage.hedges_started) == (1, 0)
    assert entry(result, "send").end - entry(result, "send").start == pytest.approx(100.0)
    assert all(r.hedge is None for r in client.meter.records() if r.finished > 99)
    assert any(r.hedge is HedgeRole.BACKUP for r in client.meter.records())


@pytest.mark.parametrize("mode", ["parallel", "speculative", "sequential"])
async def test_a_value_only_a_branch_reads_reaches_the_branch_that_waits_for_it(
    autojump_clock: MockClock, mode: str
) -> None:
    # No step of the top flow reads `draft`: only the branch does, so the branch waits for
    # it from above. A plain step's value that nothing reads is only stored (`Tables.unread`);
    # this one is read, so writing it must wake the waiting branch.
    @step
    async def draft(topic: str) -> str:
        await trio.sleep(1)
        return f"draft on {topic}"

    @step
    async def pick(topic: str) -> Route:
        return Route("edit")

    @step(output="final")
    async def edit(draft: str) -> str:
        return draft.upper()

    @step
    async def tally(topic: str) -> int:  # read by nothing at all
        return len(topic)

    flow = Flow([draft, router(pick, {"edit": [edit]}), tally])
    with trio.fail_after(60):
        result = await flow.run(topic="x", mode=mode)
    assert dict(result.outputs) == {"final": "DRAFT ON X", "tally": 1}
    assert result.finished - result.started == pytest.approx(1)


async def test_a_branch_that_loses_as_a_step_ends_runs_no_further_step(
    autojump_clock: MockClock,
) -> None:
    # Branch "b" is a chain, run one step after another in its own task (`Scope.in_order`).
    # Its first step's wait ends in the instant the router answers "a", so the step returns
    # its value after its branch has lost: the next step must be skipped, not run.
    woken = trio.Event()
    called: list[str] = []

    async def pick(x: int) -> Route:
        await trio.sleep(1)
        woken.set()  # the branch's step is rescheduled, and runs after the router's answer
        return Route("a")

    @step(output="out")
    async def fast(x: int) -> int:
        return x

    @step(output="first")
    async def first(x: int) -> int:
        await woken.wait()
        return x

    @step(output="out")
    async def second(first: int) -> int:
        called.append("second")
        return first

    branches = {"a": [fast], "b": [first, second]}
    flow = Flow([router(step(pick), branches)], name="race", outputs=["out"])
    result = await flow.run(x=1, mode="speculative", speculate=Branches({"pick": ["b"]}))
    assert result.outputs == {"out": 1}
    assert called == []
    assert entry(result, "first").status is StepStatus.OK
    assert entry(result, "first").wasted
    assert entry(result, "second").status is StepStatus.SKIPPED


@pytest.mark.parametrize("mode", ["parallel", "speculative"])
async def test_a_chain_step_waits_for_a_value_its_branch_reads_from_above(
    autojump_clock: MockClock, mode: str
) -> None:
    # The branch is a chain (`second` reads `first`), but `second` also reads `context`,
    # which the top flow writes later: it must wait for it, not start when `first` ends.
    @step
    async def context(x: int) -> str:
        await trio.sleep(2)
        return "ctx"

    async def pick(x: int) -> Route:
        return Route("b")

    @step
    async def first(x: int) -> int:
        return x + 1

    @step(output="out")
    async def second(first: int, context: str) -> str:
        return f"{context}:{first}"

    flow = Flow([context, router(step(pick), {"b": [first, second]})], outputs=["out"])
    speculate = Branches({"pick": ["b"]}) if mode == "speculative" else None
    result = await flow.run(x=1, mode=mode, speculate=speculate)
    assert result.outputs == {"out": "ctx:2"}
    assert entry(result, "first").start == 0
    assert entry(result, "second").start == 2
