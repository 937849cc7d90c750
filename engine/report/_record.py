"""A run as read back from a run log: `RunRecord`, its steps, routes and router decisions.

`parse_record` turns one decoded log line into a `RunRecord`, checking each field's type,
so the reports never meet a half-formed run. Unknown fields are ignored: a newer writer may
add fields without a new schema version; removing or retyping one needs a new version.
"""

from __future__ import annotations

from typing import Any

import attrs
from specroute.routes import PlanReason

from .._trace import StepStatus
from .._usage import StepUsage
from ._errors import RunLogError

__all__ = [
    "SCHEMA_VERSION",
    "DecisionRecord",
    "RouteRecord",
    "RunRecord",
    "StepRecord",
    "parse_record",
]

SCHEMA_VERSION = 1
_USAGE_FIELDS = {field.name: field.type for field in attrs.fields(StepUsage)}


@attrs.frozen(kw_only=True)
class StepRecord:
    """One step execution of a logged run. Times are ms from the run's start.

    Attributes:
        name: The step's name.
        branch: Its branch path (`""` at the top, `"router:label"` inside a branch).
        start_ms: When it started.
        end_ms: When it ended.
        status: How it ended.
        speculative: It started before its branch was confirmed.
        wasted: It ran, but its branch lost.
        error: `repr` of the exception for failed steps.
        similarity: The cosine similarity of a semantic cache hit.
        usage: Its LLM calls, or None if it made none.
    """

    name: str
    branch: str
    start_ms: float
    end_ms: float
    status: StepStatus
    speculative: bool
    wasted: bool
    error: str | None = None
    similarity: float | None = None
    usage: StepUsage | None = None

    @property
    def duration_ms(self) -> float:
        """Milliseconds from start to end."""
        return self.end_ms - self.start_ms

    @property
    def cost(self) -> float:
        """Dollars its LLM calls cost (0 without calls)."""
        return 0.0 if self.usage is None else self.usage.cost


@attrs.frozen(kw_only=True)
class RouteRecord:
    """A routing decision on the winning path of a logged run.

    Attributes:
        router: The router step's name.
        branch: The branch path the router ran in.
        label: The label it returned.
        at_ms: When it returned, in ms from the run's start.
    """

    router: str
    branch: str
    label: str
    at_ms: float


@attrs.frozen(kw_only=True)
class DecisionRecord:
    """What one router execution of a logged run predicted, speculated and said.

    Attributes:
        router: The router step's name.
        branch: The branch path the router ran in.
        label: The label it returned (None: it was cancelled before it answered).
        at_ms: When it returned, in ms from the run's start (None with `label`).
        predicted: The likeliest predicted label (None: no prediction, or an empty one).
        probabilities: Label -> predicted probability (None: nothing was predicted).
        source: Who predicted it (`"statistics"`, `"cache"`, `"model"`, ...).
        right: Whether `predicted` is `label` (None: either is missing).
        plan: Label -> step limit of each branch started speculatively (None: whole).
        reasons: Label -> the policy's numbers behind that choice (predictive policies).
        cache: `"exact"` or `"semantic"` when the route was served from the cache,
            `"semantic (verified)"` when a near match only predicted it, else None.
        similarity: The near match's similarity, in verify mode.
        wasted: The router ran inside a branch that lost.
        note: Why there was no prediction, when a writer records it.
    """

    router: str
    branch: str
    label: str | None = None
    at_ms: float | None = None
    predicted: str | None = None
    probabilities: dict[str, float] | None = None
    source: str | None = None
    right: bool | None = None
    plan: dict[str, int | None] = attrs.field(factory=dict)
    reasons: dict[str, PlanReason] = attrs.field(factory=dict)
    cache: str | None = None
    similarity: float | None = None
    wasted: bool = False
    note: str = ""

    def branch_path(self, label: str) -> str:
        """The branch path of this router's branch `label` (where its steps run)."""
        prefix = f"{self.branch}/" if self.branch else ""
        return f"{prefix}{self.router}:{label}"


@attrs.frozen(kw_only=True)
class RunRecord:
    """One logged run: a line of a run log, checked against the schema.

    Attributes:
        schema: The schema version of the line.
        id: The run's id (a uuid4 hex string).
        time: When the run was logged, ISO 8601 in UTC.
        flow: The flow's name.
        mode: The engine mode (`sequential`, `parallel`, `speculative`).
        label: What the caller called this configuration (e.g. `parallel-start`); the
            mode unless one was given.
        route: The label of the first top-level router, or None.
        routes: Every routing decision on the winning path.
        wall_ms: Wall time of the run.
        sequential_ms: The counterfactual: the useful steps' durations added up, i.e. the
            wall time of the same work one step at a time.
        wasted_ms: Step time spent in branches that lost.
        step_ms: Step time over every execution.
        critical_path: Names of the steps that set the wall time.
        cache_hits: Steps served from the cache.
        cache_misses: Cached steps that had to be computed.
        cache_saved_ms: What the cache hits took when they were computed.
        usage: The run's LLM calls added up.
        wasted_cost: Dollars spent by steps whose branch lost.
        steps: Every step execution.
        decisions: Every router execution, in the order they started (empty in lines
            written before decisions were logged).
        inputs_digest: blake2b of the canonical JSON of the inputs, or None.
        inputs: The raw inputs, only when the caller asked to record them.
        line: The line of the log it was read from (None if not read from a file).
    """

    schema: int
    id: str
    time: str
    flow: str
    mode: str
    label: str
    route: str | None
    routes: tuple[RouteRecord, ...]
    wall_ms: float
    sequential_ms: float
    wasted_ms: float
    step_ms: float
    critical_path: tuple[str, ...]
    cache_hits: int
    cache_misses: int
    cache_saved_ms: float
    usage: StepUsage
    wasted_cost: float
    steps: tuple[StepRecord, ...]
    decisions: tuple[DecisionRecord, ...] = ()
    inputs_digest: str | None = None
    inputs: dict[str, Any] | None = None
    line: int | None = None

    @property
    def saved_ms(self) -> float:
        """Wall time saved against the sequential baseline (negative if slower)."""
        return self.sequential_ms - self.wall_ms

    @property
    def cost(self) -> float:
        """Dollars the run's LLM calls cost."""
        return self.usage.cost


class _Fields:
    """Typed access to a JSON object's fields; errors name the field and its path."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise RunLogError(f"{where or 'the record'} must be a JSON object, got {data!r:.60}")
        self.data: dict[str, Any] = data
        self.where = where

    def _get(self, key: str, kinds: tuple[type, ...], *, optional: bool = False) -> Any:
        name = f"{self.where}.{key}" if self.where else key
        if key not in self.data:
            if optional:
                return None
            raise RunLogError(f"field `{name}` is missing")
        value = self.data[key]
        if value is None and optional:
            return None
        # bool is an int in Python; a count or a time given as true/false is still wrong.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            kind = " or ".join(k.__name__ for k in kinds)
            raise RunLogError(f"field `{name}` must be {kind}, got {value!r:.60}")
        return value

    def text(self, key: str) -> str:
        return str(self._get(key, (str,)))

    def maybe_text(self, key: str) -> str | None:
        value = self._get(key, (str,), optional=True)
        return None if value is None else str(value)

    def number(self, key: str) -> float:
        return float(self._get(key, (int, float)))

    def maybe_number(self, key: str) -> float | None:
        value = self._get(key, (int, float), optional=True)
        return None if value is None else float(value)

    def integer(self, key: str) -> int:
        return int(self._get(key, (int,)))

    def maybe_integer(self, key: str) -> int | None:
        value = self._get(key, (int,), optional=True)
        return None if value is None else int(value)

    def flag(self, key: str) -> bool:
        return bool(self._get(key, (bool,)))

    def maybe_flag(self, key: str) -> bool | None:
        value = self._get(key, (bool,), optional=True)
        return None if value is None else bool(value)

    def items(self, key: str) -> list[Any]:
        return list(self._get(key, (list,)))

    def maybe_items(self, key: str) -> list[Any]:
        return list(self._get(key, (list,), optional=True) or [])

    def nested(self, key: str, *, optional: bool = False) -> _Fields | None:
        value = self._get(key, (dict,), optional=optional)
        return None if value is None else _Fields(value, f"{self.where}.{key}".lstrip("."))


def _usage(fields: _Fields | None) -> StepUsage | None:
    if fields is None:
        return None
    values: dict[str, Any] = {}
    for name, kind in _USAGE_FIELDS.items():
        if name in fields.data:
            values[name] = fields.number(name) if kind in (float, "float") else fields.integer(name)
    return StepUsage(**values)


def _step(data: object, index: int) -> StepRecord:
    fields = _Fields(data, f"steps[{index}]")
    status = fields.text("status")
    try:
        parsed = StepStatus(status)
    except ValueError:
        known = ", ".join(s.value for s in StepStatus)
        raise RunLogError(
            f"field `steps[{index}].status` must be one of {known}, got {status!r}"
        ) from None
    return StepRecord(
        name=fields.text("name"),
        branch=fields.text("branch"),
        start_ms=fields.number("start_ms"),
        end_ms=fields.number("end_ms"),
        status=parsed,
        speculative=fields.flag("speculative"),
        wasted=fields.flag("wasted"),
        error=fields.maybe_text("error"),
        similarity=fields.maybe_number("similarity"),
        usage=_usage(fields.nested("usage", optional=True)),
    )


def _route(data: object, index: int) -> RouteRecord:
    fields = _Fields(data, f"routes[{index}]")
    return RouteRecord(
        router=fields.text("router"),
        branch=fields.text("branch"),
        label=fields.text("label"),
        at_ms=fields.number("at_ms"),
    )


def _reason(fields: _Fields) -> PlanReason:
    return PlanReason(
        probability=fields.number("probability"),
        steps=fields.integer("steps"),
        saving=fields.number("saving"),
        waste=fields.number("waste"),
        note=fields.maybe_text("note") or "",
    )


def _decision(data: object, index: int) -> DecisionRecord:
    fields = _Fields(data, f"decisions[{index}]")
    probabilities = fields.nested("probabilities", optional=True)
    plan = fields.nested("plan", optional=True)
    reasons = fields.nested("reasons", optional=True)
    return DecisionRecord(
        router=fields.text("router"),
        branch=fields.text("branch"),
        label=fields.maybe_text("label"),
        at_ms=fields.maybe_number("at_ms"),
        predicted=fields.maybe_text("predicted"),
        probabilities=None
        if probabilities is None
        else {label: probabilities.number(label) for label in probabilities.data},
        source=fields.maybe_text("source"),
        right=fields.maybe_flag("right"),
        plan={} if plan is None else {label: plan.maybe_integer(label) for label in plan.data},
        reasons={}
        if reasons is None
        else {label: _reason(_nested(reasons, label)) for label in reasons.data},
        cache=fields.maybe_text("cache"),
        similarity=fields.maybe_number("similarity"),
        wasted=bool(fields.maybe_flag("wasted")),
        note=fields.maybe_text("note") or "",
    )


def _nested(fields: _Fields, key: str) -> _Fields:
    found = fields.nested(key)
    assert found is not None
    return found


def parse_record(data: object, *, line: int | None = None) -> RunRecord:
    """Check one decoded log line against the schema and build its `RunRecord`.

    Args:
        data: The line, decoded from JSON.
        line: Its line number, kept in the record.

    Returns:
        The record.

    Raises:
        RunLogError: Not an object, another schema version, or a field missing or of the
            wrong type; the message names the field.
    """
    fields = _Fields(data, "")
    version = fields.data.get("schema")
    if version != SCHEMA_VERSION:
        if version is None:
            raise RunLogError(
                "no `schema` field: not a specroute run log line (or written before "
                f"schema {SCHEMA_VERSION}); this reader reads schema {SCHEMA_VERSION}"
            )
        raise RunLogError(
            f"schema version {version!r} is not supported; this reader reads schema "
            f"{SCHEMA_VERSION} (upgrade specroute to read newer logs)"
        )
    cache = fields.nested("cache")
    assert cache is not None
    usage = _usage(fields.nested("usage", optional=True)) or StepUsage()
    inputs = fields.nested("inputs", optional=True)
    mode = fields.text("mode")
    return RunRecord(
        schema=SCHEMA_VERSION,
        id=fields.text("id"),
        time=fields.text("time"),
        flow=fields.text("flow"),
        mode=mode,
        label=fields.maybe_text("label") or mode,
        route=fields.maybe_text("route"),
        routes=tuple(_route(item, i) for i, item in enumerate(fields.items("routes"))),
        wall_ms=fields.number("wall_ms"),
        sequential_ms=fields.number("sequential_ms"),
        wasted_ms=fields.number("wasted_ms"),
        step_ms=fields.number("step_ms"),
        critical_path=tuple(str(name) for name in fields.items("critical_path")),
        cache_hits=cache.integer("hits"),
        cache_misses=cache.integer("misses"),
        cache_saved_ms=cache.number("saved_ms"),
        usage=usage,
        wasted_cost=fields.number("wasted_cost"),
        steps=tuple(_step(item, i) for i, item in enumerate(fields.items("steps"))),
        decisions=tuple(
            _decision(item, i) for i, item in enumerate(fields.maybe_items("decisions"))
        ),
        inputs_digest=fields.maybe_text("inputs_digest"),
        inputs=None if inputs is None else dict(inputs.data),
        line=line,
    )
