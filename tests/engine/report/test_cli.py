"""The `specroute` command: run a flow into a log, report on it, run a benchmark."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from report_records import hostile_run, hostile_text, run_data
from specroute.engine.report import read_log
from specroute.engine.report._cli import load_flow, main, parse_inputs

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


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a failure printed on stderr (and nothing else)."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("specroute: error: "), err
    return err


def test_failures_are_one_line_with_a_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = write_flow(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "cannot read the log" in error_line(capsys)
    assert main(["run", f"{module}:flow", "--clock", "virtual", "--log", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys)
    (tmp_path / "file").write_text("")
    unwritable = str(tmp_path / "file" / "runs.jsonl")
    assert main(["run", f"{module}:flow", "--clock", "virtual", "--log", unwritable]) == 2
    assert "not writable" in error_line(capsys)
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps(run_data(wall=1, sequential=2)) + "\n")
    assert main(["report", str(log), "--html", str(tmp_path / "file" / "out.html")]) == 2
    assert "--html" in error_line(capsys)
    assert main(["run", "no.such.module:flow"]) == 2
    assert "no module 'no'" in error_line(capsys)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('at import\\ntwo lines')\n")
    assert main(["run", f"{broken}:flow"]) == 2
    assert "RuntimeError: at import two lines" in error_line(capsys)
    argv = ["run", f"{module}:flow", "--input", "text=a", "--input", "text=b"]
    assert main(argv) == 2
    assert "input 'text' is given twice" in error_line(capsys)
    assert main(["report", str(log), "--run", "7"]) == 2
    assert "between 1 and 1" in error_line(capsys)
    with pytest.raises(SystemExit) as usage:
        main(["report", str(log), "--no-such-flag"])
    assert usage.value.code == 2
    assert "unrecognized arguments" in error_line(capsys)


def test_a_failed_run_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "failing.py"
    module.write_text(
        "from specroute.engine import Flow, step\n"
        "@step\nasync def explode(text: str) -> str:\n"
        "    raise ValueError('[/] boom \\x1b]8;;https://pay.example\\x1b\\\\')\n"
        "flow = Flow([explode], name='[/]')\n"
    )
    argv = ["run", f"{module}:flow", "--input", "text=hi", "--clock", "virtual", "--no-progress"]
    assert main(argv) == 1
    line = error_line(capsys)
    assert "run failed" in line
    assert "[/] boom \\x1b]8;;https://pay.example" in line
    assert "\x1b" not in line


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("specroute 0.")


def test_bench_outside_a_checkout_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--dir", str(tmp_path / "bench")]) == 2
    assert "run from the checkout" in error_line(capsys)
    assert main(["bench", "--dir", str(tmp_path)]) == 2
    assert "no scenarios" in error_line(capsys)


def test_json_is_strict_even_when_figures_overflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two runs of 10^308 ms each: their sum is not a float JSON can hold.
    log = tmp_path / "runs.jsonl"
    huge = {**run_data(wall=1, sequential=2), "wall_ms": 10**308}
    log.write_text(json.dumps(huge) + "\n" + json.dumps(huge) + "\n")
    assert main(["report", str(log), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in --json"))
    assert report["summary"]["runs"] == 2
    assert report["summary"]["wall"]["mean"] is None


def test_html_without_readable_runs_lists_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "runs.jsonl"
    log.write_text("{oops\n[1]\n")
    html = tmp_path / "report.html"
    assert main(["report", str(log), "--html", str(html)]) == 0
    page = html.read_text()
    assert "No readable runs" in page
    assert "line 1: <bdi>not JSON" in page
    assert "line 2: <bdi>the record must be a JSON object" in page
    assert main(["report", str(log), "--html", str(html), "--run", "1"]) == 0
    assert "No readable runs" in html.read_text()


@given(hostile_text())
def test_json_report_of_any_text_is_strict(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "runs.jsonl"
        line = hostile_run(text).to_json()
        log.write_text(json.dumps(line) + "\n", encoding="utf-8")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["report", str(log), "--json"]) == 0
    report = json.loads(out.getvalue(), parse_constant=lambda name: pytest.fail(name))
    assert report["summary"]["flows"] == [text]
    assert report["problems"] == []


class ClosedPipe(io.StringIO):
    """A stdout whose reader has left (`| head -1`): every write breaks the pipe."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


def test_closed_stdout_ends_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `specroute report LOG --json | head -1`: no traceback, no message, status 1.
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps(run_data(wall=1, sequential=2)) + "\n")
    with (tmp_path / "stdout").open("wb") as raw:
        monkeypatch.setattr(sys, "stdout", ClosedPipe(raw.fileno()))
        assert main(["report", str(log), "--json"]) == 1
        monkeypatch.undo()
    assert capsys.readouterr().err == ""
