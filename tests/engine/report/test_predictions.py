"""Predictions and verification in the reports: real runs logged, read back, counted by hand."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
import trio
from report_records import run, run_data, step_data
from rich.console import Console
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import Flow, router, step
from specroute.engine.report import (
    PredictionSummary,
    RunLog,
    RunRecord,
    predictions,
    read_log,
    render_html,
    summarize,
    summary_tables,
)
from specroute.routes import Never, Prediction, PredictivePolicy, Route, RouterView

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from specroute.engine import RunResult
    from trio.testing import MockClock


class Guess:
    """A predictor that always says `slow`, at once and almost sure of it."""

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        return Prediction(probabilities={"slow": 0.99}, source="guess")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        pass


def predicted_flow() -> Flow:
    """Router `pick` (1 s) with a predictor; `slow` is one 2 s step, `fast` is instant."""

    @step(estimated_seconds=1.0)
    async def pick(request: str) -> Route:
        await trio.sleep(1)
        return Route("slow" if request == "new" else "fast")

    @step(output="answer", estimated_seconds=2.0, estimated_dollars=0.001)
    async def generate(request: str) -> str:
        await trio.sleep(2)
        return "generated"

    @step(output="answer")
    async def reuse() -> str:
        return "reused"

    branches = {"slow": Flow([generate]), "fast": Flow([reuse])}
    return Flow([router(pick, branches, predictor=Guess())])


def verified_flow() -> Flow:
    """Router `decide` (0.5 s, semantic cache in verify mode); each branch is one 1 s step."""

    @step(cache=CacheOptions(semantic="request"))
    async def decide(request: str) -> Route:
        await trio.sleep(0.5)
        return Route("known") if "known" in request else Route("new")

    @step(output="answer")
    async def recall(request: str) -> str:
        await trio.sleep(1)
        return "saved"

    @step(output="answer")
    async def think(request: str) -> str:
        await trio.sleep(1)
        return f"answer to {request}"

    return Flow([router(decide, {"known": Flow([recall]), "new": Flow([think])})])


def trusted_flow() -> Flow:
    """Router `classify` whose semantic hits are served unverified."""

    @step(cache=CacheOptions(semantic="request", on_semantic_hit="trust"))
    async def classify(request: str) -> Route:
        await trio.sleep(0.5)
        return Route("only")

    return Flow([router(classify, {"only": Flow([])})])


async def logged_runs() -> list[RunResult]:
    policy = PredictivePolicy(value_of_time=0.001)
    flow = predicted_flow()
    results = [
        await flow.run(request="new", speculate=policy),  # predicted slow: right
        await flow.run(request="old", speculate=policy),  # predicted slow: wrong, 1 s wasted
    ]
    verify = verified_flow()
    async with open_cache(embedder=HashingEmbedder()) as cache:
        # Cold: Always() speculates both branches, but on no prediction.
        results.append(await verify.run(request="known: generate the changelog", cache=cache))
        for request in (
            "known: Generate the changelog!",  # a near match the router confirms
            "Known: generate the changelog!",  # a near match it denies: 0.5 s of recall wasted
            "known: generate the changelog",  # an exact hit: the route is served
        ):
            results.append(await verify.run(request=request, cache=cache, speculate=Never()))
    trust = trusted_flow()
    async with open_cache(embedder=HashingEmbedder()) as cache:
        results.append(await trust.run(request="generate the changelog", cache=cache))
        results.append(await trust.run(request="Generate the changelog!", cache=cache))
    return results


async def test_counts_from_a_log(tmp_path: Path, autojump_clock: MockClock) -> None:
    log = RunLog(tmp_path / "runs.jsonl")
    for result in await logged_runs():
        log.append(result)
    reading = log.read()  # flushes the queued lines first
    assert reading.problems == ()
    assert [len(record.result.decisions) for record in reading.records] == [1] * 8
    denied = reading.records[4].result.decisions[0]
    assert denied.prediction is not None
    assert (denied.router, denied.cache, denied.prediction.source) == (
        "decide",
        "semantic (verified)",
        "cache",
    )
    assert (denied.predicted, denied.label, denied.right) == ("known", "new", False)
    assert denied.plan == {"known": None}
    assert denied.similarity is not None
    assert reading.records[0].result.decisions[0].reasons["slow"].steps == 1

    summary = summarize(reading.records)
    by_router = {part.router: part for part in summary.predictions}
    assert list(by_router) == ["classify", "decide", "pick"]
    assert by_router["pick"] == PredictionSummary(
        router="pick",
        decisions=2,
        predicted=2,
        right=1,
        wrong=1,
        accuracy=0.5,
        sources=("guess",),
        speculated=2,
        wasted_ms=pytest.approx(1000.0),  # type: ignore[arg-type]
        wasted_cost=0.0,
    )
    assert by_router["decide"] == PredictionSummary(
        router="decide",
        decisions=4,
        predicted=2,
        right=1,
        wrong=1,
        accuracy=0.5,
        sources=("cache",),
        speculated=2,  # the cold run's Always() plan was not on a prediction
        wasted_ms=pytest.approx(500.0),  # type: ignore[arg-type]
        exact_hits=1,
        verified_hits=2,
        confirmed=1,
        denied=1,
        denied_wasted_ms=pytest.approx(500.0),  # type: ignore[arg-type]
    )
    assert by_router["classify"] == PredictionSummary(
        router="classify", decisions=2, trusted_hits=1
    )

    data = json.loads(json.dumps(summary.to_dict()))
    assert data["predictions"][1]["denied"] == 1
    assert data["predictions"][2]["wrong"] == 1

    console = Console(record=True, width=200)
    console.print(summary_tables(summary))
    text = console.export_text()
    assert "Predictions and verification" in text
    assert "denied (wrong near matches caught)" in text
    assert "1 (500 ms wasted)" in text

    page = render_html(summary, reading.records, run=reading.records[4])
    assert '<h2 id="predictions">Predictions and verification</h2>' in page
    assert "Router decisions in this run" in page
    # The run shows what the near match predicted, what started on it, and the verdict.
    assert re.search(
        r"<td><bdi>known \d+% by cache</bdi></td><td><bdi>known \(whole branch\)</bdi></td>"
        r"<td><bdi>new</bdi></td><td>no</td><td><bdi>semantic \(verified\)",
        page,
    )


def test_older_lines_have_no_decisions() -> None:
    record = run(wall=1, sequential=1)
    assert record.result.decisions == ()
    assert predictions([record]) == ()
    assert summarize([record]).predictions == ()
    console = Console(record=True, width=200)
    console.print(summary_tables(summarize([record])))
    assert "Predictions and verification" not in console.export_text()


def decision(**fields: Any) -> dict[str, Any]:
    """One decision of a log line, as `run_to_json` writes it."""
    return {
        "router": "r",
        "branch": "",
        "label": "gen",
        "at_ms": 100.0,
        "predicted": "gen",
        "probabilities": {"gen": 0.8},
        "source": "statistics",
        "right": True,
        "plan": {"gen": None},
        "reasons": {},
        "cache": None,
        "similarity": None,
        "wasted": False,
        **fields,
    }


def test_malformed_decisions_are_log_problems(tmp_path: Path) -> None:
    bad_plan = {**run_data(wall=1, sequential=1), "decisions": [decision(plan={"gen": "all"})]}
    bad_list = {**run_data(wall=1, sequential=1), "decisions": {"r": "gen"}}
    bad_wasted = {**run_data(wall=1, sequential=1), "decisions": [decision(wasted="yes")]}
    path = tmp_path / "runs.jsonl"
    lines = [bad_plan, bad_list, bad_wasted, run_data(wall=1, sequential=1)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    reading = read_log(path)
    assert len(reading.records) == 1
    reasons = [problem.reason for problem in reading.problems]
    assert reasons == [
        "field `decisions[0].plan.gen` must be int, got 'all'",
        "field `decisions` must be list, got {'r': 'gen'}",
        "field `decisions[0].wasted` must be bool, got 'yes'",
    ]


def test_waste_counts_only_the_lost_branches_and_what_they_nest() -> None:
    data = run_data(
        wall=300,
        sequential=300,
        route="reuse",
        steps=[
            step_data("r", 0, 100),
            step_data("a", 0, 100, branch="r:gen", speculative=True, wasted=True, cost=0.01),
            step_data("b", 0, 50, branch="r:gen/s:x", speculative=True, wasted=True),
            # A branch whose name only starts like the lost one is not part of it.
            step_data("c", 0, 70, branch="r:generous", speculative=True, wasted=True),
            step_data("d", 100, 300, branch="r:reuse"),
        ],
    )
    data["decisions"] = [
        decision(label="reuse", right=False, plan={"gen": None, "reuse": 2}),
        decision(router="other", label="x", predicted=None, probabilities=None, right=None),
    ]
    summary = predictions([RunRecord.from_json(data)])
    assert [part.router for part in summary] == ["other", "r"]
    assert summary[1].wasted_ms == 150
    assert summary[1].wasted_cost == pytest.approx(0.01)
    assert summary[1].speculated == 2
    assert (summary[0].decisions, summary[0].predicted, summary[0].speculated) == (1, 0, 0)


def test_html_escapes_labels_sources_and_notes() -> None:
    data = run_data(wall=1, sequential=1, route="<b>gen</b>")
    reason = {"probability": 0.1, "steps": 0, "saving": 0.0, "waste": 0.1, "note": "<i>no</i>"}
    data["decisions"] = [
        decision(
            label="<b>gen</b>",
            predicted="<b>gen</b>",
            probabilities={"<b>gen</b>": 0.9, "<script>": 0.1},
            source="<em>model</em>",
            plan={"<b>gen</b>": None},
            reasons={"<script>": reason},
        )
    ]
    record = RunRecord.from_json(data)
    page = render_html(summarize([record]), [record])
    assert "Predictions and verification" in page
    for raw in ("<b>gen</b>", "<script>", "<em>model</em>", "<i>no</i>"):
        assert raw not in page
    assert "&lt;b&gt;gen&lt;/b&gt; 90%" in page
    assert "&lt;em&gt;model&lt;/em&gt;" in page
    assert "&lt;script&gt;: &lt;i&gt;no&lt;/i&gt;" in page
