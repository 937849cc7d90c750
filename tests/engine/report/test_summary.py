"""The summary's arithmetic on small logs computed by hand."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from report_records import entry, run
from rich.console import Console
from specroute.cache import CacheOptions, ExactCache, ExactCacheConfig, open_cache
from specroute.engine import Flow, step
from specroute.engine.report import (
    Distribution,
    RunLog,
    RunRecord,
    percentile,
    summarize,
    summary_tables,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trio.testing import MockClock

GEN = "r:gen"


def hand_log() -> list[RunRecord]:
    """Three runs of route gen, one of reuse; one right and one wrong speculation.

    Each run's baseline is its useful steps' durations added up (`run` adds a step `work`
    where the listed steps fall short).
    """
    right = run(
        wall=300,
        sequential=400,
        route="gen",
        routes=[{"router": "r", "branch": "", "label": "gen", "at_ms": 200}],
        steps=[
            entry("r", 0, 200),
            entry("a", 0, 150, branch=GEN, speculative=True, cost=0.01),
            entry("b", 150, 200, branch=GEN, speculative=True),
        ],
        label="speculative",
    )
    plain = run(wall=500, sequential=600, route="gen", label="parallel")
    cached = run(
        wall=700,
        sequential=700,
        route="gen",
        label="sequential",
        hits=2,
        misses=2,
        saved=300,
        steps=[entry("a", 0, 1, status="cached"), entry("z", 1, 2, status="cached")],
    )
    wrong = run(
        wall=100,
        sequential=100,
        route="reuse",
        wasted=200,
        wasted_cost=0.02,
        routes=[{"router": "r", "branch": "", "label": "reuse", "at_ms": 100}],
        steps=[
            entry("r", 0, 100),
            entry("a", 0, 100, branch=GEN, speculative=True, wasted=True, cost=0.01),
            entry(
                "b",
                100,
                200,
                branch=GEN,
                speculative=True,
                wasted=True,
                cost=0.01,
                status="cancelled",
            ),
            entry("c", 200, 200, branch=GEN, speculative=True, status="skipped"),
            entry("f", 0, 0, status="failed"),
        ],
        label="speculative",
    )
    return [right, plain, cached, wrong]


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([400, 100, 300, 200], 50) == 250
    assert percentile([100, 200, 300, 400], 95) == pytest.approx(385)
    assert percentile([7], 95) == 7
    assert percentile([1, 2], 0) == 1
    assert percentile([1, 2], 100) == 2
    with pytest.raises(ValueError, match="`values` must hold at least one number"):
        percentile([], 50)
    with pytest.raises(ValueError, match="`pct` must be between 0 and 100, got 101"):
        percentile([1], 101)
    assert Distribution.of([]) == Distribution()


def test_wall_against_the_sequential_baseline() -> None:
    summary = summarize(hand_log())
    assert summary.runs == 4
    assert summary.wall.p50 == 400
    assert summary.wall.p95 == pytest.approx(670)
    assert summary.sequential.p50 == 500
    assert summary.saved_ms == pytest.approx(50)  # (100 + 100 + 0 + 0) / 4
    assert summary.saved_pct == pytest.approx(200 / 1800)
    assert summary.speedup == pytest.approx(1800 / 1600)
    assert summary.failed_steps == 1
    assert summary.wasted_ms == 200
    assert summary.wasted_cost == pytest.approx(0.02)


def test_routes_and_shares() -> None:
    gen, reuse = summarize(hand_log()).routes
    assert (gen.route, gen.runs, gen.share) == ("gen", 3, 0.75)
    assert gen.wall.p50 == 500
    assert gen.wall.p95 == pytest.approx(680)
    assert gen.saved_ms == pytest.approx(200 / 3)
    assert gen.saved_pct == pytest.approx(200 / 1700)
    assert (reuse.route, reuse.runs, reuse.share) == ("reuse", 1, 0.25)
    assert reuse.wasted_ms == 200
    assert reuse.wasted_cost == pytest.approx(0.02)


def test_speculation_right_and_wrong() -> None:
    speculation = summarize(hand_log()).speculation
    assert (speculation.runs, speculation.speculated) == (2, 2)
    assert (speculation.right, speculation.wrong, speculation.right_rate) == (1, 1, 0.5)
    # Right: a ran 0-150 and b 150-200; the router decided at 200: a 200 ms head start.
    assert speculation.saved_ms == 200
    assert speculation.saved_ms_mean == 200
    # Wrong: a (0-100) and b (100-200, cancelled) are waste; c never started.
    assert speculation.wasted_ms == 200
    assert speculation.wasted_cost == pytest.approx(0.02)


def test_nested_branch_speculation_is_judged_by_its_own_router() -> None:
    record = run(
        wall=10,
        sequential=10,
        route="x",
        routes=[
            {"router": "r", "branch": "", "label": "x", "at_ms": 5},
            {"router": "q", "branch": "r:x", "label": "y", "at_ms": 8},
        ],
        steps=[
            entry("s", 0, 9, branch="r:x/q:y", speculative=True),
            entry("t", 0, 9, branch="r:x/q:z", speculative=True, wasted=True),
        ],
    )
    speculation = summarize([record]).speculation
    assert (speculation.right, speculation.wrong) == (1, 1)
    assert speculation.saved_ms == 8
    assert speculation.wasted_ms == 9


def test_cache_hit_rate_and_savings() -> None:
    cache = summarize(hand_log()).cache
    assert (cache.hits, cache.misses, cache.hit_rate) == (2, 2, 0.5)
    assert cache.saved_ms == 300
    # a costs $0.01 whenever it is computed; z never was, so its hit is unpriced.
    assert cache.saved_cost == pytest.approx(0.01)
    assert cache.unpriced_hits == 1


def test_roi_is_route_share_times_saving_against_waste() -> None:
    roi = summarize(hand_log()).roi
    assert [(t.route, t.share) for t in roi.terms] == [("gen", 0.75), ("reuse", 0.25)]
    assert roi.saved_ms == pytest.approx(50)  # 75% x 66.7 ms + 25% x 0 ms
    assert roi.wasted_ms == pytest.approx(50)  # 25% x 200 ms
    assert roi.wasted_cost == pytest.approx(0.005)  # 25% x $0.02
    assert roi.cost_per_second_saved == pytest.approx(0.1)
    assert roi.verdict == "costs"
    assert roi.statement == (
        "Speculation saves 50 ms per run (gen 75% x 67 ms + reuse 25% x 0 ms) and wastes "
        "50 ms of step time and $0.0050 per run: $0.1000 per second saved."
    )


def test_roi_verdicts() -> None:
    free = summarize([run(wall=300, sequential=400, route="gen", wasted=100)]).roi
    assert free.verdict == "pays"
    assert free.statement.startswith("Speculation pays for itself: it saves 100 ms per run")
    slow = summarize([run(wall=400, sequential=400, route="gen", wasted=100)]).roi
    assert slow.verdict == "does not pay"
    assert slow.cost_per_second_saved is None


def test_labels_and_empty_logs() -> None:
    labels = {label.label: label for label in summarize(hand_log()).labels}
    assert list(labels) == ["speculative", "parallel", "sequential"]
    assert labels["speculative"].runs == 2
    assert labels["speculative"].speedup == pytest.approx(500 / 400)
    empty = summarize([])
    assert empty.runs == 0
    assert empty.speculation.right_rate is None
    assert empty.cache.hit_rate is None
    assert empty.roi.statement == "No runs."
    assert empty.to_dict()["wall"]["p50"] == 0


def test_map_items_count_with_their_branch_and_loop_iterations_by_being_chosen() -> None:
    """Issue 17: an item's steps (`r:x/m[0]`) are judged with branch `r:x`; a loop's
    iteration started beside the check (`l#2`) is right when it was chosen (not wasted)."""
    record = run(
        wall=10,
        sequential=20,
        route="x",
        routes=[{"router": "r", "branch": "", "label": "x", "at_ms": 5}],
        steps=[
            entry("s", 0, 4, branch="r:x/m[0]", speculative=True),
            entry("s", 0, 6, branch="r:x/m[1]", speculative=True),
            entry("g", 2, 4, branch="l#2", speculative=True),
            entry("g", 4, 7, branch="l#3", speculative=True, wasted=True),
        ],
    )
    speculation = summarize([record]).speculation
    assert (speculation.speculated, speculation.right, speculation.wrong) == (3, 2, 1)
    assert speculation.saved_ms == 5  # r:x's items ran 0-6, the router decided at 5
    assert speculation.wasted_ms == 3


async def test_the_report_shows_cache_evictions_by_kind(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    @step(cache=CacheOptions())
    async def double(number: int) -> int:
        return number * 2

    log = RunLog(tmp_path / "runs.jsonl")
    exact = ExactCache(config=ExactCacheConfig(maxsize=1))
    async with open_cache(exact=exact) as cache:
        for number in range(3):  # the cache keeps one entry: two are dropped
            log.append(await Flow([double]).run(number=number, cache=cache))
    records = log.read().records
    assert [r.result.cache_exact_evictions for r in records] == [0, 1, 2]
    summary = summarize(records)
    assert (summary.cache.exact_evictions, summary.cache.semantic_evictions) == (2, 0)
    console = Console(width=160, record=True)
    console.print(summary_tables(summary))
    assert re.search(r"cache evictions, exact / semantic\s+│?\s*2 / 0", console.export_text())
