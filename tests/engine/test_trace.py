"""The run model: derived figures, and `to_dict` kept for one release as the schema's JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
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


def test_critical_path_ends_on_a_trace_whose_entries_wait_on_each_other() -> None:
    """A log can hold any `waited_on`: two zero-length entries at one instant that name
    each other once looped for ever (found by the schema's round-trip property test)."""
    from specroute.engine import Mode, RunResult, StepStatus, TraceEntry

    def entry(name: str, waited_on: tuple[int, ...]) -> TraceEntry:
        return TraceEntry(
            step=name, branch="", start=1.0, end=1.0, status=StepStatus.OK,
            speculative=False, wasted=False, waited_on=waited_on,
        )  # fmt: skip

    result = RunResult(
        flow="f", mode=Mode.PARALLEL, outputs={}, values={}, routes=(),
        trace=(entry("a", (1,)), entry("b", (0,))), started=0.0, finished=1.0,
    )  # fmt: skip
    assert [e.step for e in result.critical_path] == ["a", "b"]
    # An index past the trace (a damaged log) is not followed either.
    damaged = attrs.evolve(result, trace=(entry("a", ()), entry("b", (0, 7))))
    assert [e.step for e in damaged.critical_path] == ["a", "b"]
