"""The `specroute` command: run a flow into a log, report on it, run a benchmark."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from report_records import run_data
from specroute.engine.report import read_log
from specroute.engine.report._cli import load_flow, main, parse_inputs

if TYPE_CHECKING:
    from pathlib import Path

FLOW_MODULE = """
import trio
from specroute.engine import Flow, step

@step
async def shout(text: str) -> str:
    await trio.sleep(0.25)
    return text.upper()

flow = Flow([shout], name="shouter")
"""


def write_flow(tmp_path: Path) -> Path:
    path = tmp_path / "shouter.py"
    path.write_text(FLOW_MODULE)
    return path


def test_run_logs_and_report_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = write_flow(tmp_path)
    log = tmp_path / "runs.jsonl"
    argv = ["run", f"{module}:flow", "--input", "text=hi", "--clock", "virtual", "--log", str(log)]
    assert main([*argv, "--no-progress"]) == 0
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert "shouter: route -, wall 250 ms" in out
    first, _ = read_log(log).records
    assert first.result.wall_time == 0.25
    assert first.inputs is None
    assert first.inputs_digest is not None

    assert main(["report", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["runs"] == 2
    assert report["summary"]["wall"]["p50"] == 250
    assert report["problems"] == []

    html = tmp_path / "out" / "report.html"
    assert main(["report", str(log), "--html", str(html), "--run", "2"]) == 0
    assert "Timeline of run 2 (the chosen run)" in html.read_text()

    assert main(["report", str(log), "--run", "1"]) == 0
    assert "Run 1" in capsys.readouterr().out


def test_report_lists_damaged_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps(run_data(wall=1, sequential=2)) + "\n{oops\n")
    assert main(["report", str(log)]) == 0
    out = capsys.readouterr().out
    assert "1 log lines could not be read" in out
    assert "line 2: not JSON" in out
    assert main(["report", str(log), "--strict"]) == 2
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2


def test_bad_arguments_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`flow` must look like MODULE:NAME"):
        load_flow("nothing")
    with pytest.raises(ValueError, match="has no Flow named 'nope'"):
        load_flow(f"{write_flow(tmp_path)}:nope")
    with pytest.raises(ValueError, match="`--input` must look like NAME=VALUE"):
        parse_inputs(["novalue"], [])
    assert parse_inputs(["a=1"], ['b={"x": [1]}']) == {"a": "1", "b": {"x": [1]}}
    assert main(["run", "nothing"]) == 2


def test_bench_runs_a_named_scenario(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.py").write_text("print('hello from a scenario')\n")
    (tmp_path / "broken.py").write_text("raise SystemExit(3)\n")
    assert main(["bench", "--dir", str(tmp_path), "hello"]) == 0
    assert "hello from a scenario" in capfd.readouterr().out
    assert main(["bench", "--dir", str(tmp_path)]) == 1
    assert main(["bench", "--dir", str(tmp_path), "nope"]) == 2
