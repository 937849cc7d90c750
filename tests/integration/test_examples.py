"""The examples run as a user runs them, and the planner reproduces seed 000's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLANNER = ROOT / "examples" / "planner.py"

# Seed 000's figures (ms) and the waste speculation must account for, in virtual time.
EXPECTED = {
    ("A", "sequential"): (800, 0),
    ("A", "parallel-start"): (800, 400),
    ("A", "speculative"): (800, 500),
    ("B", "sequential"): (4200, 0),
    ("B", "parallel-start"): (3800, 0),
    ("B", "speculative"): (3700, 0),
}


def run_planner(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(PLANNER), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.integration
@pytest.mark.parametrize(("path", "mode"), list(EXPECTED))
def test_planner_reproduces_the_seed_table(path: str, mode: str) -> None:
    record = json.loads(run_planner("--path", path, "--mode", mode, "--json"))
    wall, wasted = EXPECTED[path, mode]
    assert record["route"] == ("reuse" if path == "A" else "generate")
    assert record["wall_ms"] == wall
    assert record["wasted_ms"] == wasted
    assert {"name", "branch", "start_ms", "end_ms", "status", "speculative", "wasted"} <= set(
        record["steps"][0]
    )
    if (path, mode) == ("A", "speculative"):
        statuses = {s["name"]: s["status"] for s in record["steps"] if s["wasted"]}
        assert statuses == {"parameter_discovery": "ok", "requirements_analysis": "cancelled"}
    # Steps are simulated model calls: what a losing branch spent is billed, never free.
    assert (record["wasted_cost"] > 0) == (wasted > 0)


@pytest.mark.integration
def test_planner_table_and_cache_demo_run() -> None:
    table = run_planner()
    assert "3700" in table
    assert "3800" in table
    warm = run_planner("--repeat", "2")
    assert "hit rate" in warm


@pytest.mark.integration
def test_planner_compares_speculation_policies() -> None:
    table = run_planner("--policy", "never", "--policy", "predictive", "--count", "20")
    assert "never" in table
    assert "predictive" in table
