"""The terminal report: tables of the summary, and the unreadable lines under them."""

from __future__ import annotations

from report_records import run
from rich.console import Console
from specroute.engine.report import LogProblem, print_summary, summarize


def test_tables_show_routes_configurations_and_problems() -> None:
    records = [run(wall=300, sequential=400, route="gen"), run(wall=100, route="reuse")]
    console = Console(record=True, width=200)
    print_summary(summarize(records), [LogProblem(line=3, reason="not JSON")], console=console)
    text = console.export_text()
    assert "2 runs of demo" in text
    assert "Runs by route" in text
    assert "gen" in text
    assert "reuse" in text
    assert "1 log lines could not be read" in text
    assert "line 3: not JSON" in text
    assert "ROI: Speculation" in text
