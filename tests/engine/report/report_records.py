"""Helpers for the report tests: hand-made log records, and real runs of tiny flows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from specroute.engine import Flow, router, step
from specroute.engine.report import SCHEMA_VERSION, RunRecord, parse_record
from specroute.routes import Always, Route

if TYPE_CHECKING:
    from specroute.engine import RunObserver, RunResult


def step_data(
    name: str,
    start: float,
    end: float,
    *,
    status: str = "ok",
    branch: str = "",
    speculative: bool = False,
    wasted: bool = False,
    cost: float | None = None,
) -> dict[str, Any]:
    """One step of a log line; `cost` gives it one LLM call costing that many dollars."""
    usage = None
    if cost is not None:
        usage = {"calls": 1, "input_tokens": 10, "output_tokens": 20, "cost": cost}
    return {
        "name": name,
        "branch": branch,
        "start_ms": start,
        "end_ms": end,
        "status": status,
        "speculative": speculative,
        "wasted": wasted,
        "error": "ValueError('boom')" if status == "failed" else None,
        "similarity": None,
        "usage": usage,
    }


def run_data(
    *,
    wall: float,
    sequential: float,
    route: str | None = None,
    steps: list[dict[str, Any]] | None = None,
    routes: list[dict[str, Any]] | None = None,
    label: str = "speculative",
    wasted: float = 0.0,
    wasted_cost: float = 0.0,
    hits: int = 0,
    misses: int = 0,
    saved: float = 0.0,
    run_id: str = "0" * 32,
    time: str = "2025-01-08T10:00:00+00:00",
) -> dict[str, Any]:
    """One log line (schema 1) with the given figures; the rest are plausible defaults."""
    if routes is None:
        routes = [] if route is None else [{"router": "r", "branch": "", "label": route}]
    return {
        "schema": SCHEMA_VERSION,
        "id": run_id,
        "time": time,
        "label": label,
        "inputs_digest": None,
        "flow": "demo",
        "mode": "speculative",
        "route": route,
        "routes": [{"at_ms": 0.0, **taken} for taken in routes],
        "wall_ms": wall,
        "wasted_ms": wasted,
        "sequential_ms": sequential,
        "step_ms": sequential + wasted,
        "critical_path": [],
        "cache": {"hits": hits, "misses": misses, "saved_ms": saved},
        "usage": None,
        "wasted_cost": wasted_cost,
        "steps": steps or [],
    }


def run(**figures: Any) -> RunRecord:
    """`run_data(...)` parsed into a `RunRecord`."""
    return parse_record(run_data(**figures))


async def writer_run(*, fail_long: bool = False, observer: RunObserver | None = None) -> RunResult:
    """A router that picks `short` after 0.5 s while `long` (2 s) runs speculatively."""

    @step
    async def decide(request: str) -> Route:
        await trio.sleep(0.5)
        return Route("short")

    @step(output="text")
    async def write_long(request: str) -> str:
        await trio.sleep(0.2)
        if fail_long:
            raise ValueError("long failed")
        await trio.sleep(1.8)
        return "long"

    @step(output="text")
    async def write_short(request: str) -> str:
        await trio.sleep(0.1)
        return "short"

    flow = Flow(
        [router(decide, {"short": Flow([write_short]), "long": Flow([write_long])})],
        name="writer",
    )
    return await flow.run(request="secret request", speculate=Always(), observer=observer)
