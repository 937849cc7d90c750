"""The run log: round trip, the versioned schema, damaged lines, inputs kept as a digest."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from report_records import hostile_text, run, run_data, writer_run
from specroute.engine import Mode, StepStatus
from specroute.engine.report import (
    SCHEMA_VERSION,
    LogProblem,
    RunLog,
    RunLogError,
    RunRecord,
    inputs_digest,
    iter_log,
    log_line,
    read_log,
)

if TYPE_CHECKING:
    from trio.testing import MockClock


MOMENT = datetime.datetime(2025, 1, 8, 10, 0, tzinfo=datetime.UTC)


async def test_round_trip_keeps_every_figure(tmp_path: Path, autojump_clock: MockClock) -> None:
    result = await writer_run()
    log = RunLog(tmp_path / "logs" / "runs.jsonl", clock=lambda: MOMENT)
    run_id = log.append(result, inputs={"request": "secret request"}, label="eager")

    reading = log.read()
    assert reading.problems == ()
    (record,) = reading.records
    assert record.id == run_id
    assert len(run_id) == 32
    assert record.line == 1
    assert record.time == "2025-01-08T10:00:00+00:00"
    assert record.schema == SCHEMA_VERSION
    run = record.result
    assert (run.flow, run.mode, record.label, run.route) == (
        "writer",
        Mode.SPECULATIVE,
        "eager",
        "short",
    )
    # The log holds the run itself: read back, it is the result less its values.
    assert run == attrs.evolve(result, outputs={}, values={})
    # write_short was speculated too, and won: the run ends with its router.
    assert run.wall_time == pytest.approx(0.5)
    assert run.sequential_time == pytest.approx(0.6)
    assert run.wasted_time == pytest.approx(0.5)
    by_name = {entry.step: entry for entry in run.trace}
    assert by_name["write_long"].status is StepStatus.CANCELLED
    assert by_name["write_long"].speculative
    assert by_name["write_long"].wasted
    assert by_name["write_long"].branch == "decide:long"
    assert [r.label for r in run.routes] == ["short"]
    assert run.critical_path == result.critical_path


async def test_inputs_are_a_digest_unless_asked(tmp_path: Path, autojump_clock: MockClock) -> None:
    result = await writer_run()
    path = tmp_path / "runs.jsonl"
    with RunLog(path) as log:
        log.append(result, inputs={"request": "secret request"})
    assert "secret request" not in path.read_text()
    log.append(result, inputs={"request": "secret request"}, record_inputs=True)
    log.flush()

    first, second = read_log(path).records
    assert first.inputs is None
    assert first.inputs_digest == inputs_digest({"request": "secret request"})
    assert second.inputs == {"request": "secret request"}
    with pytest.raises(ValueError, match="record_inputs=True` needs `inputs`"):
        log.append(result, record_inputs=True)


def test_digest_is_canonical() -> None:
    assert inputs_digest({"a": 1, "b": [1, 2]}) == inputs_digest({"b": [1, 2], "a": 1})
    assert inputs_digest({"a": 1}) != inputs_digest({"a": 2})
    assert inputs_digest({"s": {3, 1, 2}}) == inputs_digest({"s": {2, 3, 1}})
    assert len(inputs_digest({})) == 64


async def test_log_line_documents_its_schema(autojump_clock: MockClock) -> None:
    line = log_line(await writer_run(), run_id="x" * 32, time=MOMENT)
    assert line["schema"] == SCHEMA_VERSION == 3
    assert line["inputs_digest"] is None
    assert "inputs" not in line
    from specroute.engine.report import _log

    assert _log.__doc__ is not None
    documented = re.findall(r"^    ([a-z_]+) {2,}", _log.__doc__, re.MULTILINE)
    assert len(documented) == 20
    assert set(documented) - {"inputs"} <= set(line)


def test_damaged_and_old_lines_name_their_line_and_the_rest_reads(tmp_path: Path) -> None:
    good = json.dumps(run_data(wall=1, sequential=2))
    old = json.dumps({k: v for k, v in run_data(wall=1, sequential=2).items() if k != "schema"})
    future = json.dumps({**run_data(wall=1, sequential=2), "schema": 99})
    missing = json.dumps(
        {k: v for k, v in run_data(wall=1, sequential=2).items() if k != "wall_ms"}
    )
    bad_status = run_data(wall=1, sequential=2, steps=[{"name": "s"}])
    path = tmp_path / "runs.jsonl"
    lines = [good, '{"schema": 1, "id": "trunc', old, "", future, missing, json.dumps(bad_status)]
    path.write_text("\n".join([*lines, good]) + "\n")

    reading = read_log(path)
    assert [record.line for record in reading.records] == [1, 8]
    assert [problem.line for problem in reading.problems] == [2, 3, 5, 6, 7]
    reasons = [problem.reason for problem in reading.problems]
    assert reasons[0].startswith("not JSON")
    assert "no `schema` field" in reasons[1]
    assert "schema version 99 is not supported; this reader reads schemas 1 and 2" in reasons[2]
    assert reasons[3] == "field `wall_ms` is missing"
    assert reasons[4] == "field `steps[0].branch` is missing"
    assert str(reading.problems[0]).startswith("line 2: not JSON")

    with pytest.raises(RunLogError, match=r"runs.jsonl:2: not JSON") as caught:
        read_log(path, strict=True)
    assert caught.value.line == 2


def test_wrong_types_are_named() -> None:
    with pytest.raises(RunLogError, match="field `wall_ms` must be int or float, got 'fast'"):
        RunRecord.from_json({**run_data(wall=1, sequential=2), "wall_ms": "fast"})
    with pytest.raises(RunLogError, match=re.escape("field `cache.hits` must be int, got True")):
        RunRecord.from_json({**run_data(wall=1, sequential=2), "cache": {"hits": True}})
    data = run_data(wall=1, sequential=1, steps=[{**_step(), "status": "exploded"}])
    with pytest.raises(
        RunLogError, match=re.escape("field `steps[0].status` must be one of ok, failed")
    ):
        RunRecord.from_json(data)


def _step() -> dict[str, object]:
    return {"name": "s", "branch": "", "start_ms": 0, "end_ms": 1, "speculative": False}


def test_problem_str() -> None:
    assert str(LogProblem(line=3, reason="not JSON")) == "line 3: not JSON"


def hostile_lines() -> list[str]:
    """Lines that once ended a whole report, each with what a reader must say about it."""
    good = json.dumps(run_data(wall=1, sequential=2))
    line = run_data(wall=1, sequential=2)
    return [
        "[" * 100_000 + "]" * 100_000,
        good.replace('"wall_ms": 1,', '"wall_ms": ' + "9" * 5000 + ","),
        good.replace('"wall_ms": 1,', '"wall_ms": NaN,'),
        good.replace('"wall_ms": 1,', '"wall_ms": Infinity,'),
        good.replace('"wall_ms": 1,', '"wall_ms": 1e999,'),
        good[: len(good) // 2],
        json.dumps({**line, "steps": "many"}),
        json.dumps({**line, "decisions": [{"router": 3}]}),
        json.dumps({**line, "cache": [1]}),
        json.dumps([line]),
    ]


def test_every_bad_line_is_named_and_skipped(tmp_path: Path) -> None:
    good = json.dumps(run_data(wall=1, sequential=2))
    path = tmp_path / "runs.jsonl"
    # A BOM (as some editors save) must not cost the first run.
    path.write_text("\ufeff" + "\n".join([good, *hostile_lines(), good]) + "\n", encoding="utf-8")
    reading = read_log(path)
    bad = len(hostile_lines())
    assert [record.line for record in reading.records] == [1, bad + 2]
    assert [problem.line for problem in reading.problems] == list(range(2, bad + 2))
    reasons = [problem.reason for problem in reading.problems]
    assert reasons[0] == "not readable: nested too deeply"
    assert "digits" in reasons[1]
    assert reasons[2] == "not readable JSON: NaN is not a JSON number"
    assert reasons[3] == "not readable JSON: Infinity is not a JSON number"
    assert "too large" in reasons[4]
    assert reasons[5].startswith("not JSON")
    assert all(len(reason) <= 203 for reason in reasons)


@given(st.lists(hostile_text(), max_size=4))
def test_any_line_is_a_run_or_a_problem(lines: list[str]) -> None:
    # Whatever a line holds, reading goes on: each is a problem with its number, or a run.
    text = "\n".join(line.replace("\n", " ") for line in lines)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.jsonl"
        path.write_text(text + "\n", encoding="utf-8", errors="surrogatepass")
        items = list(iter_log(path))
    numbers = [item.line for item in items]
    assert numbers == sorted(numbers)
    assert all(isinstance(item, LogProblem | RunRecord) for item in items)


async def test_append_writes_off_the_event_loop(
    tmp_path: Path, autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[str] = []
    real_open = Path.open

    def spy(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "a" in mode:
            writers.append(threading.current_thread().name)
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    result = await writer_run()
    async with RunLog(tmp_path / "runs.jsonl") as log:
        log.append(result)
    assert writers
    assert threading.current_thread().name not in writers
    assert len(log.read().records) == 1


async def test_logging_keeps_exact_virtual_times(tmp_path: Path, autojump_clock: MockClock) -> None:
    # A run that logs takes no virtual time to do it: runs after it keep exact figures.
    log = RunLog(tmp_path / "runs.jsonl")
    start = trio.current_time()
    results = []
    for _ in range(3):
        result = await writer_run()
        log.append(result)
        results.append(result)
    assert trio.current_time() - start == 3 * 0.5
    await log.aflush()
    logged = [record.result for record in log.read().records]
    assert [r.wall_time for r in logged] == [0.5, 0.5, 0.5]
    assert [r.started for r in results] == [start, start + 0.5, start + 1.0]


def test_a_failed_write_is_raised_by_flush(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    log = RunLog(tmp_path / "file" / "runs.jsonl")
    log.append(run(wall=1, sequential=1).result)
    with pytest.raises(OSError, match="file"):
        log.flush()
    log.flush()  # raised once: the log works again once the path does


def test_lines_queued_at_exit_are_written(tmp_path: Path) -> None:
    # A program that appends and ends without flush (as examples/planner.py does).
    path = tmp_path / "runs.jsonl"
    line = json.dumps(run_data(wall=1, sequential=2))
    program = (
        "import json, sys\n"
        "from specroute.engine.report import RunLog, RunRecord\n"
        f"record = RunRecord.from_json(json.loads({line!r}))\n"
        f"log = RunLog({str(path)!r})\n"
        "for _ in range(50):\n"
        "    log.append(record.result)\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    assert len(read_log(path, strict=True).records) == 50
