"""Hedging in the reports: real hedged runs logged, read back, counted per step by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hedge_mocks import Scripted, client_over
from rich.console import Console
from specroute.engine import Flow, step
from specroute.engine.llm import Hedge, HedgeState
from specroute.engine.report import (
    RunLog,
    StepHedging,
    hedging_by_step,
    summarize,
    summary_tables,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trio.testing import MockClock


async def test_per_step_hedges_won_saved_and_cost_survive_the_log(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    # `draft` calls a server whose 1st and 3rd requests take 100 s, the others 2 s; the
    # client hedges after 1 s. Run 1: the hedge wins at 3 s. Run 2: the primary (2 s) wins.
    opened: list[Any] = []
    server = Scripted([100.0, 2.0, 2.0, 100.0])
    client = client_over(
        server, opened, hedge=Hedge(initial_delay=1.0, max_extra=1.0), state=HedgeState()
    )

    @step(output="text")
    async def draft(topic: str) -> str:
        return (await client.complete(topic, model="gpt-4o", stream=True)).text

    @step(output="title")
    async def title(text: str) -> str:
        return text[:3]

    log = RunLog(tmp_path / "runs.jsonl")
    flow = Flow([draft, title], name="post")
    try:
        for _ in range(2):
            log.append(await flow.run(topic="hedges"))
    finally:
        for http in opened:
            await http.aclose()
    records = log.read().records  # flushes the queued lines first
    costs = [r.cost for r in client.meter.records() if r.status.value == "cancelled"]

    [part] = hedging_by_step(records)
    assert part == StepHedging(
        step="draft",
        calls=4,
        hedges_started=2,
        hedges_won=1,
        saved_ms=0.0,  # no past latency above the 3 s win: nothing shown as saved
        cost=pytest.approx(sum(c for c in costs if c is not None)),
        failed_over=0,
    )
    assert part.win_rate == 0.5
    summary = summarize(records)
    assert summary.hedging == (part,)

    console = Console(record=True, width=120)
    console.print(summary_tables(summary))
    text = console.export_text()
    assert "Hedged LLM calls and failover, per step" in text
    assert "1 (50%)" in text


def test_runs_without_hedges_show_no_hedging_table() -> None:
    summary = summarize([])
    assert summary.hedging == ()
    console = Console(record=True, width=120)
    console.print(summary_tables(summary))
    assert "Hedged" not in console.export_text()
