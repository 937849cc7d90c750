"""Prometheus metrics from a run: step durations, routes, speculation, waste, seed 001's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from report_records import writer_run

if TYPE_CHECKING:
    from trio.testing import MockClock

prometheus_client = pytest.importorskip("prometheus_client")

from specroute.engine.report import PrometheusMetrics  # noqa: E402


async def test_record_exports_a_run(autojump_clock: MockClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry, flow_label="writer")
    result = await writer_run()
    metrics.record(result)
    metrics.record(result)

    def value(name: str, **labels: str) -> float | None:
        got: float | None = registry.get_sample_value(name, labels)
        return got

    assert value("specroute_runs_total", flow="writer", route="short", mode="speculative") == 2
    speculation = {"flow": "writer", "router": "decide"}
    assert value("specroute_speculation_outcomes_total", **speculation, outcome="wrong") == 2
    assert value("specroute_speculation_outcomes_total", **speculation, outcome="right") == 2
    assert value("specroute_wasted_seconds_total", flow="writer") == pytest.approx(1.0)
    assert value("specroute_wasted_dollars_total", flow="writer") == 0
    assert value("specroute_cache_hits_total", flow="writer") == 0
    step = {"flow": "writer", "step": "write_long", "status": "cancelled", "wasted": "true"}
    assert value("specroute_step_duration_seconds_count", **step) == 2
    assert value("specroute_step_duration_seconds_sum", **step) == pytest.approx(1.0)
    run = {"flow": "writer", "mode": "speculative"}
    assert value("specroute_parallel_execution_duration_ms_sum", **run) == pytest.approx(1000)
    assert value("specroute_parallel_speedup_ratio", **run) == pytest.approx(600 / 500)


async def test_task_failures_and_the_live_gauge(autojump_clock: MockClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry, flow_label="writer")
    from specroute.engine import StepStatus

    metrics.step_started("a", "", False)
    metrics.step_started("b", "", True)
    assert registry.get_sample_value("specroute_steps_running", {"flow": "writer"}) == 2
    metrics.step_finished("a", "", StepStatus.OK, 0.1)
    metrics.step_finished("c", "", StepStatus.SKIPPED, 0.0)
    assert registry.get_sample_value("specroute_steps_running", {"flow": "writer"}) == 1

    metrics.record(await writer_run(fail_long=True))
    failures = {"task_name": "write_long", "failure_type": "ValueError"}
    assert registry.get_sample_value("specroute_parallel_task_failures_total", failures) == 1


def test_exposition_names_the_seed_metrics() -> None:
    registry = prometheus_client.CollectorRegistry()
    PrometheusMetrics(registry)
    text = prometheus_client.generate_latest(registry).decode()
    names = ["parallel_execution_duration_ms", "parallel_task_failures_total",
             "parallel_speedup_ratio", "step_duration_seconds", "runs_total",
             "speculation_outcomes_total", "wasted_dollars_total", "cache_hits_total"]  # fmt: skip
    for name in names:
        assert f"# TYPE specroute_{name.removesuffix('_total')}" in text
