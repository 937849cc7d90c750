"""The summary's figures (`engine/report/_summary.py`): percentiles, which speculated branches
were right (each judged by its own router), and cache evictions by kind in the report. How
runs add up into a summary is tested in `test_summarize.py`."""

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
    percentile,
    summarize,
    summary_tables,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trio.testing import MockClock


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
