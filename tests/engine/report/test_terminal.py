"""The terminal report: tables of the summary, and the unreadable lines under them."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from report_records import hostile_run, hostile_text, run
from rich.console import Console
from specroute.engine.report import LogProblem, RunProgress, print_summary, summarize
from specroute.engine.report._cli import _steps_table
from specroute.engine.report._summary import NO_ROUTE

# Rich console markup that, read as markup, crashes (`[/]`) or prints a link.
MARKUP = ["[/]", "[link=https://pay.example]pay here[/link]", "[bold red]loud", "[/bold]"]
# The OSC 8 escape that makes a terminal show a clickable link.
LINK = "\x1b]8;"


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


def printed(record_text: str) -> tuple[str, str]:
    """The report of a run with `record_text` everywhere: plain text, and with escapes."""
    console = Console(
        file=io.StringIO(), record=True, width=300, force_terminal=True, color_system="truecolor"
    )
    record = hostile_run(record_text)
    print_summary(summarize([record]), [LogProblem(line=2, reason=record_text)], console=console)
    console.print(_steps_table(record, 1))
    progress = RunProgress(console=console)
    progress.step_started(record_text, record_text, True)
    progress.step_finished(f"{record_text} 2", record_text, record.result.trace[0].status, 1.0)
    console.print(progress)
    styled = console.export_text(styles=True, clear=False)
    return console.export_text(), styled


@pytest.mark.parametrize("text", MARKUP)
def test_markup_in_user_text_is_shown_as_typed(text: str) -> None:
    plain, styled = printed(text)
    # Route, configuration, router, step, branch, source and problem all show the text.
    assert plain.count(text) >= 8
    assert LINK not in styled


def test_unpriced_calls_are_not_free() -> None:
    # hostile_run's losing step made one call to a model with no price.
    summary = summarize([hostile_run("x")])
    console = Console(file=io.StringIO(), record=True, width=300)
    print_summary(summary, console=console)
    text = console.export_text()
    assert "unpriced" in text
    assert "$0.0000 " not in text.split("dollars wasted when wrong")[1].splitlines()[0]
    assert "no dollars" not in summary.roi.statement
    assert "1 unpriced LLM calls" in summary.roi.statement
    assert summary.routes[0].route != NO_ROUTE


def test_control_characters_are_shown_escaped() -> None:
    plain, styled = printed("\x1b]8;;https://pay.example\x1b\\pay\u202e")
    assert "\\x1b]8;;https://pay.example\\x1b\\pay\\u202e" in plain
    assert "\x1b]8" not in styled
    assert "\u202e" not in styled


@given(hostile_text())
def test_any_text_prints_without_markup_or_links(text: str) -> None:
    _, styled = printed(text)
    assert LINK not in styled
    assert "\u202e" not in styled
