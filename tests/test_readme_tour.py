"""The README's API tour, runnable: the same flow and calls, with stub step bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Branches, Flow, Route, StepStatus, router, step

if TYPE_CHECKING:
    from trio.testing import MockClock

SAVED = {"summarize issues": {"name": "saved-summary"}}


async def find_saved_workflow(user_input: str) -> dict[str, Any] | None:
    await trio.sleep(0.5)
    return SAVED.get(user_input)


@step  # reads `user_input`, returns a routing decision
async def discovery(user_input: str) -> Route:
    found = await find_saved_workflow(user_input)
    return Route("reuse", workflow=found) if found else Route("generate")


@step(output="templatized_input")
async def parameter_discovery(user_input: str) -> str:
    await trio.sleep(0.4)
    return f"template({user_input})"


@step(output="workflow")
async def workflow_generation(templatized_input: str) -> dict[str, Any]:
    await trio.sleep(1.0)
    return {"name": f"new for {templatized_input}"}


@step(output="saved", effect=True)  # a side effect: never runs for a losing branch
async def save_workflow(workflow: dict[str, Any]) -> str:
    return f"saved {workflow['name']}"


@step(output="execution_params")
async def parameter_preparation(workflow: dict[str, Any]) -> dict[str, Any]:
    await trio.sleep(0.3)
    return {"for": workflow["name"]}


OUTPUTS = ["workflow", "execution_params"]
reuse = Flow([parameter_preparation], outputs=OUTPUTS)
generate = Flow(
    [parameter_discovery, workflow_generation, save_workflow, parameter_preparation],
    outputs=OUTPUTS,
)
planner = Flow(
    [router(discovery, {"reuse": reuse, "generate": generate}, handoff={"reuse": ["workflow"]})],
    name="planner",
    inputs=["user_input"],
)


@pytest.mark.parametrize(
    ("request_text", "route", "wall"),
    [("summarize issues", "reuse", 0.8), ("generate changelog", "generate", 1.7)],
)
async def test_tour_runs_as_written(
    autojump_clock: MockClock, request_text: str, route: str, wall: float
) -> None:
    result = await planner.run(
        user_input=request_text,
        mode="speculative",
        speculate=Branches({"discovery": ["generate"]}),
    )
    assert result.route == route
    assert set(result.outputs) == {"workflow", "execution_params"}
    assert result.wall_time == pytest.approx(wall)
    assert result.sequential_time >= result.wall_time
    assert result.critical_path
    saved = [entry for entry in result.trace if entry.step == "save_workflow"]
    if route == "reuse":
        # The losing branch was cancelled before its effect could run.
        assert all(entry.status is not StepStatus.OK for entry in saved)
        assert result.wasted_time > 0
    else:
        assert [entry.status for entry in saved] == [StepStatus.OK]
