"""The run log: round trip, the versioned schema, damaged lines, inputs kept as a digest."""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING

import attrs
import pytest
from report_records import run_data, writer_run
from specroute.engine import Mode, StepStatus
from specroute.engine.report import (
    SCHEMA_VERSION,
    LogProblem,
    RunLog,
    RunLogError,
    RunRecord,
    inputs_digest,
    log_line,
    read_log,
)

if TYPE_CHECKING:
    from pathlib import Path

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
    assert line["schema"] == SCHEMA_VERSION == 2
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
