"""Summarizing runs one at a time (`engine/report/_summarize.py`): the figures, routes,
labels, speculation, cache and ROI of small logs computed by hand, and a `Summarizer` that
keeps only a few numbers per run."""

from __future__ import annotations

import datetime

import attrs
import pytest
from report_records import entry, run
from specroute.engine import StepUsage
from specroute.engine.report import RunFigures, RunRecord, Summarizer, log_line, summarize

GEN = "r:gen"


def hand_log() -> list[RunRecord]:
    """Three runs of route gen, one of reuse; one right and one wrong speculation.

    Each run's baseline is its useful steps' durations added up (`run` adds a step `work`
    where the listed steps fall short).
    """
    right = run(
        wall=300,
        sequential=400,
        route="gen",
        routes=[{"router": "r", "branch": "", "label": "gen", "at_ms": 200}],
        steps=[
            entry("r", 0, 200),
            entry("a", 0, 150, branch=GEN, speculative=True, cost=0.01),
            entry("b", 150, 200, branch=GEN, speculative=True),
        ],
        label="speculative",
    )
    plain = run(wall=500, sequential=600, route="gen", label="parallel")
    cached = run(
        wall=700,
        sequential=700,
        route="gen",
        label="sequential",
        hits=2,
        misses=2,
        saved=300,
        steps=[entry("a", 0, 1, status="cached"), entry("z", 1, 2, status="cached")],
    )
    wrong = run(
        wall=100,
        sequential=100,
        route="reuse",
        wasted=200,
        wasted_cost=0.02,
        routes=[{"router": "r", "branch": "", "label": "reuse", "at_ms": 100}],
        steps=[
            entry("r", 0, 100),
            entry("a", 0, 100, branch=GEN, speculative=True, wasted=True, cost=0.01),
            entry(
                "b",
                100,
                200,
                branch=GEN,
                speculative=True,
                wasted=True,
                cost=0.01,
                status="cancelled",
            ),
            entry("c", 200, 200, branch=GEN, speculative=True, status="skipped"),
            entry("f", 0, 0, status="failed"),
        ],
        label="speculative",
    )
    return [right, plain, cached, wrong]


def test_wall_against_the_sequential_baseline() -> None:
    summary = summarize(hand_log())
    assert summary.runs == 4
    assert summary.wall.p50 == 400
    assert summary.wall.p95 == pytest.approx(670)
    assert summary.sequential.p50 == 500
    assert summary.saved_ms == pytest.approx(50)  # (100 + 100 + 0 + 0) / 4
    assert summary.saved_pct == pytest.approx(200 / 1800)
    assert summary.speedup == pytest.approx(1800 / 1600)
    assert summary.failed_steps == 1
    assert summary.wasted_ms == 200
    assert summary.wasted_cost == pytest.approx(0.02)


def test_routes_and_shares() -> None:
    gen, reuse = summarize(hand_log()).routes
    assert (gen.route, gen.runs, gen.share) == ("gen", 3, 0.75)
    assert gen.wall.p50 == 500
    assert gen.wall.p95 == pytest.approx(680)
    assert gen.saved_ms == pytest.approx(200 / 3)
    assert gen.saved_pct == pytest.approx(200 / 1700)
    assert (reuse.route, reuse.runs, reuse.share) == ("reuse", 1, 0.25)
    assert reuse.wasted_ms == 200
    assert reuse.wasted_cost == pytest.approx(0.02)


def test_speculation_right_and_wrong() -> None:
    speculation = summarize(hand_log()).speculation
    assert (speculation.runs, speculation.speculated) == (2, 2)
    assert (speculation.right, speculation.wrong, speculation.right_rate) == (1, 1, 0.5)
    # Right: a ran 0-150 and b 150-200; the router decided at 200: a 200 ms head start.
    assert speculation.saved_ms == 200
    assert speculation.saved_ms_mean == 200
    # Wrong: a (0-100) and b (100-200, cancelled) are waste; c never started.
    assert speculation.wasted_ms == 200
    assert speculation.wasted_cost == pytest.approx(0.02)


def test_cache_hit_rate_and_savings() -> None:
    cache = summarize(hand_log()).cache
    assert (cache.hits, cache.misses, cache.hit_rate) == (2, 2, 0.5)
    assert cache.saved_ms == 300
    # a costs $0.01 whenever it is computed; z never was, so its hit is unpriced.
    assert cache.saved_cost == pytest.approx(0.01)
    assert cache.unpriced_hits == 1


def test_roi_is_route_share_times_saving_against_waste() -> None:
    roi = summarize(hand_log()).roi
    assert [(t.route, t.share) for t in roi.terms] == [("gen", 0.75), ("reuse", 0.25)]
    assert roi.saved_ms == pytest.approx(50)  # 75% x 66.7 ms + 25% x 0 ms
    assert roi.wasted_ms == pytest.approx(50)  # 25% x 200 ms
    assert roi.wasted_cost == pytest.approx(0.005)  # 25% x $0.02
    assert roi.cost_per_second_saved == pytest.approx(0.1)
    assert roi.verdict == "costs"
    assert roi.statement == (
        "Speculation saves 50 ms per run (gen 75% x 67 ms + reuse 25% x 0 ms) and wastes "
        "50 ms of step time and $0.0050 per run: $0.1000 per second saved."
    )


def test_roi_verdicts() -> None:
    free = summarize([run(wall=300, sequential=400, route="gen", wasted=100)]).roi
    assert free.verdict == "pays"
    assert free.statement.startswith("Speculation pays for itself: it saves 100 ms per run")
    slow = summarize([run(wall=400, sequential=400, route="gen", wasted=100)]).roi
    assert slow.verdict == "does not pay"
    assert slow.cost_per_second_saved is None


def test_labels_and_empty_logs() -> None:
    labels = {label.label: label for label in summarize(hand_log()).labels}
    assert list(labels) == ["speculative", "parallel", "sequential"]
    assert labels["speculative"].runs == 2
    assert labels["speculative"].speedup == pytest.approx(500 / 400)
    empty = summarize([])
    assert empty.runs == 0
    assert empty.speculation.right_rate is None
    assert empty.cache.hit_rate is None
    assert empty.roi.statement == "No runs."
    assert empty.to_dict()["wall"]["p50"] == 0


def unpriced(record: RunRecord, *steps: str) -> RunRecord:
    """`record` with one unpriced LLM call (a model with no price) in each entry of `steps`."""
    trace = tuple(
        attrs.evolve(e, usage=StepUsage(calls=1, unpriced_calls=1)) if e.step in steps else e
        for e in record.result.trace
    )
    return attrs.evolve(record, result=attrs.evolve(record.result, trace=trace))


def test_a_runs_figures_are_the_few_numbers_kept_of_it() -> None:
    record = unpriced(
        run(
            wall=300,
            sequential=400,
            hits=2,
            steps=[
                entry("a", 0, 150, cost=0.01),
                entry("b", 0, 100, branch="r:lost", wasted=True, cost=0.02),
                entry("c", 0, 50, branch="r:lost", wasted=True),
                entry("d", 150, 200),
            ],
            run_id="f" * 32,
            label="parallel",
        ),
        "c",
        "d",
    )
    usage = StepUsage(calls=3, cost=0.05, unpriced_calls=1)  # the run's, not only its steps'
    record = attrs.evolve(record, result=attrs.evolve(record.result, usage=usage))
    figures = RunFigures.of(record, 7)
    assert figures == RunFigures(
        number=7,
        id="f" * 32,
        time=record.time,
        flow="demo",
        label="parallel",
        route="(no route)",
        wall_ms=300,
        sequential_ms=400,
        wasted_ms=150,
        wasted_cost=0.02,
        wasted_unpriced_calls=1,
        cost=0.05,
        unpriced_calls=1,
        cache_hits=2,
    )
    assert figures.saved_ms == 100


def test_the_summarizer_numbers_runs_as_added_and_sums_up_so_far() -> None:
    records = hand_log()
    summarizer = Summarizer()
    for count, record in enumerate(records, start=1):
        figures = summarizer.add(record)
        assert figures == RunFigures.of(record, count)
        assert summarizer.runs[-1] == figures
        assert summarizer.summary() == summarize(records[:count])
    assert [figures.number for figures in summarizer.runs] == [1, 2, 3, 4]


def test_failed_steps_are_counted_over_every_run() -> None:
    failed = entry("f", 0, 1, status="failed")
    records = [run(wall=1, steps=[failed]), run(wall=1), run(wall=1, steps=[failed, failed])]
    assert summarize(records).failed_steps == 3


def test_any_iterable_is_read_once() -> None:
    records = hand_log()
    assert summarize(iter(records)) == summarize(records)


def test_flows_and_the_first_and_last_time() -> None:
    records = [
        run(wall=1, time="2025-01-09T10:00:00+00:00"),
        run(wall=1, time="2025-01-08T10:00:00+00:00"),
        run(wall=1, time="2025-01-10T10:00:00+00:00"),
    ]
    summary = summarize(records)
    assert summary.flows == ("demo",)
    assert (summary.first, summary.last) == ("2025-01-08T10:00:00+00:00", records[2].time)
    assert (summarize([]).first, summarize([]).last) == (None, None)


def test_first_and_last_are_moments_whatever_offset_a_run_was_logged_with() -> None:
    later = datetime.datetime(2025, 1, 8, 10, 0, tzinfo=datetime.UTC)
    two_hours_ahead = datetime.timezone(datetime.timedelta(hours=2))
    earlier = datetime.datetime(2025, 1, 8, 11, 0, tzinfo=two_hours_ahead)  # 09:00 UTC
    result = run(wall=1).result
    records = [RunRecord.from_json(log_line(result, time=moment)) for moment in (later, earlier)]
    assert records[1].time == "2025-01-08T09:00:00+00:00"  # stored in UTC
    summary = summarize(records)
    assert (summary.first, summary.last) == (records[1].time, records[0].time)


def test_first_and_last_order_logs_written_with_offsets_by_moment() -> None:
    # A log written before times were stored in UTC, with a hand-written line beside them.
    times = ["2025-01-08T10:00:00+00:00", "2025-01-08T11:00:00+02:00", "2025-01-08T09:30:00"]
    records = [attrs.evolve(run(wall=1), time=time) for time in times]
    summary = summarize(records)
    assert (summary.first, summary.last) == (times[1], times[0])
    # A line whose time is no ISO 8601 time counts only when no line's time is one.
    summary = summarize([*records, attrs.evolve(run(wall=1), time="yesterday")])
    assert (summary.first, summary.last) == (times[1], times[0])
    hand_written = [attrs.evolve(run(wall=1), time=time) for time in ("monday", "friday")]
    assert (summarize(hand_written).first, summarize(hand_written).last) == ("friday", "monday")


def test_a_time_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"`time` must be timezone-aware, got datetime\.datetime"):
        log_line(run(wall=1).result, time=datetime.datetime(2025, 1, 8, 10, 0))


def test_routes_with_as_many_runs_are_in_name_order() -> None:
    routes = ["b", "a", "c", "b", "a"]
    summary = summarize([run(wall=1, sequential=1, route=route) for route in routes])
    assert [(route.route, route.runs) for route in summary.routes] == [
        ("a", 2),
        ("b", 2),
        ("c", 1),
    ]


def test_a_hit_saves_the_mean_of_what_its_step_cost_anywhere_in_the_log() -> None:
    records = [
        run(wall=10, steps=[entry("a", 0, 10, cost=0.01)]),
        run(wall=10, steps=[entry("a", 0, 1, status="cached"), entry("a", 1, 2, status="cached")]),
        run(wall=10, steps=[entry("a", 0, 10, cost=0.03)]),
    ]
    cache = summarize(records).cache
    assert cache.saved_cost == pytest.approx(2 * 0.02)
    assert cache.unpriced_hits == 0


def test_evictions_are_the_latest_count_not_a_sum() -> None:
    # Each run records its cache's evictions so far: the log's are the largest of them.
    records = [
        attrs.evolve(r, result=attrs.evolve(r.result, cache_exact_evictions=n))
        for r, n in ((run(wall=1), 1), (run(wall=1), 3), (run(wall=1), 2))
    ]
    assert summarize(records).cache.exact_evictions == 3


def test_waste_in_unpriced_calls_is_never_called_free() -> None:
    unknown = unpriced(run(wall=300, sequential=400, route="gen", wasted=100), "lost")
    roi = summarize([unknown]).roi
    assert roi.verdict == "costs"
    assert roi.cost_per_second_saved is None
    assert roi.wasted_unpriced_calls == 1
    assert roi.statement == (
        "Speculation saves 100 ms per run (gen 100% x 100 ms) and wastes 100 ms of step time "
        "and 1 unpriced LLM calls per run (unpriced: the dollars per second saved are unknown)."
    )
    priced_too = run(
        wall=300,
        sequential=400,
        route="gen",
        steps=[
            entry("lost", 0, 50, branch="r:lost", wasted=True),
            entry("also", 0, 50, branch="r:lost", wasted=True, cost=0.01),
        ],
    )
    both = summarize([unpriced(priced_too, "lost")]).roi
    assert "wastes 100 ms of step time and $0.0100 plus 1 unpriced LLM calls per run" in (
        both.statement
    )
    slow = summarize([unpriced(run(wall=400, sequential=400, route="g", wasted=9), "lost")])
    assert slow.roi.verdict == "does not pay"
    assert slow.roi.statement.endswith("waste 9 ms of step time and 1 unpriced LLM calls per run.")
