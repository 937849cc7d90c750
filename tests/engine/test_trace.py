"""The run model: derived figures, and `to_dict` kept for one release as the schema's JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from specroute.engine import Flow, RouterDecision, StepUsage, TraceEntry, step
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from trio.testing import MockClock


def test_entry_cost_and_decision_branch_path() -> None:
    entry = TraceEntry(
        step="s", branch="", start=1.0, end=1.5, status="ok", speculative=False,  # type: ignore[arg-type]
        wasted=False,
    )  # fmt: skip
    assert entry.cost == 0.0
    assert entry.duration == 0.5
    priced = TraceEntry(
        step="s", branch="", start=0, end=1, status="ok", speculative=False,  # type: ignore[arg-type]
        wasted=False, usage=StepUsage(calls=1, cost=0.25),
    )  # fmt: skip
    assert priced.cost == 0.25
    assert RouterDecision(router="q", branch="").branch_path("a") == "q:a"
    assert RouterDecision(router="q", branch="r:x").branch_path("a") == "r:x/q:a"


async def test_run_json_comes_from_the_report_schema(autojump_clock: MockClock) -> None:
    @step(output="b")
    async def first(a: int) -> int:
        await trio.sleep(0.25)
        return a + 1

    result = await Flow([first]).run(a=1)
    # `to_dict` went: the core may not import the report layer that owns the schema.
    assert not hasattr(result, "to_dict")
    data = run_to_json(result)
    assert data["wall_ms"] == 250.0
    assert data["steps"][0]["name"] == "first"
    assert "values" not in data
