"""Prometheus metrics for runs (extra `specroute[metrics]`, prometheus-client).

`PrometheusMetrics` is a `RunObserver` (a live gauge of steps running) and has
`record(result)`, which exports a finished run from its trace. Names (prefix `specroute_`)::

    step_duration_seconds            histogram  flow, step, status, wasted
    runs_total                       counter    flow, route, mode
    speculation_outcomes_total       counter    flow, router, outcome (right | wrong)
    speculation_saved_seconds_total  counter    flow      head start of right speculation
    wasted_seconds_total             counter    flow      step time of losing branches
    wasted_dollars_total             counter    flow      their LLM dollars
    llm_dollars_total                counter    flow
    cache_hits_total                 counter    flow
    cache_misses_total               counter    flow
    cache_saved_seconds_total        counter    flow
    steps_running                    gauge      flow      live, from the observer calls
    parallel_execution_duration_ms   histogram  flow, mode    seed 001: a run's wall time
    parallel_task_failures_total     counter    task_name, failure_type    seed 001
    parallel_speedup_ratio           gauge      flow, mode    seed 001: sequential / wall,
                                                              of the last run

prometheus-client is imported when a `PrometheusMetrics` is made, not when this module is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from .._trace import StepStatus
from ._summary import speculated

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .._trace import RunResult

__all__ = ["DURATION_BUCKETS_MS", "PrometheusMetrics"]

DURATION_BUCKETS_MS = (50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
_STEP_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
_INSTALL = "Prometheus metrics need prometheus-client: pip install 'specroute[metrics]'"


def _failure_type(error: str | None) -> str:
    # `error` is the exception's repr, "ValueError('...')": its class name is the type.
    return "unknown" if not error else error.partition("(")[0] or "unknown"


@attrs.define(eq=False)
class PrometheusMetrics:
    """Run metrics for Prometheus: pass it as `observer=` and `record` each result.

    Args:
        registry: Where the metrics live (default: prometheus-client's global registry).
        flow_label: The `flow` label for the live gauge, before a result names the flow.

    Raises:
        ModuleNotFoundError: prometheus-client is not installed (the message says how).
    """

    registry: CollectorRegistry | None = None
    flow_label: str = attrs.field(default="", kw_only=True)
    _metrics: dict[str, Any] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        try:
            import prometheus_client as prom
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(_INSTALL) from exc
        registry = self.registry if self.registry is not None else prom.REGISTRY
        counters = {
            "runs_total": ("Runs by route and mode", ["flow", "route", "mode"]),
            "speculation_outcomes_total": (
                "Speculated branches, right (their router picked them) or wrong",
                ["flow", "router", "outcome"],
            ),
            "speculation_saved_seconds_total": ("Head start of right speculation", ["flow"]),
            "wasted_seconds_total": ("Step time spent in branches that lost", ["flow"]),
            "wasted_dollars_total": ("LLM dollars spent in branches that lost", ["flow"]),
            "llm_dollars_total": ("LLM dollars over every run", ["flow"]),
            "cache_hits_total": ("Steps served from the cache", ["flow"]),
            "cache_misses_total": ("Cached steps that had to be computed", ["flow"]),
            "cache_saved_seconds_total": ("What cache hits took when computed", ["flow"]),
            "parallel_task_failures_total": (
                "Number of parallel task failures",
                ["task_name", "failure_type"],
            ),
        }
        # prometheus-client adds `_total` to counters itself.
        for name, (text, labels) in counters.items():
            self._metrics[name] = prom.Counter(
                f"specroute_{name.removesuffix('_total')}", text, labels, registry=registry
            )
        self._metrics["step_duration_seconds"] = prom.Histogram(
            "specroute_step_duration_seconds",
            "Duration of each step execution",
            ["flow", "step", "status", "wasted"],
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self._metrics["parallel_execution_duration_ms"] = prom.Histogram(
            "specroute_parallel_execution_duration_ms",
            "Duration of parallel node execution (a run's wall time, ms)",
            ["flow", "mode"],
            buckets=DURATION_BUCKETS_MS,
            registry=registry,
        )
        self._metrics["parallel_speedup_ratio"] = prom.Gauge(
            "specroute_parallel_speedup_ratio",
            "Speedup ratio vs sequential execution (last run)",
            ["flow", "mode"],
            registry=registry,
        )
        self._metrics["steps_running"] = prom.Gauge(
            "specroute_steps_running", "Steps running now", ["flow"], registry=registry
        )

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        """Count the step as running."""
        self._metrics["steps_running"].labels(self.flow_label).inc()

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        """Count the step as no longer running (skipped steps never started)."""
        if status is not StepStatus.SKIPPED:
            self._metrics["steps_running"].labels(self.flow_label).dec()

    def record(self, result: RunResult) -> None:
        """Export a finished run: its steps, route, speculation, waste, cache and speed-up.

        Args:
            result: What `Flow.run` returned.
        """
        m = self._metrics
        flow = result.flow
        mode = result.mode.value
        for entry in result.trace:
            if entry.status is StepStatus.SKIPPED:
                continue
            m["step_duration_seconds"].labels(
                flow, entry.step, entry.status.value, str(entry.wasted).lower()
            ).observe(entry.duration)
            if entry.status in (StepStatus.FAILED, StepStatus.RECOVERED):
                m["parallel_task_failures_total"].labels(
                    entry.step, _failure_type(entry.error)
                ).inc()
        m["runs_total"].labels(flow, result.route or "", mode).inc()
        for one in speculated(result):
            outcome = "right" if one.right else "wrong"
            m["speculation_outcomes_total"].labels(flow, one.router, outcome).inc()
            m["speculation_saved_seconds_total"].labels(flow).inc(one.head_start_ms / 1000)
        m["wasted_seconds_total"].labels(flow).inc(result.wasted_time)
        m["wasted_dollars_total"].labels(flow).inc(result.wasted_cost)
        m["llm_dollars_total"].labels(flow).inc(result.usage.cost)
        m["cache_hits_total"].labels(flow).inc(result.cache_hits)
        m["cache_misses_total"].labels(flow).inc(result.cache_misses)
        m["cache_saved_seconds_total"].labels(flow).inc(result.cache_saved_time)
        m["parallel_execution_duration_ms"].labels(flow, mode).observe(result.wall_time * 1000)
        if result.wall_time > 0:
            ratio = result.sequential_time / result.wall_time
            m["parallel_speedup_ratio"].labels(flow, mode).set(ratio)
