"""The HTML report: self-contained, user text escaped, a timeline bar per trace entry."""

from __future__ import annotations

import datetime
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import pytest
from report_records import entry, run, writer_run
from specroute.engine.report import RunRecord, log_line, pick_run, render_html, summarize

if TYPE_CHECKING:
    from trio.testing import MockClock

MOMENT = datetime.datetime(2025, 1, 8, 10, 0, tzinfo=datetime.UTC)


class Bars(HTMLParser):
    """Collects the attributes of every `rect.bar` and every tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "rect" and "bar" in (found.get("class") or "").split():
            self.bars.append(found)


def parsed(page: str) -> Bars:
    bars = Bars()
    bars.feed(page)
    return bars


async def test_a_bar_per_trace_entry_with_status_and_branch(autojump_clock: MockClock) -> None:
    result = await writer_run()
    # The live result renders as it is, and as it reads back from its log line.
    live = RunRecord(result=result, id="1" * 32, time=MOMENT.isoformat(), label="speculative")
    record = RunRecord.from_json(log_line(result, run_id="1" * 32, time=MOMENT))
    page = render_html(summarize([record]), [record])
    assert render_html(summarize([live]), [live]) == page
    bars = parsed(page).bars
    assert len(bars) == len(result.trace)
    got = {(bar["data-step"], bar["data-status"], bar["data-branch"]) for bar in bars}
    expected = {(e.step, e.status.value, e.branch) for e in result.trace}
    assert got == expected
    long_bar = next(bar for bar in bars if bar["data-step"] == "write_long")
    assert long_bar["data-wasted"] == "true"
    assert long_bar["data-speculative"] == "true"
    assert "decide\u2069 \u2192 \u2068short" in page  # isolated names


def test_step_named_script_is_escaped() -> None:
    # Step names are identifiers in the engine, but a log is only text: escape everything.
    script = "<script>alert(1)</script>"
    record = run(
        wall=100, sequential=100, route=script, label='"><img src=x>',
        steps=[entry(script, 0, 100, branch=f"r:{script}")],
    )  # fmt: skip
    page = render_html(summarize([record]), [record], title="<b>log</b>")
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>log" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    bars = parsed(page)
    assert "script" not in bars.tags
    assert [bar["data-step"] for bar in bars.bars] == [script]
    assert [bar["data-branch"] for bar in bars.bars] == [f"r:{script}"]


def test_self_contained_no_network() -> None:
    records = [
        run(wall=300, sequential=400, route="gen", steps=[entry("a", 0, 300)]),
        run(wall=100, sequential=100, route="reuse", wasted=50, wasted_cost=0.01,
            steps=[entry("b", 0, 100, status="failed")]),
    ]  # fmt: skip
    page = render_html(summarize(records), records)
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)
    assert "<link" not in page
    assert "<script" not in page
    assert page.count("<svg") == 3
    # The run with a wasted step is the better example of speculation; any can be chosen.
    assert "Timeline of run 2 (the run that best shows speculation)" in page
    chosen = render_html(summarize(records), records, run=records[1])
    assert "Timeline of run 2 (the chosen run)" in chosen
    assert "Timeline of run 1 (the chosen run)" in render_html(
        summarize(records), records, run=records[0]
    )
    assert parsed(chosen).bars[0]["data-status"] == "failed"


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


def test_empty_log_still_renders() -> None:
    page = render_html(summarize([]), [])
    assert "0 runs" in page
    assert "No runs." in page
