"""OpenTelemetry spans from a run, caught by the SDK's in-memory exporter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from report_records import writer_run

if TYPE_CHECKING:
    from trio.testing import MockClock

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from specroute.engine.report import record_spans


async def test_a_span_per_run_and_per_step(autojump_clock: MockClock) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = await writer_run()

    record_spans(result, tracer=provider.get_tracer("test"), ended_at=1_000.0)

    spans = exporter.get_finished_spans()
    (run,) = [span for span in spans if span.name == "specroute.run"]
    steps = [span for span in spans if span.name == "specroute.step"]
    assert len(steps) == len(result.trace)
    assert run.attributes is not None
    assert run.attributes["specroute.route"] == "short"
    assert run.end_time == 1_000 * 10**9
    assert run.start_time == run.end_time - 500 * 10**6
    assert [event.name for event in run.events] == ["specroute.route"]
    by_name = {span.attributes["specroute.step"]: span for span in steps if span.attributes}
    long_span = by_name["write_long"]
    assert long_span.parent is not None
    assert long_span.parent.span_id == run.context.span_id
    assert long_span.attributes is not None
    assert long_span.attributes["specroute.speculative"] is True
    assert long_span.attributes["specroute.cancelled"] is True
    assert long_span.attributes["specroute.wasted"] is True
    assert long_span.end_time - long_span.start_time == 500 * 10**6
    decide = by_name["decide"].attributes
    assert decide is not None
    assert decide["specroute.speculative"] is False


async def test_failed_steps_get_an_error_status(autojump_clock: MockClock) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_spans(await writer_run(fail_long=True), tracer=provider.get_tracer("test"))
    failed = [s for s in exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert [span.attributes["specroute.step"] for span in failed if span.attributes] == [
        "write_long"
    ]
