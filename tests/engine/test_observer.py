"""`RunObserver` (`engine/_observer.py`): told as each step execution starts and ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from specroute.engine import Flow, RunObserver, StepStatus, router, step
from specroute.routes import Always, Route, StepFailedError

if TYPE_CHECKING:
    from trio.testing import MockClock


@attrs.define
class Recorder:
    events: list[tuple[object, ...]] = attrs.Factory(list)

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        self.events.append(("start", step, branch, speculative))

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        self.events.append(("end", step, branch, status, seconds))


@step
async def decide(request: str) -> Route:
    await trio.sleep(1)
    return Route(request)


@step(output="answer")
async def quick(request: str) -> str:
    await trio.sleep(0.25)
    return "quick"


@step(output="draft")
async def slow(checked: str) -> str:
    await trio.sleep(3)
    return "slow"


@step(output="answer")
async def after(draft: str) -> str:
    return draft


@step
async def checked(request: str) -> str:
    return "checked"


FLOW = Flow([router(decide, {"quick": [quick], "slow": Flow([checked, slow, after])})])


def test_a_recorder_is_a_run_observer() -> None:
    observer: RunObserver = Recorder()
    assert observer.step_started is not None


async def test_each_execution_is_told_start_and_end_with_branch_and_speculation(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    result = await FLOW.run(request="quick", speculate=Always(), observer=recorder)
    assert result.outputs == {"answer": "quick"}
    events = recorder.events
    assert events[0] == ("start", "decide", "", False)
    assert ("start", "quick", "decide:quick", True) in events
    assert ("end", "quick", "decide:quick", StepStatus.OK, 0.25) in events
    assert ("end", "decide", "", StepStatus.OK, 1.0) in events
    # The loser's running step is cancelled when the router answers, after 1 s.
    assert ("end", "slow", "decide:slow", StepStatus.CANCELLED, 1.0) in events


async def test_steps_that_never_started_are_reported_skipped(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    await FLOW.run(request="quick", speculate=Always(), observer=recorder)
    assert ("end", "after", "decide:slow", StepStatus.SKIPPED, 0.0) in recorder.events
    assert not any(e[0] == "start" and e[1] == "after" for e in recorder.events)


async def test_every_start_is_matched_by_one_end(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    await FLOW.run(request="slow", speculate=Always(), observer=recorder)
    started = sorted((e[1], e[2]) for e in recorder.events if e[0] == "start")
    ended = sorted((e[1], e[2]) for e in recorder.events if e[0] == "end" and e[3] != "skipped")
    assert started == ended
    assert len(started) == 5


async def test_a_failure_is_reported_before_the_run_raises(autojump_clock: MockClock) -> None:
    @step
    async def broken(request: str) -> str:
        await trio.sleep(0.5)
        raise ValueError("no")

    recorder = Recorder()
    with pytest.raises(StepFailedError):
        await Flow([broken]).run(request="x", observer=recorder)
    assert recorder.events == [
        ("start", "broken", "", False),
        ("end", "broken", "", StepStatus.FAILED, 0.5),
    ]
