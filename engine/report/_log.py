"""The run log: one JSON line per run, appended as runs finish, read back by the reports.

Schema version 2 (schema 1 lines still read). Each line is one `RunRecord` as JSON: the log's
own fields, then the run (`run_to_json(result)`, see `_schema.py`). Times are milliseconds
from the run's start, to the microsecond::

    schema          2 (1 in lines written before steps carried `waited_on`)
    id              the run's id, a uuid4 hex string (32 characters)
    time            when it was logged, ISO 8601 in UTC ("2025-01-08T10:00:00.000000+00:00")
    label           the caller's name for the configuration ("parallel-start"); else the mode
    inputs_digest   blake2b (32 bytes, hex) of the inputs as canonical JSON, or null
    inputs          the inputs themselves: only with record_inputs=True, else absent
    flow            the flow's name
    mode            "sequential" | "parallel" | "speculative"
    route           the first top-level router's label, or null (derived)
    routes          [{router, branch, label, at_ms}] every decision on the winning path
    wall_ms         the run's wall time
    sequential_ms   the counterfactual baseline: durations of the useful steps added up
                    (the wall time of the same work one step at a time; derived)
    wasted_ms       step time in branches that lost (derived)
    step_ms         step time over every execution (derived)
    critical_path   [step name] the chain that set the wall time (derived)
    cache           {hits, misses, saved_ms}
    usage           {calls, cancelled_calls, input_tokens, output_tokens, cost,
                     unpriced_calls, hedges_started, hedges_won, hedge_saved_ms,
                     hedge_cost, failed_over} the run's LLM calls (cost in dollars; the
                     hedge and failover figures are optional, read as 0 when absent)
    wasted_cost     dollars spent by steps whose branch lost (derived)
    steps           [{name, branch, start_ms, end_ms, status, speculative, wasted, error,
                      similarity, usage, waited_on, first_item_ms, items}] every step
                    execution, usage as above or null; waited_on (schema 2) lists the
                    indices, into `steps`, of the executions it waited on (absent in
                    schema 1: read as none); first_item_ms and items (schema 3) a streamed
                    step's first item and item count
    decisions       optional (absent in older lines, read as none):
                    [{router, branch, label, at_ms, predicted, probabilities, source,
                      note, right, plan, reasons, cache, similarity, wasted}] every router
                    execution in the order they started: what was predicted ({label:
                    probability} by `source`, or null; `note` says why not), which
                    branches were started speculatively ({label: step limit or null for
                    the whole branch}), why ({label: {probability, steps, saving, waste,
                    note}}), the label returned (null if cancelled first) and whether the
                    likeliest prediction was `right` (`predicted` and `right` derived);
                    `cache` is null, "exact", "semantic" (a near match served as the
                    route) or "semantic (verified)" (a near match that only predicted it,
                    with its `similarity`)

Derived fields are written for people and tools reading the file; a reader recomputes them
from the run. A reader ignores fields it does not know, so a field may be added without a
new version; removing or retyping one makes a new version. `read_log` reads every line it
can and reports each one it cannot (not JSON, an unknown version, a missing field) with its
line number.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import RunLogError
from ._schema import RunRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._trace import RunResult

__all__ = ["LogProblem", "LogReading", "RunLog", "inputs_digest", "log_line", "read_log"]

_DIGEST_SIZE = 32


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _canonical(value: object) -> object:
    # JSON has no sets or bytes; anything else unencodable is named by its repr, which is
    # stable for the plain data a flow's inputs usually are.
    if isinstance(value, set | frozenset):
        return sorted(_canonical_text(item) for item in value)
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if attrs.has(type(value)):
        return attrs.asdict(value)  # type: ignore[arg-type]
    return repr(value)


def _canonical_text(value: object) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical
    )


def inputs_digest(inputs: Mapping[str, Any]) -> str:
    """The digest a run log keeps instead of a run's inputs.

    Args:
        inputs: The run's inputs.

    Returns:
        Hex blake2b (32 bytes) of the inputs as canonical JSON: keys sorted, no spaces,
        UTF-8; sets sorted, bytes as hex, other non-JSON values by `repr`.
    """
    text = _canonical_text(dict(inputs))
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST_SIZE).hexdigest()


def log_line(
    result: RunResult,
    *,
    inputs: Mapping[str, Any] | None = None,
    record_inputs: bool = False,
    label: str | None = None,
    run_id: str | None = None,
    time: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The run-log object for `result` (the current schema; see this module's docstring).

    Args:
        result: The run.
        inputs: Its inputs; only their digest is kept unless `record_inputs` is set.
        record_inputs: Keep the raw inputs too (they may hold user data).
        label: A name for the configuration (e.g. `"parallel-start"`); default the mode.
        run_id: The run's id; default a new uuid4.
        time: When the run is logged; default now, in UTC.

    Returns:
        The object, ready for `json.dumps`.

    Raises:
        ValueError: `record_inputs` without `inputs`.
    """
    if record_inputs and inputs is None:
        raise ValueError("`record_inputs=True` needs `inputs`: pass the run's inputs too")
    record = RunRecord(
        result=result,
        id=run_id or uuid.uuid4().hex,
        time=(time or _utc_now()).isoformat(),
        label=label or result.mode.value,
        inputs_digest=None if inputs is None else inputs_digest(inputs),
        inputs=json.loads(_canonical_text(dict(inputs)))
        if record_inputs and inputs is not None
        else None,
    )
    return record.to_json()


@attrs.frozen(kw_only=True)
class LogProblem:
    """A line `read_log` could not read.

    Attributes:
        line: Its 1-based line number.
        reason: What is wrong with it.
    """

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@attrs.frozen(kw_only=True)
class LogReading:
    """What `read_log` found: the runs it could read and the lines it could not.

    Attributes:
        path: The log file.
        records: The runs, in file order.
        problems: The unreadable lines, in file order.
    """

    path: Path
    records: tuple[RunRecord, ...]
    problems: tuple[LogProblem, ...]


def read_log(path: str | Path, *, strict: bool = False) -> LogReading:
    """Read a run log.

    Blank lines are skipped. A damaged line (not JSON, an unknown schema version, a field
    missing or mistyped) becomes a `LogProblem` and reading goes on with the next line.

    Args:
        path: The log file.
        strict: Raise on the first damaged line instead of collecting it.

    Returns:
        The runs and the problems.

    Raises:
        OSError: The file cannot be opened.
        RunLogError: With `strict`, the first damaged line (its number in the message).
    """
    path = Path(path)
    records: list[RunRecord] = []
    problems: list[LogProblem] = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise RunLogError(f"not JSON ({exc.msg} at column {exc.colno})") from None
                records.append(RunRecord.from_json(data, line=number))
            except RunLogError as exc:
                if strict:
                    raise RunLogError(exc.reason, path=str(path), line=number) from None
                problems.append(LogProblem(line=number, reason=exc.reason))
    return LogReading(path=path, records=tuple(records), problems=tuple(problems))


@attrs.define(eq=False)
class RunLog:
    """A JSON Lines run log that runs are appended to, one line each.

    Each `append` opens the file, writes one line and closes it, so several processes may
    append to one log and a crash loses at most the line being written.

    Args:
        path: The log file; created (with its folder) on the first append.
        clock: Where `time` comes from (default: now, in UTC); for tests.
    """

    path: Path = attrs.field(converter=Path)
    clock: Callable[[], datetime.datetime] = attrs.field(default=_utc_now, kw_only=True)

    def append(
        self,
        result: RunResult,
        *,
        inputs: Mapping[str, Any] | None = None,
        record_inputs: bool = False,
        label: str | None = None,
    ) -> str:
        """Append one run.

        Args:
            result: The run.
            inputs: Its inputs: only their digest is written unless `record_inputs`.
            record_inputs: Write the raw inputs too (they may hold user data).
            label: A name for the configuration (e.g. `"parallel-start"`); default the
                mode.

        Returns:
            The run's id in the log.

        Raises:
            ValueError: `record_inputs` without `inputs`.
            OSError: The file cannot be written.
        """
        line = log_line(
            result, inputs=inputs, record_inputs=record_inputs, label=label, time=self.clock()
        )
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
        return str(line["id"])

    def read(self, *, strict: bool = False) -> LogReading:
        """`read_log(self.path, strict=strict)`."""
        return read_log(self.path, strict=strict)
