"""The HTML report: self-contained, user text escaped, a timeline bar per trace entry."""

from __future__ import annotations

import datetime
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from hypothesis import given
from report_records import entry, hostile_run, hostile_text, run, writer_run
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
    # The run with a wasted step is the better example of speculation; any can be chosen.
    assert "Timeline of run 2 (the run that best shows speculation)" in page
    # The other notable run is a click away: its timeline in a <details>.
    assert page.count("<svg") == 4
    assert "<summary>Run 1 (the slowest run): " in page
    assert page.count('<pattern id="hatch') == len(set(re.findall(r'<pattern id="([^"]+)"', page)))
    chosen = render_html(summarize(records), records, run=records[1])
    assert "Timeline of run 2 (the chosen run)" in chosen
    assert "Timeline of run 1 (the chosen run)" in render_html(
        summarize(records), records, run=records[0]
    )
    assert parsed(chosen).bars[0]["data-status"] == "failed"


def test_empty_log_still_renders() -> None:
    page = render_html(summarize([]), [])
    assert "0 runs" in page
    assert "No runs." in page


# The tags and attributes the page itself writes; anything else came from user text.
TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "p", "div", "b",
    "span", "i", "table", "tr", "th", "td", "ul", "li", "bdi", "code", "footer", "svg", "defs",
    "pattern", "line", "rect", "text", "g", "circle", "polyline",
}  # fmt: skip
ATTRIBUTES = {
    "lang", "charset", "class", "id", "style", "data-run", "data-step", "data-status",
    "data-branch", "data-wasted", "data-speculative", "viewbox", "width", "height", "xmlns",
    "role", "x", "y", "x1", "y1", "x2", "y2", "rx", "fill", "stroke", "stroke-width",
    "stroke-opacity", "patternunits", "patterntransform", "pointer-events", "text-anchor",
    "cx", "cy", "r", "points",
}  # fmt: skip
ISOLATES = ("\u2068", "\u2069")


class Page(HTMLParser):
    """Every tag and attribute, and the user text that sits outside any isolation."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.bdi = 0
        self.loose: list[str] = []
        self.bars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self.bdi += tag == "bdi"
        if tag == "rect" and "bar" in (dict(attrs).get("class") or "").split():
            self.bars += 1

    def handle_endtag(self, tag: str) -> None:
        self.bdi -= tag == "bdi"

    def handle_data(self, data: str) -> None:
        isolated = all(mark in data for mark in ISOLATES)
        if self.marker in data and not self.bdi and not isolated:
            self.loose.append(data)


def test_user_text_is_bidi_isolated_everywhere() -> None:
    # An unterminated RIGHT-TO-LEFT OVERRIDE in every field must not turn the page around.
    marker = "\u202eevil"
    record = hostile_run(marker)
    page = render_html(summarize([record]), [record], title=marker)
    parser = Page(marker)
    parser.feed(page)
    assert parser.loose == []
    assert page.count(marker) >= 15
    assert parser.bars == 3


def test_a_stray_pop_isolate_cannot_end_the_isolation() -> None:
    # U+2069 would close the chart's FSI early and let the override run on: it is dropped.
    record = hostile_run("\u2069\u202eevil")
    page = render_html(summarize([record]), [record], title="\u2069\u202eevil")
    # What the charts show: their text, not their attributes (data-step keeps the name as is).
    charts = re.sub(r"<[^>]*>", " ", "".join(re.findall(r"<svg.*?</svg>", page, re.DOTALL)))
    title = page.split("<title>")[1].split("</title>")[0]
    assert "\u202eevil" in charts
    assert "\u2069\u202e" not in charts + title
    assert title == "\u2068\u202eevil\u2069"


def test_no_double_escaped_entities_and_wide_tables_scroll() -> None:
    records = [run(wall=100, sequential=100, label="x" * 500)]
    page = render_html(summarize(records), records)
    assert "&amp;ndash;" not in page
    assert "&ndash;" not in page  # a real en dash, written once
    assert "route \u2013," in page
    tables = page.count("<table")
    assert page.count('<div class="scroll"><table') == tables >= 3


def test_zero_length_steps_are_labelled_marks() -> None:
    record = run(wall=100, sequential=100, steps=[entry("instant", 0, 0), entry("a", 0, 100)])
    svg = render_html(summarize([record]), [record])
    assert re.search(r'data-step="instant"[^>]* width="3\.0"', svg)
    assert '<text class="tick short-label"' in svg
    assert ">0 ms</text>" in svg


def test_waste_chart_has_a_dollar_axis_and_says_what_it_adds_up() -> None:
    few = [run(wall=100, sequential=100, wasted=10, wasted_cost=0.02, run_id=f"{i:032x}")
           for i in range(3)]  # fmt: skip
    page = render_html(summarize(few), few)
    assert page.count('class="tick dollar-tick"') >= 2
    assert "$0.06" in page
    assert 'id="waste-note"' not in page
    many = few * 100
    page = render_html(summarize(many), many)
    note = re.search(r'<p class="sub" id="waste-note">([^<]*)</p>', page)
    assert note is not None
    assert "300 runs are more than 120 bars: each bar adds up" in note.group(1)
    assert "3 consecutive runs" in note.group(1)


def test_unpriced_calls_are_never_shown_as_zero_dollars() -> None:
    record = hostile_run("x")
    page = render_html(summarize([record]), [record])
    assert "unpriced" in page
    assert "no dollars" not in page


async def test_default_timeline_shows_speculation(autojump_clock: MockClock) -> None:
    speculative = RunRecord(
        result=await writer_run(), id="1" * 32, time=MOMENT.isoformat(), label="speculative"
    )
    slow = run(wall=5000, sequential=5000, route="short")
    records = [slow, speculative]
    assert pick_run(records) is speculative
    page = render_html(summarize(records), records)
    assert "Timeline of run 2 (the run that best shows speculation)" in page


@given(hostile_text())
def test_any_text_injects_no_tag_or_attribute(text: str) -> None:
    record = hostile_run(text)
    page = render_html(summarize([record]), [record], title=text)
    parser = Page(text)
    parser.feed(page)
    parser.close()
    assert parser.tags <= TAGS
    assert parser.attributes <= ATTRIBUTES
    assert parser.bars == 3
