"""The SVG charts: bars placed from each run's start, whether live or read from a log."""

from __future__ import annotations

import re

import attrs
from report_records import entry, run
from specroute.engine.report import RunFigures, summarize
from specroute.engine.report._svg import latency_chart, nice_ticks, timeline, waste_chart


def bar_x(svg: str) -> list[str]:
    return re.findall(r'<rect class="bar[^"]*" data-step="[^"]*"[^>]*? x="([\d.]+)"', svg)


def test_live_times_are_drawn_from_the_run_start() -> None:
    record = run(wall=300, steps=[entry("a", 0, 100), entry("b", 100, 300)])
    trace = tuple(attrs.evolve(e, start=e.start + 50, end=e.end + 50) for e in record.result.trace)
    shifted = attrs.evolve(record.result, started=50.0, finished=50.3, trace=trace)
    live = attrs.evolve(record, result=shifted)
    assert bar_x(timeline(live)) == bar_x(timeline(record))
    assert len(bar_x(timeline(record))) == 2
    assert "a [top] ok: 0-100 ms (100 ms)" in timeline(record)


def test_ticks_and_the_other_charts() -> None:
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(950)[-1] >= 950
    records = [run(wall=100, sequential=100, route="gen"), run(wall=50, wasted=20, wasted_cost=0.5)]
    figures = [RunFigures.of(record, number) for number, record in enumerate(records, start=1)]
    assert latency_chart(summarize(records).routes, figures).count('class="dot"') == 2
    waste = waste_chart(figures)
    assert "run 2: 20 ms wasted, $0.5000 wasted so far" in waste
    assert "$0.5000 total" in waste


def test_a_streamed_step_marks_its_first_item_where_readers_start() -> None:
    produced = attrs.evolve(entry("generate", 0, 300), first_item=0.1, items=3)
    record = run(wall=300, steps=[produced, entry("quality", 100, 320)])
    svg = timeline(record)
    (first,) = re.findall(r'<line class="first-item" data-step="generate" x1="([\d.]+)"', svg)
    generate_x, quality_x = map(float, bar_x(svg))
    assert float(first) == quality_x > generate_x  # the reader's bar starts at the mark
    assert "streamed 3 items, first at 100 ms" in svg
