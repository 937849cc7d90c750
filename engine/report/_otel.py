"""OpenTelemetry spans for a finished run (extra `specroute[otel]`, opentelemetry-sdk).

`record_spans(result)` emits one span for the run (`specroute.run`) and one child span per
step execution (`specroute.step`), placed at the times the steps ran. Attributes:

    run:   specroute.flow, .mode, .route, .wall_ms, .sequential_ms, .wasted_ms,
           .wasted_cost, .llm_cost, .cache_hits, .cache_misses; an event per route taken
    step:  specroute.step, .branch, .status, .speculative, .wasted, .cancelled, .skipped,
           .error, .llm_calls, .llm_cost, .input_tokens, .output_tokens
           (failed steps get an ERROR status)

opentelemetry is imported when `record_spans` is called, not when this module is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._trace import StepStatus

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from .._trace import RunResult

__all__ = ["record_spans"]

_INSTALL = "OpenTelemetry spans need opentelemetry-sdk: pip install 'specroute[otel]'"


def record_spans(
    result: RunResult, *, tracer: Tracer | None = None, ended_at: float | None = None
) -> None:
    """Emit the run's spans: one for the run, a child for each step execution.

    Args:
        result: What `Flow.run` returned.
        tracer: The tracer (default: `opentelemetry.trace.get_tracer("specroute")`).
        ended_at: When the run finished, in seconds since the epoch (default: now); the
            trace's trio times are placed relative to it.

    Raises:
        ModuleNotFoundError: opentelemetry is not installed (the message says how).
    """
    try:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(_INSTALL) from exc
    tracer = tracer or trace.get_tracer("specroute")
    end_ns = time.time_ns() if ended_at is None else int(ended_at * 1e9)

    def ns(moment: float) -> int:
        return end_ns - round((result.finished - moment) * 1e9)

    run = tracer.start_span(
        "specroute.run",
        start_time=ns(result.started),
        attributes={
            "specroute.flow": result.flow,
            "specroute.mode": result.mode.value,
            "specroute.route": result.route or "",
            "specroute.wall_ms": result.wall_time * 1000,
            "specroute.sequential_ms": result.sequential_time * 1000,
            "specroute.wasted_ms": result.wasted_time * 1000,
            "specroute.wasted_cost": result.wasted_cost,
            "specroute.llm_cost": result.usage.cost,
            "specroute.cache_hits": result.cache_hits,
            "specroute.cache_misses": result.cache_misses,
        },
    )
    for taken in result.routes:
        run.add_event(
            "specroute.route",
            {"specroute.router": taken.router, "specroute.branch": taken.branch,
             "specroute.label": taken.label},
            timestamp=ns(taken.at),
        )  # fmt: skip
    parent = trace.set_span_in_context(run)
    for entry in result.trace:
        usage = entry.usage
        span = tracer.start_span(
            "specroute.step",
            context=parent,
            start_time=ns(entry.start),
            attributes={
                "specroute.step": entry.step,
                "specroute.branch": entry.branch,
                "specroute.status": entry.status.value,
                "specroute.speculative": entry.speculative,
                "specroute.wasted": entry.wasted,
                "specroute.cancelled": entry.status is StepStatus.CANCELLED,
                "specroute.skipped": entry.status is StepStatus.SKIPPED,
                "specroute.error": entry.error or "",
                "specroute.llm_calls": 0 if usage is None else usage.calls,
                "specroute.llm_cost": 0.0 if usage is None else usage.cost,
                "specroute.input_tokens": 0 if usage is None else usage.input_tokens,
                "specroute.output_tokens": 0 if usage is None else usage.output_tokens,
            },
        )
        if entry.status is StepStatus.FAILED:
            span.set_status(Status(StatusCode.ERROR, entry.error))
        span.end(end_time=ns(entry.end))
    run.end(end_time=end_ns)
