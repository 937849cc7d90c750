"""Run logs, reports (terminal, HTML, JSON), metrics and the `specroute` command line.

Append runs to a `RunLog`, read them back with `read_log`, and `summarize` them; the
`specroute report` command prints the summary or writes an HTML report. Prometheus
metrics (`PrometheusMetrics`) and OpenTelemetry spans (`record_spans`) need the `metrics`
and `otel` extras; they import their libraries only when used.
"""

from ._errors import RunLogError as RunLogError
from ._log import LogProblem as LogProblem
from ._log import LogReading as LogReading
from ._log import RunLog as RunLog
from ._log import inputs_digest as inputs_digest
from ._log import log_line as log_line
from ._log import read_log as read_log
from ._record import SCHEMA_VERSION as SCHEMA_VERSION
from ._record import RouteRecord as RouteRecord
from ._record import RunRecord as RunRecord
from ._record import StepRecord as StepRecord
from ._record import parse_record as parse_record
from ._summary import CacheSummary as CacheSummary
from ._summary import Distribution as Distribution
from ._summary import LabelSummary as LabelSummary
from ._summary import RoiSummary as RoiSummary
from ._summary import RoiTerm as RoiTerm
from ._summary import RouteSummary as RouteSummary
from ._summary import SpeculationSummary as SpeculationSummary
from ._summary import Summary as Summary
from ._summary import percentile as percentile
from ._summary import summarize as summarize

__all__ = [  # noqa: RUF022 - plain sorted() order, which tests/test_exports.py checks
    "CacheSummary",
    "Distribution",
    "LabelSummary",
    "LogProblem",
    "LogReading",
    "RoiSummary",
    "RoiTerm",
    "RouteRecord",
    "RouteSummary",
    "RunLog",
    "RunLogError",
    "RunRecord",
    "SCHEMA_VERSION",
    "SpeculationSummary",
    "StepRecord",
    "Summary",
    "inputs_digest",
    "log_line",
    "parse_record",
    "percentile",
    "read_log",
    "summarize",
]
