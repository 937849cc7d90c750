"""Run logs, reports (terminal, HTML, JSON), metrics, spans and the `specroute` command.

Append runs to a `RunLog` (or `specroute run ... --log PATH`), read them back with
`read_log` (or stream them with `iter_log`), `summarize` them, and print (`print_summary`)
or render (`render_html`) the report; `read_report` does it in one streaming pass, in a few
numbers of memory per run, and `specroute report LOG [--html OUT] [--json]` does all of it.
`RunProgress` shows a run live. `PrometheusMetrics` (extra `specroute[metrics]`) and
`record_spans` (extra `specroute[otel]`) import their libraries only when used.

A log line holds the run model itself: `read_log(path).records[i].result` is a `RunResult`
(times from the run's start); `run_to_json` / `run_from_json` convert one run.
"""

from typing import Any as _Any

from specroute.routes._public import show_public_module as _show_public_module

from ._costs import measured_costs as measured_costs
from ._errors import RunLogError as RunLogError
from ._hedging import StepHedging as StepHedging
from ._hedging import hedging_by_step as hedging_by_step
from ._html import render_html as render_html
from ._html import render_report as render_report
from ._log import LogProblem as LogProblem
from ._log import LogReading as LogReading
from ._log import RunLog as RunLog
from ._log import inputs_digest as inputs_digest
from ._log import iter_log as iter_log
from ._log import log_line as log_line
from ._log import read_log as read_log
from ._metrics import DURATION_BUCKETS_MS as DURATION_BUCKETS_MS
from ._metrics import PrometheusMetrics as PrometheusMetrics
from ._otel import record_spans as record_spans
from ._predictions import PredictionSummary as PredictionSummary
from ._predictions import ValuePredictionSummary as ValuePredictionSummary
from ._predictions import predictions as predictions
from ._predictions import value_predictions as value_predictions
from ._progress import RunProgress as RunProgress
from ._report import NotableRun as NotableRun
from ._report import Report as Report
from ._report import pick_run as pick_run
from ._report import read_report as read_report
from ._schema import SCHEMA_VERSION as SCHEMA_VERSION
from ._schema import RunRecord as RunRecord
from ._schema import run_from_json as run_from_json
from ._schema import run_to_json as run_to_json
from ._summarize import RunFigures as RunFigures
from ._summarize import Summarizer as Summarizer
from ._summarize import summarize as summarize
from ._summary import CacheSummary as CacheSummary
from ._summary import Distribution as Distribution
from ._summary import LabelSummary as LabelSummary
from ._summary import RoiSummary as RoiSummary
from ._summary import RoiTerm as RoiTerm
from ._summary import RouteSummary as RouteSummary
from ._summary import Speculated as Speculated
from ._summary import SpeculationSummary as SpeculationSummary
from ._summary import Summary as Summary
from ._summary import percentile as percentile
from ._summary import speculated as speculated
from ._terminal import print_summary as print_summary
from ._terminal import summary_tables as summary_tables

__all__ = [  # noqa: RUF022 - plain sorted() order, which tests/test_exports.py checks
    "CacheSummary",
    "DURATION_BUCKETS_MS",
    "Distribution",
    "LabelSummary",
    "LogProblem",
    "LogReading",
    "NotableRun",
    "PredictionSummary",
    "PrometheusMetrics",
    "Report",
    "RoiSummary",
    "RoiTerm",
    "RouteSummary",
    "RunFigures",
    "RunLog",
    "RunLogError",
    "RunProgress",
    "RunRecord",
    "SCHEMA_VERSION",
    "Speculated",
    "SpeculationSummary",
    "StepHedging",
    "Summarizer",
    "Summary",
    "ValuePredictionSummary",
    "hedging_by_step",
    "inputs_digest",
    "iter_log",
    "log_line",
    "measured_costs",
    "percentile",
    "pick_run",
    "predictions",
    "print_summary",
    "read_log",
    "read_report",
    "record_spans",
    "render_html",
    "render_report",
    "run_from_json",
    "run_to_json",
    "speculated",
    "summarize",
    "summary_tables",
    "value_predictions",
]


# Names that left the public surface in this release; they still import, with a warning.
_MOVED = {
    "StepRecord": ("TraceEntry", "specroute.engine.TraceEntry (times in seconds)"),
    "RouteRecord": ("RouteTaken", "specroute.engine.RouteTaken (times in seconds)"),
    "DecisionRecord": ("RouterDecision", "specroute.engine.RouterDecision"),
    "parse_record": ("parse_record", "RunRecord.from_json(data, line=...)"),
}


def __getattr__(name: str) -> _Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    from .. import _trace

    target, instead = _MOVED[name]
    warnings.warn(
        f"specroute.engine.report.{name} is deprecated and goes in the next release: "
        f"a log line now holds the run model itself; use {instead}",
        DeprecationWarning,
        stacklevel=2,
    )
    if name == "parse_record":
        return RunRecord.from_json
    return getattr(_trace, target)


_show_public_module(__name__, globals(), __all__)
