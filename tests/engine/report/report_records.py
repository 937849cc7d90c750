"""Helpers for the report tests: hand-made runs and log lines, and real runs of tiny flows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from hypothesis import strategies as st
from specroute.engine import (
    Flow,
    Mode,
    RouterDecision,
    RouteTaken,
    RunResult,
    StepStatus,
    StepUsage,
    TraceEntry,
    router,
    step,
)
from specroute.engine.report import SCHEMA_VERSION, RunRecord
from specroute.routes import Always, PlanReason, Prediction, Route

if TYPE_CHECKING:
    from specroute.engine import RunObserver


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
    """One log line (the current schema) with the given figures; the rest are plausible.

    Derived figures (`sequential_ms`, `wasted_ms`, ...) are written as given; a reader
    recomputes them from `steps`.
    """
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


def entry(
    name: str,
    start: float,
    end: float,
    *,
    status: str = "ok",
    branch: str = "",
    speculative: bool = False,
    wasted: bool = False,
    cost: float | None = None,
) -> TraceEntry:
    """`step_data`'s step as a `TraceEntry`: times in ms here, in seconds in the entry."""
    return TraceEntry(
        step=name,
        branch=branch,
        start=start / 1000,
        end=end / 1000,
        status=StepStatus(status),
        speculative=speculative,
        wasted=wasted,
        error="ValueError('boom')" if status == "failed" else None,
        usage=None
        if cost is None
        else StepUsage(calls=1, input_tokens=10, output_tokens=20, cost=cost),
    )


def _taken(data: dict[str, Any]) -> RouteTaken:
    at = data.get("at_ms", 0.0) / 1000
    return RouteTaken(router=data["router"], branch=data["branch"], label=data["label"], at=at)


def run(
    *,
    wall: float,
    sequential: float | None = None,
    route: str | None = None,
    steps: list[TraceEntry] | None = None,
    routes: list[dict[str, Any]] | None = None,
    label: str = "speculative",
    wasted: float = 0.0,
    wasted_cost: float = 0.0,
    hits: int = 0,
    misses: int = 0,
    saved: float = 0.0,
    run_id: str = "0" * 32,
    time: str = "2025-01-08T10:00:00+00:00",
) -> RunRecord:
    """A logged run with these figures (ms); the model derives them from its steps.

    When `steps` fall short of `sequential`, `wasted` or `wasted_cost`, a top-level step
    `work` makes up the useful time and a losing branch `r:lost` the waste.
    """
    trace = list(steps or [])
    useful = sum(e.duration for e in trace if not e.wasted and e.status is not StepStatus.SKIPPED)
    lost = sum(e.duration for e in trace if e.wasted)
    lost_cost = sum(e.cost for e in trace if e.wasted)
    more = 0.0 if sequential is None else sequential - useful * 1000
    assert more > -1e-6, "the steps already take longer than `sequential`"
    if more > 1e-6:
        trace.append(entry("work", 0, more))
    if wasted - lost * 1000 > 1e-6 or wasted_cost - lost_cost > 1e-9:
        cost = wasted_cost - lost_cost
        trace.append(
            entry("lost", 0, wasted - lost * 1000, branch="r:lost", wasted=True,
                  cost=cost if cost > 1e-9 else None)
        )  # fmt: skip
    if routes is None:
        routes = [] if route is None else [{"router": "r", "branch": "", "label": route}]
    result = RunResult(
        flow="demo",
        mode=Mode.SPECULATIVE,
        outputs={},
        values={},
        routes=tuple(_taken(r) for r in routes),
        trace=tuple(trace),
        started=0.0,
        finished=wall / 1000,
        cache_hits=hits,
        cache_misses=misses,
        cache_saved_time=saved / 1000,
    )
    return RunRecord(result=result, id=run_id, time=time, label=label)


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


def hostile_run(text: str, *, number: int = 0) -> RunRecord:
    """A logged run with `text` in every string field a report shows.

    Flow, configuration, route and router names, step and branch names, a step's error, a
    router's prediction source, plan note and label: three steps (the router, a speculated
    winner, a cancelled loser), so a page must draw three bars.
    """
    branch = f"{text}:{text}"
    lost = f"{text}:lost {text}"
    trace = (
        TraceEntry(step=text, branch="", start=0.0, end=0.1, status=StepStatus.OK,
                   speculative=False, wasted=False),
        TraceEntry(step=f"{text} win", branch=branch, start=0.0, end=0.2,
                   status=StepStatus.OK, speculative=True, wasted=False,
                   usage=StepUsage(calls=1, cost=0.001)),
        TraceEntry(step=f"{text} lose", branch=lost, start=0.0, end=0.1,
                   status=StepStatus.FAILED, speculative=True, wasted=True, error=text,
                   usage=StepUsage(calls=1, unpriced_calls=1)),
    )  # fmt: skip
    decision = RouterDecision(
        router=text, branch="", label=text, at=0.1,
        prediction=Prediction(probabilities={text: 0.75, f"lost {text}": 0.25}, source=text),
        note=text, plan={text: None, f"lost {text}": 1},
        reasons={f"other {text}": PlanReason(probability=0.1, steps=0, saving=0.0, waste=0.0,
                                             note=text)},
    )  # fmt: skip
    result = RunResult(
        flow=text, mode=Mode.SPECULATIVE, outputs={}, values={},
        routes=(RouteTaken(router=text, branch="", label=text, at=0.1),),
        trace=trace, started=0.0, finished=0.2, decisions=(decision,),
    )  # fmt: skip
    return RunRecord(result=result, id=f"{number:032x}", time=text, label=text)


# Pieces that mean something to a terminal, an HTML page or a JSON reader.
HOSTILE = (
    "[/]", "[link=https://pay.example]", "[/link]", "[bold]", "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>", '"', "'", "</bdi>", "<bdi>", "\u202e", "\u2066", "\u2069",
    "&ndash;", "&amp;", "<!--", "-->", "]]>", "{{ 7*7 }}", "{% if %}", "\\", "\n", "\t",
    "\x1b[31m", "\x1b]8;;https://x\x1b\\", "\x00", "NaN", "Infinity", "\ufeff", "é", "😀",
)  # fmt: skip


def hostile_text() -> st.SearchStrategy[str]:
    """Any text, or text built from pieces that are markup somewhere (at least 1 character)."""
    pieces = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=3)), min_size=1)
    return st.one_of(st.text(min_size=1), pieces.map("".join)).filter(lambda t: t.strip() != "")
