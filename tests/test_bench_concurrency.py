"""bench/concurrency.py compares like with like: its two planners are one design.

In virtual time both take the seed's critical path (Path A 800 ms: the speculative Path B is
cancelled, not waited for; Path B 3700 ms: it started beside Discovery) and give the same
route and outputs, alone and 50 at a time. The hand-written one leaves no cyclic garbage, so
the bench's target of 0 per run is reachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.scripts import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "concurrency.py"


bench: Any = load_script(BENCH, "bench_concurrency")
PATHS = [("A", "reuse", 0.8), ("B", "generate", 3.7)]


@pytest.mark.parametrize(("path", "route", "critical_path"), PATHS)
async def test_both_planners_take_the_critical_path_and_agree(
    autojump_clock: trio.testing.MockClock, path: str, route: str, critical_path: float
) -> None:
    outcomes = {}
    for name, planner in bench.planners(scale=1.0).items():
        start = trio.current_time()
        outcomes[name] = await planner(bench.REQUESTS[path])
        assert trio.current_time() - start == pytest.approx(critical_path), name
    assert outcomes["specroute"] == outcomes["trio"]
    assert outcomes["trio"].route == route
    assert set(outcomes["trio"].outputs) == {"workflow", "execution_params"}


@pytest.mark.parametrize(("path", "route", "critical_path"), PATHS)
async def test_concurrent_runs_overlap_and_agree(
    autojump_clock: trio.testing.MockClock, path: str, route: str, critical_path: float
) -> None:
    expected = await bench.planners(scale=1.0)["trio"](bench.REQUESTS[path])
    for name, planner in bench.planners(scale=1.0).items():
        start = trio.current_time()
        outcomes = await bench.run_concurrently(planner, bench.REQUESTS[path], 50)
        assert trio.current_time() - start == pytest.approx(critical_path), name
        assert outcomes == [expected] * 50
        bench.check(outcomes, expected, name, path)


def test_a_wrong_outcome_stops_the_bench() -> None:
    right = bench.Outcome(route="reuse", outputs={"workflow": 1})
    wrong = bench.Outcome(route="generate", outputs={"workflow": 1})
    with pytest.raises(SystemExit, match=r"trio Path A gave .* in 1 of 2 runs"):
        bench.check([right, wrong], right, "trio", "A")


@pytest.mark.parametrize("path", ["A", "B"])
async def test_the_hand_written_planner_leaves_no_cyclic_garbage(
    autojump_clock: trio.testing.MockClock, path: str
) -> None:
    planner = bench.planners(scale=1.0)["trio"]
    assert await bench.garbage_per_run(planner, bench.REQUESTS[path], 20) == 0


def test_memory_sees_the_runs_in_flight() -> None:
    # In a fresh interpreter, as the bench samples it: in this process, with the heap of
    # every earlier test, 1000 runs can fit in memory already freed and the RSS not grow.
    # Its sampler checkpoints without end, so a MockClock would never jump: zero sleeps here.
    used = bench.memory_in_child("trio", "B", 1000, 0.0)
    assert used.peak > used.before


def test_times_are_judged_on_best_samples_and_memory_on_medians() -> None:
    # Noise only adds time, so a time's ratio is of each side's fastest sample; RSS is not a
    # time (its spread is which objects a fresh process happens to hold), so it is the median.
    samples = {}
    for path in bench.REQUESTS:
        for figure in (*bench.TARGETS, "rss_retained"):
            samples[path, figure, "specroute"] = [30.0, 10.0, 30.0]
            samples[path, figure, "trio"] = [40.0, 9.0, 8.0]
    rows = {(row["path"], row["figure"]): row for row in bench.rows(samples)}
    wall = rows["B", "wall"]
    assert (wall["specroute"], wall["trio"], wall["ratio"]) == (10.0, 8.0, 1.25)
    assert wall["median_ratio"] == round(30 / 9, 3)
    assert wall["within_target"] is True
    rss = rows["A", "rss"]
    assert (rss["specroute"], rss["trio"], rss["ratio"]) == (30.0, 9.0, round(30 / 9, 3))
    assert rss["within_target"] is False
    assert rows["A", "zero_sleep"]["ratio"] == 1.25
