"""A report read in one pass (`engine/report/_report.py`): which run the timeline shows, the
notable runs offered beside it, damaged lines counted and capped, and a log streamed in
bounded memory."""

from __future__ import annotations

import datetime
import json
import tracemalloc
from typing import TYPE_CHECKING

import pytest
from report_records import entry, run, run_data
from specroute.engine.report import (
    LogProblem,
    Report,
    RunLogError,
    _report,
    log_line,
    pick_run,
    read_report,
    summarize,
)
from specroute.engine.report._report import speculation_score

if TYPE_CHECKING:
    from pathlib import Path

    from specroute.engine.report import RunRecord

MOMENT = datetime.datetime(2025, 1, 8, 10, 0, tzinfo=datetime.UTC)
GEN = {"router": "r", "branch": "", "label": "gen", "at_ms": 200}


def right_only() -> RunRecord:
    """Branch `gen` speculated and chosen."""
    return run(
        wall=300,
        route="gen",
        routes=[GEN],
        steps=[entry("r", 0, 200), entry("a", 0, 150, branch="r:gen", speculative=True)],
    )


def right_and_wrong(*, wall: float = 300) -> RunRecord:
    """Branch `gen` speculated and chosen, branch `other` speculated and lost."""
    return run(
        wall=wall,
        route="gen",
        routes=[GEN],
        steps=[
            entry("r", 0, 200),
            entry("a", 0, 150, branch="r:gen", speculative=True),
            entry("b", 0, 100, branch="r:other", speculative=True, wasted=True),
            entry("c", 100, 100, branch="r:other", speculative=True, status="skipped"),
        ],
    )


def test_the_score_ranks_both_kinds_of_speculation_then_busy_steps_then_statuses() -> None:
    # Kinds of judgement, speculative or wasted steps that ran, kinds of status, wall time.
    assert speculation_score(right_only()) == (1, 1, 1, 0.3)
    assert speculation_score(right_and_wrong()) == (2, 2, 2, 0.3)
    assert speculation_score(run(wall=900)) == (0, 0, 0, 0.9)


def test_the_default_run_best_shows_speculation_and_a_tie_keeps_the_first() -> None:
    records = [run(wall=5000), right_only(), right_and_wrong(), right_and_wrong(wall=300)]
    assert pick_run(records) is records[2]


def test_pick_run_by_position_or_id() -> None:
    records = [run(wall=1, sequential=1, run_id="ab" * 16), run(wall=5, sequential=5)]
    assert pick_run(records) is records[1]
    assert pick_run(records, "1") is records[0]
    assert pick_run(records, "abab") is records[0]
    with pytest.raises(ValueError, match="`--run` must be between 1 and 2, got 3"):
        pick_run(records, "3")
    with pytest.raises(ValueError, match="no run id starts with 'ff'"):
        pick_run(records, "ff")
    with pytest.raises(ValueError, match="no readable runs"):
        pick_run([])


def test_an_id_start_that_matches_several_runs_asks_for_more() -> None:
    records = [run(wall=1, run_id="ab" + "1" * 30), run(wall=1, run_id="ab" + "2" * 30)]
    with pytest.raises(ValueError, match="2 run ids start with 'ab'; give a position or a longer"):
        pick_run(records, "ab")
    with pytest.raises(ValueError, match="`--run` must be between 1 and 2, got 0"):
        pick_run(records, "0")


def test_eight_digits_or_more_are_the_start_of_an_id_not_a_position() -> None:
    records = [run(wall=1, run_id="0" * 32), run(wall=1, run_id="12345678" + "0" * 24)]
    assert pick_run(records, "12345678") is records[1]
    assert pick_run(records, "2") is records[1]


def test_a_report_holds_the_summary_the_figures_and_the_run_asked_for() -> None:
    records = [run(wall=100, sequential=200), right_and_wrong(), run(wall=50)]
    default = Report.of(records)
    assert default.summary == summarize(records)
    assert [figures.number for figures in default.runs] == [1, 2, 3]
    assert (default.shown, default.shown_number, default.chosen) == (records[1], 2, False)
    asked = Report.of(records, run="3")
    assert (asked.shown, asked.shown_number, asked.chosen) == (records[2], 3, True)
    assert asked.path is None


def test_positions_count_runs_not_lines() -> None:
    records = [run(wall=1, run_id="a" * 32), run(wall=1, run_id="b" * 32)]
    items: list[RunRecord | LogProblem] = [
        LogProblem(line=1, reason="not JSON"),
        records[0],
        LogProblem(line=3, reason="x"),
    ]
    report = Report.of([*items, records[1]], run="2")
    assert (report.shown, report.shown_number) == (records[1], 2)
    assert (report.problems, report.problem_count) == (tuple(items[0::2]), 2)


def test_damaged_lines_are_all_counted_and_the_first_few_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_report, "MAX_PROBLEMS", 2)
    problems = [LogProblem(line=n, reason="not JSON") for n in range(1, 6)]
    report = Report.of(problems)
    assert report.problems == tuple(problems[:2])
    assert report.problem_count == 5


def test_without_a_readable_run_nothing_is_picked_and_nothing_raised() -> None:
    report = Report.of([LogProblem(line=1, reason="not JSON")], run="1")
    assert (report.shown, report.shown_number, report.others) == (None, None, ())
    assert report.summary.runs == 0
    with pytest.raises(ValueError, match="`--run` must be between 1 and 1, got 2"):
        Report.of([run(wall=1)], run="2")


def test_notable_runs_are_offered_beside_the_one_shown() -> None:
    failed = entry("f", 0, 10, status="failed")
    records = [
        run(wall=100),
        run(wall=500, wasted=50),
        run(wall=200, wasted=80, steps=[failed]),
        run(wall=500, wasted=80, steps=[failed]),  # ties with earlier runs: they stay
    ]
    others = Report.of(records, run="1").others
    assert [(other.number, other.why) for other in others] == [
        (2, "the slowest run"),
        (3, "the most step time wasted; the first run with a failed step"),
    ]
    assert others[1].record is records[2]
    # The run shown is not offered again.
    assert [other.number for other in Report.of(records, run="2").others] == [3]


def test_a_run_that_wasted_nothing_is_not_the_one_that_wasted_most() -> None:
    records = [run(wall=1), run(wall=2)]
    assert Report.of(records, run="2").others == ()


def test_read_report_reads_a_log_and_keeps_its_path(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    good = json.dumps(run_data(wall=1, sequential=2))
    path.write_text(f"{good}\nnot json\n{good}\n")
    report = read_report(str(path), run="2")
    assert report.path == path
    assert (report.summary.runs, report.shown_number, report.problem_count) == (2, 2, 1)
    assert report.problems[0].line == 2
    with pytest.raises(RunLogError, match=r"runs.jsonl:2: not JSON"):
        read_report(path, strict=True)


def test_a_large_log_streams_in_bounded_memory(tmp_path: Path) -> None:
    # Runs of 40 steps: a line is ~8 kB, but what a report keeps of a run is ~0.5 kB.
    steps = [
        entry(f"step {i}", i * 10, i * 10 + 10, branch="r:a" if i % 2 else "") for i in range(40)
    ]
    record = run(wall=400, sequential=400, steps=steps, route="a", wasted=5)
    path = tmp_path / "big.jsonl"
    runs = 200
    with path.open("w", encoding="utf-8") as out:
        for number in range(runs):
            line = log_line(record.result, run_id=f"{number:032x}", time=MOMENT)
            out.write(json.dumps(line) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        report = read_report(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.summary.runs == runs
    assert len(report.runs) == runs
    # Holding the records would take several times the file; streaming takes a fraction.
    assert peak < size / 4, (peak, size)
