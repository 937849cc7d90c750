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
    cache           {hits, misses, saved_ms, exact_evictions, semantic_evictions}: the
                    evictions are the run's cache's, all runs counted, when it ended
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
import math
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import attrs
import trio

from ._errors import RunLogError
from ._schema import RunRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from .._trace import RunResult

__all__ = [
    "LogProblem",
    "LogReading",
    "RunLog",
    "inputs_digest",
    "iter_log",
    "log_line",
    "parse_line",
    "read_log",
]

_DIGEST_SIZE = 32
_REASON = 200


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
        time: When the run is logged, timezone-aware (stored in UTC); default now.

    Returns:
        The object, ready for `json.dumps`.

    Raises:
        ValueError: `record_inputs` without `inputs`, or a `time` without a timezone.
    """
    if record_inputs and inputs is None:
        raise ValueError("`record_inputs=True` needs `inputs`: pass the run's inputs too")
    if time is not None and time.utcoffset() is None:
        raise ValueError(
            f"`time` must be timezone-aware, got {time!r} (write datetime.now(datetime.UTC))"
        )
    record = RunRecord(
        result=result,
        id=run_id or uuid.uuid4().hex,
        # In UTC, as the schema says: logs sort and compare by moment.
        time=(_utc_now() if time is None else time.astimezone(datetime.UTC)).isoformat(),
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


def _not_json_number(text: str) -> float:
    # JSON has no NaN or Infinity; Python's reader accepts them unless told otherwise.
    raise ValueError(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large for a float")
    return value


def parse_line(text: str, number: int) -> RunRecord:
    """One log line as a run, whatever is wrong with it.

    Args:
        text: The line.
        number: Its 1-based number in the file.

    Returns:
        The run.

    Raises:
        RunLogError: The line cannot be read; the reason names what is wrong with it.
    """
    try:
        data = json.loads(text, parse_constant=_not_json_number, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise RunLogError(f"not JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise RunLogError("not readable: nested too deeply") from None
    except ValueError as exc:
        # Python's own limits: NaN/Infinity (above), an integer of thousands of digits.
        raise RunLogError(f"not readable JSON: {str(exc).split(';')[0]}") from None
    try:
        return RunRecord.from_json(data, line=number)
    except RunLogError:
        raise
    except RecursionError:
        raise RunLogError("not readable: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a line is untrusted text: any failure is its own
        raise RunLogError(f"not a run: {type(exc).__name__}: {exc}"[:300]) from None


def iter_log(path: str | Path, *, strict: bool = False) -> Iterator[RunRecord | LogProblem]:
    """Stream a run log: each line as a run, or as the problem that kept it from being read.

    A line is read, handed out and dropped, so a log of any size reads in the memory of one
    line (what `specroute report` does). A UTF-8 BOM at the start is skipped; blank lines are
    skipped; bytes that are not UTF-8 read as U+FFFD.

    Args:
        path: The log file.
        strict: Raise on the first damaged line instead of yielding it.

    Yields:
        A `RunRecord` per readable line and a `LogProblem` per damaged one, in file order.

    Raises:
        OSError: The file cannot be opened (or is a folder).
        RunLogError: With `strict`, the first damaged line (its number in the message).
    """
    path = Path(path)
    with path.open(encoding="utf-8-sig", errors="replace") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                yield parse_line(text, number)
            except RunLogError as exc:
                # A reason may quote the line; a problem stays one short line whatever it is.
                reason = exc.reason if len(exc.reason) <= _REASON else exc.reason[:_REASON] + "..."
                if strict:
                    raise RunLogError(reason, path=str(path), line=number) from None
                yield LogProblem(line=number, reason=reason)


def read_log(path: str | Path, *, strict: bool = False) -> LogReading:
    """Read a whole run log into memory (`iter_log` streams one instead).

    Blank lines are skipped. A damaged line (not JSON, nested too deep, a number JSON does
    not allow, an unknown schema version, a field missing or mistyped) becomes a
    `LogProblem` and reading goes on with the next line.

    Args:
        path: The log file.
        strict: Raise on the first damaged line instead of collecting it.

    Returns:
        The runs and the problems.

    Raises:
        OSError: The file cannot be opened.
        RunLogError: With `strict`, the first damaged line (its number in the message).
    """
    records: list[RunRecord] = []
    problems: list[LogProblem] = []
    for item in iter_log(path, strict=strict):
        if isinstance(item, LogProblem):
            problems.append(item)
        else:
            records.append(item)
    return LogReading(path=Path(path), records=tuple(records), problems=tuple(problems))


@attrs.define(eq=False)
class RunLog:
    """A JSON Lines run log that runs are appended to, one line each.

    `append` never touches the file: it encodes the line and queues it for a writer thread,
    which opens the file, writes what is queued and closes it again. So a run in a trio
    program never blocks its event loop on the disk, and never waits for the write either:
    under `trio.testing.MockClock(autojump_threshold=0)` a run that awaited a thread hop
    would let virtual time jump, while a run that only queues a line takes no time at all,
    so logged runs keep their exact virtual-time figures. The writer thread ends when the
    queue is empty, and the interpreter waits for it at exit, so no line is lost when a
    program ends without `flush`; several processes may append to one log, and a crash
    loses at most the lines still queued.

    `flush()` (or `await aflush()`, which waits in a worker thread) waits until every
    queued line is on disk and raises what went wrong writing them; leaving a `with` or
    `async with` block flushes too.

    Args:
        path: The log file; created (with its folder) by the first write.
        clock: Where `time` comes from (default: now, in UTC); for tests.
    """

    path: Path = attrs.field(converter=Path)
    clock: Callable[[], datetime.datetime] = attrs.field(default=_utc_now, kw_only=True)
    _lock: threading.Condition = attrs.field(init=False, factory=threading.Condition)
    _queued: list[bytes] = attrs.field(init=False, factory=list)
    _writing: bool = attrs.field(init=False, default=False)
    _error: OSError | None = attrs.field(init=False, default=None)

    def append(
        self,
        result: RunResult,
        *,
        inputs: Mapping[str, Any] | None = None,
        record_inputs: bool = False,
        label: str | None = None,
    ) -> str:
        """Queue one run for the log (see the class docstring: the write happens in a thread).

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
            OSError: An earlier write to the file failed (those lines were not written).
        """
        line = log_line(
            result, inputs=inputs, record_inputs=record_inputs, label=label, time=self.clock()
        )
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._raise_error()
            self._queued.append(text.encode() + b"\n")
            if not self._writing:
                self._writing = True
                # Not a daemon: the interpreter waits for it at exit, so queued lines land.
                threading.Thread(target=self._write, name=f"RunLog({self.path})").start()
        return str(line["id"])

    def flush(self) -> None:
        """Wait until every queued line is written.

        Raises:
            OSError: A write failed (the lines it held were not written).
        """
        with self._lock:
            while self._writing:
                self._lock.wait()
            self._raise_error()

    async def aflush(self) -> None:
        """`flush()` from trio, waiting in a worker thread rather than on the event loop.

        Raises:
            OSError: A write failed (the lines it held were not written).
        """
        await trio.to_thread.run_sync(self.flush)

    def read(self, *, strict: bool = False) -> LogReading:
        """`flush()`, then `read_log(self.path, strict=strict)`."""
        self.flush()
        return read_log(self.path, strict=strict)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aflush()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _write(self) -> None:
        while True:
            with self._lock:
                batch, self._queued = self._queued, []
                if not batch:
                    self._writing = False
                    self._lock.notify_all()
                    return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as out:
                    for data in batch:
                        out.write(data)
                        # One line per write, so processes appending together interleave
                        # whole lines.
                        out.flush()
            except OSError as exc:
                with self._lock:
                    self._error = exc
