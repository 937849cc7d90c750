"""bench/opcodes.py counts the engine's step path, function by function, and gives the same
figure twice."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.scripts import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "opcodes.py"

bench: Any = load_script(BENCH, "bench_opcodes")
overhead: Any = sys.modules["overhead"]  # the shapes it counts, imported by the script


@pytest.mark.parametrize("shape", ["fan-out", "chain", "map"])
def test_a_count_names_the_step_path_and_repeats(shape: str) -> None:
    steps = 20
    x = list(range(steps)) if shape == "map" else 0
    body = partial(overhead.build(shape, steps).run, x=x)
    first, second = bench.count(body), bench.count(body)
    assert sum(second.values()) == pytest.approx(sum(first.values()), rel=0.01)
    # Every step ran the plain step path, and its function was called: counted by name.
    assert first["_call.py:run_plain_step"] >= 20 * steps
    assert first["overhead.py:_noop"] == 2 * steps  # each step's `return None`, once per step


def test_the_bare_side_counts_only_trio_and_its_own_tasks() -> None:
    counts = bench.count(partial(overhead._bare, "fan-out", 20))
    assert not any(name.startswith("_call.py") for name in counts)
    assert counts["overhead.py:_bare_noop"] > 0


@pytest.mark.parametrize("path", ["A", "B"])
def test_a_planner_count_names_the_router_on_one_side_only(path: str) -> None:
    concurrency: Any = sys.modules["concurrency"]
    planners = concurrency.planners(0.0)
    request = concurrency.REQUESTS[path]
    engine = bench.count(partial(bench.planner_runs, planners["specroute"], request, 3))
    by_hand = bench.count(partial(bench.planner_runs, planners["trio"], request, 3))
    assert engine["_routing.py:run_router"] > 0
    assert not any(name.startswith(("_routing.py", "_call.py")) for name in by_hand)
    # Both sides await the same step bodies (the speculated branch's first step, cancelled
    # on Path A, runs a different share of its body on each side).
    assert engine["concurrency.py:PlannerSteps._work"] > 0
    assert by_hand["concurrency.py:PlannerSteps._work"] > 0
