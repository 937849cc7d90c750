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


EXPECTED_MODES = ("sequential", "parallel-start", "speculative")


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


@pytest.mark.integration
def test_planner_prices_waste_at_the_seeds_price() -> None:
    # The seed: a wasted ParameterDiscovery (400 ms) costs "~$0.0003", $0.00075 a second.
    wasted = json.loads(run_planner("--path", "A", "--mode", "parallel-start", "--json"))
    assert wasted["wasted_cost"] == pytest.approx(400 / 1000 * 0.00075)
    # The whole bill is model seconds at that price: 100 tokens a second, prompts free.
    usage = wasted["usage"]
    assert usage["cost"] == pytest.approx(usage["output_tokens"] / 100 * 0.00075)
    table = run_planner("--path", "A")
    assert "0.00030" in table
    assert "$0.00075 a model second" in table


@pytest.mark.integration
def test_planner_json_and_out_hold_the_workflow(tmp_path: Path) -> None:
    record = json.loads(
        run_planner("--path", "B", "--mode", "speculative", "--json", "--out", str(tmp_path))
    )
    outputs = record["outputs"]
    assert set(outputs) == {"workflow", "execution_params"}
    assert set(outputs["workflow"]) == {"name", "nodes", "plan"}
    assert outputs["execution_params"]["request"] == "summarize open issues by label"
    assert Path(record["file"]) == tmp_path / "workflow-B-speculative.json"
    assert json.loads(Path(record["file"]).read_text()) == outputs


@pytest.mark.integration
def test_planner_plans_the_users_request() -> None:
    record = json.loads(
        run_planner("--request", "Generate changelog!", "--mode", "speculative", "--json")
    )
    assert record["request"] == "Generate changelog!"
    assert record["route"] == "reuse"  # Discovery found the saved workflow
    assert record["outputs"]["workflow"]["name"] == "changelog"


@pytest.mark.integration
def test_planner_report_opens_on_a_speculative_run(tmp_path: Path) -> None:
    from specroute.engine.report import read_report

    log = tmp_path / "planner.jsonl"
    run_planner("--log", str(log))
    report = read_report(log, strict=True)
    assert [run.label for run in report.runs] == list(EXPECTED_MODES) * 2
    shown = report.shown
    assert shown is not None
    # Path A, speculative: Path B was started beside Discovery, then cancelled.
    assert (shown.label, shown.result.route) == ("speculative", "reuse")
    statuses = {entry.status.value for entry in shown.result.trace if entry.speculative}
    assert {"ok", "cancelled"} <= statuses
    assert shown.result.wasted_time > 0


@pytest.mark.integration
async def test_planner_real_provider_implies_the_real_clock() -> None:
    import trio
    from llm_server import serve_llm

    async with serve_llm() as server:
        flags = ["--provider", "openai", "--base-url", server.base_url, "--model", "hold-0.01"]
        done = await trio.run_process(
            [sys.executable, str(PLANNER), *flags, "--path", "B", "--mode", "sequential",
             "--json"],
            capture_stdout=True, capture_stderr=True, check=False,
            env={"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        refused = await trio.run_process(
            [sys.executable, str(PLANNER), *flags, "--clock", "virtual", "--json"],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    record = json.loads(done.stdout)
    assert record["route"] == "generate"
    # Ten calls one after another, each held 10 ms by the server: real time passed.
    assert server.seen["hold-0.01"] == 10
    assert record["wall_ms"] >= 100
    assert refused.returncode != 0
    assert "drop --clock virtual" in refused.stderr.decode()
