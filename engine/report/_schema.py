"""The run-log schema: the live run model (`RunResult`) as JSON, and back, with cattrs.

A log line is one `RunRecord`: a `RunResult` plus what the log adds (id, time, label, the
inputs' digest). There is no second copy of the model: what a reader gets back is the
`RunResult` the run returned, with its times made relative to the run's start
(`started == 0.0`) and without `outputs` or `values` (a log never keeps them; they may hold
user data).

On disk, times are milliseconds from the run's start, rounded to the microsecond (3
decimals); in memory they are seconds. So a time survives a round trip exactly when it is a
whole number of microseconds after the start, and to within half a microsecond otherwise.
The line also carries figures derived from the model (`route`, `wasted_ms`, `critical_path`,
a decision's `predicted` and `right`, ...) for people and tools reading the file; a reader
recomputes them from the model and ignores what the line says.

Schema 3 (written now) adds what a streamed step carries: `first_item_ms`, when its first
item reached its readers, and `items`, how many it produced (null for other steps); a
schema-2 line reads with both None. Schema 2 differs from schema 1 (still read) only in
what a step carries: `waited_on`, the indices of the steps it waited on, so that a reader
can walk the critical path. A schema-1 line reads with `waited_on == ()` everywhere. The
layout of each is drawn in `_log.py`'s docstring and in the README.

Unknown fields are ignored, so a field may be added without a new version; removing or
retyping one needs a new version. Errors name the line and the field's path
(`steps[2].status`) and raise `RunLogError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, mapping_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from specroute.routes import PlanReason, Prediction

from .._mode import Mode
from .._trace import (
    PredictedValue,
    RouterDecision,
    RouteTaken,
    RunResult,
    StepStatus,
    TraceEntry,
)
from .._usage import StepUsage
from ..llm import ToolRecord
from ._errors import RunLogError

__all__ = ["SCHEMA_VERSION", "RunRecord", "run_from_json", "run_to_json"]

SCHEMA_VERSION = 3
_READABLE = (1, 2, 3)


@attrs.frozen(kw_only=True)
class RunRecord:
    """One line of a run log: a run, and what the log adds to it.

    Attributes:
        result: The run, times relative to its start (`started == 0.0`), no values.
        id: The run's id (a uuid4 hex string).
        time: When the run was logged, ISO 8601 in UTC.
        label: What the caller called this configuration (e.g. `parallel-start`); the
            mode unless one was given.
        schema: The schema version of the line it was read from.
        inputs_digest: blake2b of the canonical JSON of the inputs, or None.
        inputs: The raw inputs, only when the caller asked to record them.
        line: The line of the log it was read from (None if not read from a file).
    """

    result: RunResult
    id: str
    time: str
    label: str
    schema: int = SCHEMA_VERSION
    inputs_digest: str | None = None
    inputs: Mapping[str, Any] | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The line for this record: metadata first, then `run_to_json(self.result)`.

        Returns:
            JSON-ready data in the current schema (whatever `schema` it was read with).
        """
        data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "time": self.time,
            "label": self.label,
            "inputs_digest": self.inputs_digest,
        }
        if self.inputs is not None:
            data["inputs"] = dict(self.inputs)
        return data | run_to_json(self.result)

    @classmethod
    def from_json(cls, data: object, *, line: int | None = None) -> RunRecord:
        """Check one decoded log line against its schema and build its record.

        Args:
            data: The line, decoded from JSON.
            line: Its line number, kept in the record.

        Returns:
            The record; `result` is the run it holds.

        Raises:
            RunLogError: Not an object, a schema version this reader does not read, or a
                field missing or of the wrong type; the message names the field's path.
        """
        if not isinstance(data, dict):
            raise RunLogError(f"the record must be a JSON object, got {data!r:.60}", line=line)
        version = data.get("schema")
        if version not in _READABLE or isinstance(version, bool):
            readable = " and ".join(str(v) for v in _READABLE)
            if version is None:
                raise RunLogError(
                    "no `schema` field: not a specroute run log line (or written before "
                    f"schema 1); this reader reads schemas {readable}",
                    line=line,
                )
            raise RunLogError(
                f"schema version {version!r} is not supported; this reader reads schemas "
                f"{readable} (upgrade specroute to read newer logs)",
                line=line,
            )
        result = run_from_json(data, line=line)
        inputs = data.get("inputs")
        label = data.get("label")
        return cls(
            result=result,
            id=_text(data, "id", line),
            time=_text(data, "time", line),
            label=result.mode.value if label is None else _text(data, "label", line),
            schema=version,
            inputs_digest=None
            if data.get("inputs_digest") is None
            else _text(data, "inputs_digest", line),
            inputs=None if inputs is None else _mapping(inputs, "inputs", line),
            line=line,
        )


def run_to_json(result: RunResult) -> dict[str, Any]:
    """The run as JSON-ready data (the run part of a log line; what `--json` prints).

    Times become milliseconds from the run's start, rounded to the microsecond; outputs
    and values are left out on purpose (they may hold user data). Figures derived from
    the run (`route`, `wall_ms`, `wasted_ms`, `sequential_ms`, `step_ms`, `critical_path`,
    `wasted_cost`) are added for readers of the file.

    Args:
        result: What `Flow.run` returned.

    Returns:
        A dict of JSON types.
    """
    data: dict[str, Any] = _converter.unstructure(result, RunResult)
    return data


def run_from_json(data: object, *, line: int | None = None) -> RunResult:
    """The run a log line (schema 1, 2 or 3) holds, times relative to its start.

    Args:
        data: The line (or `run_to_json`'s output), decoded from JSON.
        line: Its line number, for error messages.

    Returns:
        The run: `started == 0.0`, `outputs` and `values` empty, derived figures
        recomputed from the steps.

    Raises:
        RunLogError: A field missing or of the wrong type; the message names its path.
    """
    try:
        return _converter.structure(data, RunResult)
    except (cattrs.BaseValidationError, _FieldError, KeyError) as exc:
        path, reason = _first_problem(exc, RunResult, "")
        where = f"field `{path}` " if path else ""
        raise RunLogError(f"{where}{reason}", line=line) from None


# Units: seconds in memory, milliseconds (to the microsecond) on disk.


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to the microsecond: how a log and the reports show time."""
    return round(seconds * 1000, 3)


def _maybe_ms(seconds: float | None) -> float | None:
    return None if seconds is None else ms(seconds)


def _seconds(ms: float) -> float:
    return round(ms / 1000, 6)


def _rebased(result: RunResult) -> RunResult:
    """`result` with every time made relative to its start."""
    zero = result.started

    def entry(e: TraceEntry) -> TraceEntry:
        first = None if e.first_item is None else e.first_item - zero
        tools = tuple(attrs.evolve(t, start=t.start - zero, end=t.end - zero) for t in e.tools)
        return attrs.evolve(
            e, start=e.start - zero, end=e.end - zero, first_item=first, tools=tools
        )

    def decision(d: RouterDecision) -> RouterDecision:
        return attrs.evolve(d, at=None if d.at is None else d.at - zero)

    def guess(g: PredictedValue) -> PredictedValue:
        return attrs.evolve(g, at=None if g.at is None else g.at - zero)

    return attrs.evolve(
        result,
        started=0.0,
        finished=result.finished - zero,
        routes=tuple(attrs.evolve(r, at=r.at - zero) for r in result.routes),
        trace=tuple(entry(e) for e in result.trace),
        decisions=tuple(decision(d) for d in result.decisions),
        predicted_values=tuple(guess(g) for g in result.predicted_values),
    )


# Strict leaves: JSON has one number type and `true` is not a count.


class _FieldError(Exception):
    """A JSON value of the wrong type; cattrs attaches where it was."""


def _kind(value: object) -> str:
    return f"{value!r:.60}"


def _str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise _FieldError(f"must be str, got {_kind(value)}")
    return value


def _int(value: object, _: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _FieldError(f"must be int, got {_kind(value)}")
    return value


def _float(value: object, _: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _FieldError(f"must be int or float, got {_kind(value)}")
    return float(value)


def _bool(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise _FieldError(f"must be bool, got {_kind(value)}")
    return value


def _enum(kind: type[StepStatus] | type[Mode]) -> Callable[[object, object], Any]:
    def structure(value: object, _: object) -> Any:
        try:
            return kind(_str(value, None))
        except ValueError:
            known = ", ".join(member.value for member in kind)
            raise _FieldError(f"must be one of {known}, got {_kind(value)}") from None

    return structure


def _text(data: Mapping[str, Any], key: str, line: int | None) -> str:
    try:
        return _str(data.get(key), None)
    except _FieldError as exc:
        reason = "is missing" if key not in data else str(exc)
        raise RunLogError(f"field `{key}` {reason}", line=line) from None


def _mapping(value: object, key: str, line: int | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RunLogError(f"field `{key}` must be object, got {_kind(value)}", line=line)
    return value


def _ms_field(value: object, _: object) -> float:
    return _seconds(_float(value, None))


def _maybe_ms_field(value: object, _: object) -> float | None:
    return None if value is None else _ms_field(value, None)


# The converter: one place that knows the layout.

_converter = cattrs.Converter(detailed_validation=True)
for _leaf, _hook in ((str, _str), (int, _int), (float, _float), (bool, _bool)):
    _converter.register_structure_hook(_leaf, _hook)
_converter.register_structure_hook(StepStatus, _enum(StepStatus))
_converter.register_structure_hook(Mode, _enum(Mode))
_converter.register_unstructure_hook(Mode, lambda mode: mode.value)
_converter.register_unstructure_hook(StepStatus, lambda status: status.value)


def _is_tuple(kind: Any) -> bool:
    return get_origin(kind) is tuple


def _is_mapping(kind: Any) -> bool:
    return get_origin(kind) in (dict, Mapping)


def _tuple_factory(kind: Any, converter: cattrs.Converter) -> Callable[[object, object], Any]:
    inner = homogenous_tuple_structure_factory(kind, converter)

    def structure(value: object, target: object) -> Any:
        if not isinstance(value, list | tuple):
            raise _FieldError(f"must be list, got {_kind(value)}")
        return inner(value, target)

    return structure


def _mapping_factory(kind: Any, converter: cattrs.Converter) -> Callable[[object, object], Any]:
    key, item = get_args(kind) or (str, Any)
    inner = mapping_structure_factory(dict[key, item], converter)  # type: ignore[valid-type]

    def structure(value: object, target: object) -> Any:
        if not isinstance(value, dict):
            raise _FieldError(f"must be object, got {_kind(value)}")
        return inner(value, target)

    return structure


_converter.register_structure_hook_factory(_is_tuple, _tuple_factory)
_converter.register_structure_hook_factory(_is_mapping, _mapping_factory)

# `_trace.py` names these types only for the type checker; cattrs needs them resolved.
_TYPES = {
    "Any": Any,
    "Callable": Callable,
    "Mapping": Mapping,
    "Mode": Mode,
    "PlanReason": PlanReason,
    "Prediction": Prediction,
    "StepUsage": StepUsage,
    "ToolRecord": ToolRecord,
    "Literal": Literal,
}
for _cls in (TraceEntry, RouteTaken, RouterDecision, PredictedValue, RunResult, ToolRecord):
    attrs.resolve_types(_cls, localns=_TYPES)

# File key of each attribute that is named otherwise on disk (for error paths too).
_KEYS: dict[type, dict[str, str]] = {
    TraceEntry: {
        "step": "name",
        "start": "start_ms",
        "end": "end_ms",
        "first_item": "first_item_ms",
        "stream_wait": "stream_wait_ms",
    },
    RouteTaken: {"at": "at_ms"},
    RouterDecision: {"at": "at_ms", "prediction": "probabilities"},
    PredictedValue: {"at": "at_ms"},
    RunResult: {"trace": "steps", "finished": "wall_ms"}
    | {
        # `cache` is one object on disk; the structure hook spreads it out under these keys.
        "cache_hits": "cache.hits",
        "cache_misses": "cache.misses",
        "cache_saved_time": "cache.saved_ms",
        "cache_exact_evictions": "cache.exact_evictions",
        "cache_semantic_evictions": "cache.semantic_evictions",
    },
}


# A hedge's saved time is a time like any other: milliseconds on disk (issue 19).
_converter.register_structure_hook(
    StepUsage,
    make_dict_structure_fn(
        StepUsage,
        _converter,
        hedge_saved=override(rename="hedge_saved_ms", struct_hook=_ms_field),
    ),
)
_converter.register_unstructure_hook(
    StepUsage,
    make_dict_unstructure_fn(
        StepUsage, _converter, hedge_saved=override(rename="hedge_saved_ms", unstruct_hook=ms)
    ),
)
_KEYS[StepUsage] = {"hedge_saved": "hedge_saved_ms"}


def _usage_in(value: object, _: object) -> StepUsage | None:
    return None if value is None else _converter.structure(value, StepUsage)


# A tool execution's times are milliseconds on disk, as a step's are.
_converter.register_structure_hook(
    ToolRecord,
    make_dict_structure_fn(
        ToolRecord,
        _converter,
        start=override(rename="start_ms", struct_hook=_ms_field),
        end=override(rename="end_ms", struct_hook=_ms_field),
    ),
)
_converter.register_unstructure_hook(
    ToolRecord,
    make_dict_unstructure_fn(
        ToolRecord,
        _converter,
        start=override(rename="start_ms", unstruct_hook=ms),
        end=override(rename="end_ms", unstruct_hook=ms),
    ),
)
_converter.register_structure_hook(
    TraceEntry,
    make_dict_structure_fn(
        TraceEntry,
        _converter,
        step=override(rename="name"),
        start=override(rename="start_ms", struct_hook=_ms_field),
        end=override(rename="end_ms", struct_hook=_ms_field),
        usage=override(struct_hook=_usage_in),
        first_item=override(rename="first_item_ms", struct_hook=_maybe_ms_field),
        stream_wait=override(rename="stream_wait_ms", struct_hook=_maybe_ms_field),
    ),
)
_converter.register_unstructure_hook(
    TraceEntry,
    make_dict_unstructure_fn(
        TraceEntry,
        _converter,
        step=override(rename="name"),
        start=override(rename="start_ms", unstruct_hook=ms),
        end=override(rename="end_ms", unstruct_hook=ms),
        first_item=override(rename="first_item_ms", unstruct_hook=_maybe_ms),
        stream_wait=override(rename="stream_wait_ms", unstruct_hook=_maybe_ms),
        # Absent from steps that ran no tools, so their lines read as before.
        tools=override(omit_if_default=True),
    ),
)
_converter.register_structure_hook(
    RouteTaken,
    make_dict_structure_fn(
        RouteTaken, _converter, at=override(rename="at_ms", struct_hook=_ms_field)
    ),
)
_converter.register_unstructure_hook(
    RouteTaken,
    make_dict_unstructure_fn(RouteTaken, _converter, at=override(rename="at_ms", unstruct_hook=ms)),
)


_converter.register_structure_hook(
    PredictedValue,
    make_dict_structure_fn(
        PredictedValue, _converter, at=override(rename="at_ms", struct_hook=_maybe_ms_field)
    ),
)
_converter.register_unstructure_hook(
    PredictedValue,
    make_dict_unstructure_fn(
        PredictedValue,
        _converter,
        at=override(rename="at_ms", unstruct_hook=_maybe_ms),
    ),
)


def _prediction_in(value: object, _: object) -> Prediction | None:
    # The hook below packs the line's `probabilities` and `source` together.
    probabilities, source = value if isinstance(value, tuple) else (value, None)
    if probabilities is None:
        return None
    chances = _converter.structure(probabilities, dict[str, float])
    try:
        return Prediction(probabilities=chances, source=source or "")
    except ValueError as exc:
        raise _FieldError(f"is not valid: {exc}") from None


_decision_in = make_dict_structure_fn(
    RouterDecision,
    _converter,
    at=override(rename="at_ms", struct_hook=_maybe_ms_field),
    prediction=override(rename="probabilities", struct_hook=_prediction_in),
)


def _decision_from(value: object, _: object) -> RouterDecision:
    if not isinstance(value, dict):
        raise _FieldError(f"must be object, got {_kind(value)}")
    source = value.get("source")
    if source is not None:
        _str(source, None)
    packed = {**value, "probabilities": (value.get("probabilities"), source)}
    return _decision_in(packed, RouterDecision)


def _decision_to(decision: RouterDecision) -> dict[str, Any]:
    prediction = decision.prediction
    return {
        "router": decision.router,
        "branch": decision.branch,
        "label": decision.label,
        "at_ms": None if decision.at is None else ms(decision.at),
        "predicted": decision.predicted,
        "probabilities": None if prediction is None else dict(prediction.probabilities),
        "source": None if prediction is None else prediction.source,
        "note": decision.note,
        "right": decision.right,
        "plan": dict(decision.plan),
        "reasons": {label: _converter.unstructure(r) for label, r in decision.reasons.items()},
        "cache": decision.cache,
        "similarity": decision.similarity,
        "wasted": decision.wasted,
        "handoff_confirmed": decision.handoff_confirmed,
    }


_converter.register_structure_hook(RouterDecision, _decision_from)
_converter.register_unstructure_hook(RouterDecision, _decision_to)

_result_in = make_dict_structure_fn(
    RunResult,
    _converter,
    trace=override(rename="steps"),
    finished=override(rename="wall_ms", struct_hook=_ms_field),
    usage=override(struct_hook=lambda value, _: _usage_in(value, None) or StepUsage()),
    cache_hits=override(rename="cache.hits"),
    cache_misses=override(rename="cache.misses"),
    cache_saved_time=override(rename="cache.saved_ms", struct_hook=_ms_field),
    cache_exact_evictions=override(rename="cache.exact_evictions"),
    cache_semantic_evictions=override(rename="cache.semantic_evictions"),
)


def _result_from(value: object, _: object) -> RunResult:
    if not isinstance(value, dict):
        raise _FieldError(f"must be object, got {_kind(value)}")
    cache = value.get("cache", {})
    if not isinstance(cache, dict):
        raise _FieldError(f"field `cache` must be object, got {_kind(cache)}")
    spread = {f"cache.{key}": figure for key, figure in cache.items()}
    # A log never keeps values, and its times count from the run's start.
    return _result_in({**value, **spread, "outputs": {}, "values": {}, "started": 0.0}, RunResult)


def _result_to(result: RunResult) -> dict[str, Any]:
    run = _rebased(result)
    return {
        "flow": run.flow,
        "mode": run.mode.value,
        "route": run.route,
        "routes": [_converter.unstructure(taken, RouteTaken) for taken in run.routes],
        "wall_ms": ms(run.wall_time),
        "wasted_ms": ms(run.wasted_time),
        "sequential_ms": ms(run.sequential_time),
        "step_ms": ms(run.step_time),
        "critical_path": [entry.step for entry in run.critical_path],
        "cache": {
            "hits": run.cache_hits,
            "misses": run.cache_misses,
            "saved_ms": ms(run.cache_saved_time),
            "exact_evictions": run.cache_exact_evictions,
            "semantic_evictions": run.cache_semantic_evictions,
        },
        "usage": _converter.unstructure(run.usage, StepUsage),
        "wasted_cost": run.wasted_cost,
        "decisions": [_converter.unstructure(d, RouterDecision) for d in run.decisions],
        "predicted_values": [
            _converter.unstructure(g, PredictedValue) for g in run.predicted_values
        ],
        "steps": [_converter.unstructure(entry, TraceEntry) for entry in run.trace],
    }


_converter.register_structure_hook(RunResult, _result_from)
_converter.register_unstructure_hook(RunResult, _result_to)


def _first_problem(exc: BaseException, kind: type | None, path: str) -> tuple[str, str]:
    """The path (`steps[2].status`) and reason of the first thing wrong in `exc`."""
    if isinstance(exc, cattrs.ClassValidationError):
        attributes, others = exc.group_exceptions()
        if not attributes:
            return _first_problem(others[0], None, path)
        inner, attribute = attributes[0]
        key = _KEYS.get(exc.cl, {}).get(attribute.name, attribute.name)
        return _first_problem(inner, attribute.type, f"{path}.{key}".lstrip("."))
    if isinstance(exc, cattrs.IterableValidationError):
        items, rest = exc.group_exceptions()
        if not items:
            return _first_problem(rest[0], None, path)
        inner, item = items[0]
        index = item.index
        step = f"[{index}]" if isinstance(index, int) else f".{index}"
        return _first_problem(inner, item.type, f"{path}{step}")
    if isinstance(exc, KeyError):
        return path, "is missing"
    if isinstance(exc, _FieldError):
        return path, str(exc)
    return path, f"is not valid: {exc}"
