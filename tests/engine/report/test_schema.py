"""The run-log schema: the run model to JSON and back, schema 1 lines, errors with paths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from specroute.engine import (
    Mode,
    PredictedValue,
    RouterDecision,
    RouteTaken,
    RunResult,
    StepStatus,
    StepUsage,
    TraceEntry,
)
from specroute.engine.report import (
    SCHEMA_VERSION,
    RunLogError,
    RunRecord,
    read_log,
    run_from_json,
    run_to_json,
)
from specroute.routes import PlanReason, Prediction

FIXTURE = Path(__file__).parent / "fixtures" / "schema1.jsonl"

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
# Times a whole number of microseconds after the start: the log keeps them exactly.
micros = st.integers(0, 10**10).map(lambda n: n / 1_000_000)
money = st.floats(0, 100, allow_nan=False)


@st.composite
def usages(draw: st.DrawFn) -> StepUsage:
    counts = st.integers(0, 10**6)
    return StepUsage(
        calls=draw(counts),
        cancelled_calls=draw(counts),
        input_tokens=draw(counts),
        output_tokens=draw(counts),
        cost=draw(money),
        unpriced_calls=draw(counts),
        hedges_started=draw(counts),
        hedges_won=draw(counts),
        hedge_saved=draw(micros),
        hedge_cost=draw(money),
        failed_over=draw(counts),
    )


@st.composite
def entries(draw: st.DrawFn, count: int) -> TraceEntry:
    start = draw(micros)
    return TraceEntry(
        step=draw(names),
        branch=draw(names),
        start=start,
        end=draw(micros.filter(lambda end: end >= start)),
        status=draw(st.sampled_from(StepStatus)),
        speculative=draw(st.booleans()),
        wasted=draw(st.booleans()),
        error=draw(st.none() | names),
        similarity=draw(st.none() | st.floats(-1, 1)),
        usage=draw(st.none() | usages()),
        waited_on=tuple(draw(st.lists(st.integers(0, max(0, count - 1)), max_size=3))),
        first_item=draw(st.none() | micros.filter(lambda first: start <= first)),
        items=draw(st.none() | st.integers(0, 99)),
        stream_wait=draw(st.none() | micros),
    )


@st.composite
def predictions(draw: st.DrawFn) -> Prediction:
    labels = draw(st.lists(names, max_size=3, unique=True))
    chances = {label: draw(st.floats(0, 1 / 3)) for label in labels}
    return Prediction(probabilities=chances, source=draw(names))


@st.composite
def decisions(draw: st.DrawFn) -> RouterDecision:
    reason = st.builds(
        PlanReason, probability=st.floats(0, 1), steps=st.integers(0, 9), saving=money,
        waste=money, note=names,
    )  # fmt: skip
    return RouterDecision(
        router=draw(names),
        branch=draw(names),
        label=draw(st.none() | names),
        at=draw(st.none() | micros),
        prediction=draw(st.none() | predictions()),
        note=draw(names),
        plan=draw(st.dictionaries(names, st.none() | st.integers(0, 9), max_size=3)),
        reasons=draw(st.dictionaries(names, reason, max_size=2)),
        cache=draw(st.sampled_from([None, "exact", "semantic", "semantic (verified)"])),
        similarity=draw(st.none() | st.floats(-1, 1)),
        wasted=draw(st.booleans()),
        handoff_confirmed=draw(st.none() | st.booleans()),
    )


guesses = st.builds(
    PredictedValue,
    step=names,
    branch=names,
    similarity=st.floats(-1, 1),
    speculated=st.booleans(),
    confirmed=st.none() | st.booleans(),
    at=st.none() | micros,
    note=names,
)


@st.composite
def results(draw: st.DrawFn) -> RunResult:
    """A run as a reader gets it back: from time 0, no values."""
    count = draw(st.integers(0, 6))
    taken = st.builds(RouteTaken, router=names, branch=names, label=names, at=micros)
    return RunResult(
        flow=draw(names),
        mode=draw(st.sampled_from(Mode)),
        outputs={},
        values={},
        routes=tuple(draw(st.lists(taken, max_size=3))),
        trace=tuple(draw(entries(count)) for _ in range(count)),
        started=0.0,
        finished=draw(micros),
        cache_hits=draw(st.integers(0, 99)),
        cache_misses=draw(st.integers(0, 99)),
        cache_saved_time=draw(micros),
        usage=draw(usages()),
        decisions=tuple(draw(st.lists(decisions(), max_size=3))),
        predicted_values=tuple(draw(st.lists(guesses, max_size=3))),
        cache_exact_evictions=draw(st.integers(0, 99)),
        cache_semantic_evictions=draw(st.integers(0, 99)),
    )


def through_json(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data, allow_nan=False))


@given(results())
def test_unstructure_json_structure_gives_the_same_run(result: RunResult) -> None:
    assert run_from_json(through_json(run_to_json(result))) == result


@given(results(), st.floats(-1e6, 1e6))
def test_times_count_from_the_start_to_the_microsecond(result: RunResult, start: float) -> None:
    def shift(moment: float) -> float:
        return moment + start

    live = attrs.evolve(
        result,
        started=start,
        finished=shift(result.finished),
        trace=tuple(attrs.evolve(e, start=shift(e.start), end=shift(e.end)) for e in result.trace),
        routes=tuple(attrs.evolve(r, at=shift(r.at)) for r in result.routes),
    )
    back = run_from_json(through_json(run_to_json(live)))
    assert back.started == 0.0
    assert back.finished == pytest.approx(result.finished, abs=1e-6)
    for got, want in zip(back.trace, result.trace, strict=True):
        assert got.start == pytest.approx(want.start, abs=1e-6)
        assert got.end == pytest.approx(want.end, abs=1e-6)
    # What a log keeps is stable: a second trip changes nothing.
    assert run_from_json(through_json(run_to_json(back))) == back


def test_schema_1_lines_from_the_old_writer_read() -> None:
    reading = read_log(FIXTURE, strict=True)
    first, failed, predicted = reading.records
    assert [r.schema for r in reading.records] == [1, 1, 1]
    assert (first.label, first.id, first.inputs, first.inputs_digest is not None) == (
        "eager",
        "1" * 32,
        None,
        True,
    )
    run = first.result
    assert (run.flow, run.mode, run.route, run.started, run.finished) == (
        "writer",
        Mode.SPECULATIVE,
        "short",
        0.0,
        0.5,
    )
    assert [(e.step, e.start, e.end, e.status) for e in run.trace] == [
        ("write_short", 0.0, 0.1, StepStatus.OK),
        ("decide", 0.0, 0.5, StepStatus.OK),
        ("write_long", 0.0, 0.5, StepStatus.CANCELLED),
    ]
    assert all(e.waited_on == () for e in run.trace)  # schema 1 did not keep them
    assert run.decisions[0].plan == {"short": None, "long": None}
    assert failed.result.trace[1].error == "ValueError('long failed')"
    assert predicted.inputs == {"request": "old"}
    (decision,) = predicted.result.decisions
    assert decision.prediction == Prediction(probabilities={"slow": 0.99}, source="guess")
    assert (decision.predicted, decision.right) == ("slow", False)
    assert decision.reasons["slow"].steps == 1
    # The figures the old writer derived are the ones the model derives now.
    for record, text in zip(reading.records, FIXTURE.read_text().splitlines(), strict=True):
        old = json.loads(text)
        new = run_to_json(record.result)
        for key in ("route", "wall_ms", "wasted_ms", "sequential_ms", "step_ms", "wasted_cost"):
            assert new[key] == old[key], key
        # Fields added since schema 1 are written with their "nothing happened" value.
        added = {"handoff_confirmed": None}
        assert new["decisions"] == [{**decision, **added} for decision in old["decisions"]]
        later = {"waited_on", "first_item_ms", "items", "stream_wait_ms"}  # added since
        assert [{k: v for k, v in s.items() if k not in later} for s in new["steps"]] == old[
            "steps"
        ]


def test_a_record_writes_the_current_schema_and_reads_back() -> None:
    record = RunRecord.from_json(json.loads(FIXTURE.read_text().splitlines()[2]), line=3)
    assert record.line == 3
    data = record.to_json()
    assert data["schema"] == SCHEMA_VERSION == 3
    assert [step["waited_on"] for step in data["steps"]] == [[], [], []]
    again = RunRecord.from_json(through_json(data), line=3)
    assert again == attrs.evolve(record, schema=SCHEMA_VERSION)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wall_ms": "fast"}, "field `wall_ms` must be int or float, got 'fast'"),
        ({"mode": "eager"}, "field `mode` must be one of sequential, parallel, speculative"),
        ({"cache": {"hits": 1.5}}, "field `cache.hits` must be int, got 1.5"),
        ({"cache": []}, "field `cache` must be object, got []"),
        ({"routes": [{"router": "r", "branch": "", "label": 3, "at_ms": 0}]},
         "field `routes[0].label` must be str, got 3"),
        ({"steps": [{"name": "s"}]}, "field `steps[0].branch` is missing"),
        ({"usage": {"calls": "1"}}, "field `usage.calls` must be int, got '1'"),
        ({"usage": {"hedge_saved_ms": "1"}},
         "field `usage.hedge_saved_ms` must be int or float, got '1'"),
        ({"decisions": [{"router": "r", "branch": "", "probabilities": {"a": 2}}]},
         "field `decisions[0].probabilities` is not valid: probability of 'a' must be in [0, 1]"),
        ({"decisions": [{"router": "r", "branch": "", "reasons": {"a": {"steps": 1}}}]},
         "field `decisions[0].reasons.a.probability` is missing"),
        ({"id": 7}, "field `id` must be str, got 7"),
        ({"inputs": [1]}, "field `inputs` must be object, got [1]"),
        ({"schema": True}, "schema version True is not supported"),
    ],
)  # fmt: skip
def test_errors_name_the_line_and_the_field_path(change: dict[str, Any], message: str) -> None:
    data = {**json.loads(FIXTURE.read_text().splitlines()[0]), **change}
    with pytest.raises(RunLogError, match=re.escape(message)) as caught:
        RunRecord.from_json(data, line=7)
    assert caught.value.line == 7
    assert str(caught.value).startswith("line 7: ")


def test_hedge_saved_is_milliseconds_on_disk_and_absent_figures_read_as_zero() -> None:
    result = RunResult(
        flow="f",
        mode=Mode.PARALLEL,
        outputs={},
        values={},
        routes=(),
        trace=(),
        started=0.0,
        finished=1.0,
        usage=StepUsage(calls=2, hedges_started=1, hedges_won=1, hedge_saved=1.5),
    )
    data = run_to_json(result)
    assert data["usage"]["hedge_saved_ms"] == 1500.0
    assert "hedge_saved" not in data["usage"]
    old = {**data, "usage": {"calls": 2}}
    assert run_from_json(through_json(old)).usage == StepUsage(calls=2)


def test_not_an_object() -> None:
    with pytest.raises(RunLogError, match=r"must be a JSON object, got \[1\]"):
        RunRecord.from_json([1])
    with pytest.raises(RunLogError, match="must be object"):
        run_from_json("run")


@pytest.mark.parametrize(
    ("name", "replacement"),
    [
        ("StepRecord", TraceEntry),
        ("RouteRecord", RouteTaken),
        ("DecisionRecord", RouterDecision),
        ("parse_record", RunRecord.from_json),
    ],
)
def test_old_names_import_for_one_release_with_a_warning(name: str, replacement: object) -> None:
    import specroute.engine.report as report

    with pytest.warns(DeprecationWarning, match=f"report.{name} is deprecated"):
        assert getattr(report, name) == replacement
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(report, "nope")  # noqa: B009 - a name nobody defined
