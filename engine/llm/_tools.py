"""Tools a model may call, and the bounded loop that runs them.

`run_tool_loop(client, prompt, tools=[...], model=...)` calls the model; while it answers
with tool calls, runs them (a round's calls at once, each in its own task), sends their
results back, and calls again, for at most `max_rounds` model calls. Each execution is a
`ToolRecord` with its own start and end; inside a run it appears in the step's
`TraceEntry.tools`, because the run observes tools (`observe_tools`) as it meters calls.

Failures a model can fix go back to it as the tool's (error) result: a tool that raised
(unless `on_tool_error="raise"`), arguments that are not JSON or do not fit the tool's
schema, an unknown tool name. Misuse is refused: an effect tool (`effect=True`) may only be
offered from a step whose effects are allowed (an `effect=True` step, which never runs in a
losing branch), so a speculative branch never sends the email.

Cancellation (the step's branch lost, the run stopped) cancels the model call, which closes
its stream and is billed for what arrived, or the tools running, recorded as `cancelled`.

With `output=`, the final answer must also fit a schema, checked and retried as `structured`
does (`_structured.Expected`).
"""

from __future__ import annotations

import contextvars
import json
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs
import trio

from ._client import DEFAULT_MAX_TOKENS
from ._errors import LLMConfigError, LLMError
from ._jsonschema import validate_json
from ._messages import Message, ToolCall, as_messages
from ._meter import active_meters
from ._structured import DEFAULT_STRUCTURED_RETRIES, Expected
from ._toolspec import OutputSchema, Tool

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._client import Completion, LLMClient
    from ._messages import MessageLike
    from ._meter import UsageMeter

__all__ = [
    "DEFAULT_MAX_TOOL_ROUNDS",
    "ToolEffectError",
    "ToolFailedError",
    "ToolLoopError",
    "ToolLoopResult",
    "ToolObserver",
    "ToolRecord",
    "ToolRoundsExceededError",
    "observe_tools",
    "run_tool_loop",
]

#: The most model calls one `run_tool_loop` makes.
DEFAULT_MAX_TOOL_ROUNDS = 8

_OBSERVERS: contextvars.ContextVar[tuple[ToolObserver, ...]] = contextvars.ContextVar(
    "specroute_llm_tool_observers", default=()
)


class ToolLoopError(LLMError):
    """Root of the errors `run_tool_loop` raises itself (the model call's own errors are
    the client's)."""


class ToolRoundsExceededError(ToolLoopError):
    """The model gave no final answer in `max_rounds` model calls (it still called tools,
    or, with `output=`, its answers did not fit and `retries` were not yet spent).

    Attributes:
        records: Every tool execution of the loop.
    """

    def __init__(self, message: str, *, records: tuple[ToolRecord, ...]) -> None:
        super().__init__(message)
        self.records = records


class ToolFailedError(ToolLoopError):
    """A tool raised, and the loop was told to raise (`on_tool_error="raise"`).

    `__cause__` is the tool's exception. With the default `"report"`, the failure goes
    back to the model as the tool's result instead, and the loop goes on.

    Attributes:
        tool: The tool's name.
        record: Its execution.
    """

    def __init__(self, message: str, *, tool: str, record: ToolRecord) -> None:
        super().__init__(message)
        self.tool = tool
        self.record = record


class ToolEffectError(ToolLoopError):
    """An effect tool was offered where effects are not allowed: inside a run, from a step
    that is not `effect=True`, which may run in a branch that loses.

    Raised before the model is called. Differs from `ToolFailedError`: no tool ran.
    """


@attrs.frozen(kw_only=True)
class ToolRecord:
    """One tool execution, as a step's trace shows it. Times are `trio.current_time()`.

    Attributes:
        tool: The tool's name.
        call_id: The model's id for the call.
        start: When the tool started.
        end: When it returned, raised or was cancelled.
        status: `"ok"`, `"failed"` (it raised, or its call was refused), or `"cancelled"`.
        effect: The tool has side effects.
        error: `"ErrorClass: message"` for a failed execution.
    """

    tool: str
    call_id: str
    start: float
    end: float
    status: Literal["ok", "failed", "cancelled"]
    effect: bool = False
    error: str | None = None

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start


@runtime_checkable
class ToolObserver(Protocol):
    """What observes tool executions (a run does, to put them in its trace).

    Made active with `observe_tools`; a meter made active with `record_usage` that is also
    a `ToolObserver` (has both methods) observes them too, so a run sets one context
    variable, not two.
    """

    def tool_finished(self, record: ToolRecord) -> None:
        """Take one finished tool execution (called in the task that runs the loop)."""
        ...

    def effects_allowed(self) -> bool:
        """Whether the calling task may run effect tools now."""
        ...


def _observers() -> tuple[ToolObserver, ...]:
    """The active observers: `observe_tools`' and the active meters that observe tools."""
    meters = [meter for meter in active_meters() if isinstance(meter, ToolObserver)]
    return (*_OBSERVERS.get(), *meters)


class observe_tools:  # lower case: used like the function it was
    """Tell `observer` of every tool execution inside the block (and in tasks started in it).

    Args:
        observer: The observer; blocks nest, and every active observer is told.

    `with` gives `observer`.
    """

    # A class, not a generator: every run enters one (see `record_usage`).
    __slots__ = ("_observer", "_token")

    def __init__(self, observer: ToolObserver) -> None:
        self._observer = observer
        self._token: contextvars.Token[tuple[ToolObserver, ...]] | None = None

    def __enter__(self) -> ToolObserver:
        self._token = _OBSERVERS.set((*_OBSERVERS.get(), self._observer))
        return self._observer

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _OBSERVERS.reset(self._token)


@attrs.frozen(kw_only=True)
class ToolLoopResult:
    """What a tool loop ended with.

    Attributes:
        completion: The model's final answer (it called no more tools).
        completions: Every model call, in order (billed and metered like any).
        records: Every tool execution, in the order they finished.
        messages: The whole conversation, the final answer included: continue it with
            another call.
        value: With `output=`, the final answer: an instance of the class, or the parsed
            JSON of an `OutputSchema` (`None` without `output=`).
    """

    completion: Completion
    completions: tuple[Completion, ...]
    records: tuple[ToolRecord, ...]
    messages: tuple[Message, ...]
    value: Any = None

    @property
    def text(self) -> str:
        """The final answer's text."""
        return self.completion.text


async def run_tool_loop(
    client: LLMClient,
    messages: str | Sequence[MessageLike],
    *,
    tools: Sequence[Tool],
    model: str,
    max_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    on_tool_error: Literal["report", "raise"] = "report",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    stream: bool | None = None,
    temperature: float | None = None,
    meter: UsageMeter | None = None,
    output: type[Any] | OutputSchema | None = None,
    retries: int = DEFAULT_STRUCTURED_RETRIES,
) -> ToolLoopResult:
    """Call `model` with `tools`; run the calls it makes and send the results back, until it
    answers without calling a tool or `max_rounds` calls have been made.

    Args:
        client: The client to call through.
        messages: The prompt (as `LLMClient.complete` takes it).
        tools: The tools offered (names must differ).
        model: The model name.
        max_rounds: The most model calls (>= 1).
        on_tool_error: `"report"`: a tool that raises has its error sent to the model as
            its result; `"raise"`: the loop raises `ToolFailedError`.
        max_tokens: The most tokens each call may generate.
        stream: Stream each call (see `LLMClient.complete`).
        temperature: Sampling temperature.
        meter: One more meter to record every model call in.
        output: The final answer must fit this (an attrs class or an `OutputSchema`, as
            `structured` takes it); `ToolLoopResult.value` holds it. A misfit is asked for
            again, at most `retries` times, within `max_rounds`.
        retries: How many misfit final answers are asked for again (with `output`).

    Returns:
        The final answer, every call and every tool execution.

    Raises:
        ToolRoundsExceededError: The model still called tools at the last round.
        ToolFailedError: A tool raised, with `on_tool_error="raise"`.
        ToolEffectError: An effect tool is offered where effects are not allowed.
        StructuredOutputError: With `output`, the final answer still did not fit.
        LLMConfigError: An argument is invalid (two tools of one name, `max_rounds` < 1).
        LLMError: A model call failed (see `LLMClient.complete`).
    """
    by_name = _check_loop(tools, max_rounds, on_tool_error)
    expected = None if output is None else Expected.of(output, retries)
    if expected is not None and expected.schema.name in by_name:
        raise LLMConfigError(
            f"the output schema and a tool are both named {expected.schema.name!r}; rename one"
        )
    specs = tuple(t.spec for t in tools)
    conversation = list(as_messages(messages))
    completions: list[Completion] = []
    records: list[ToolRecord] = []
    for _ in range(max_rounds):
        completion = await client.complete(
            conversation,
            model=model,
            max_tokens=max_tokens,
            stream=stream,
            temperature=temperature,
            meter=meter,
            tools=specs,
            output=None if expected is None else expected.schema,
        )
        completions.append(completion)
        calls = completion.tool_calls
        value: Any = None
        if expected is not None and expected.is_answer(completion):
            value, feedback = expected.check(completion, completions)
            if feedback is not None:
                conversation += feedback
                continue
        elif calls:
            turn = Message(role="assistant", content=completion.text, tool_calls=calls)
            conversation.append(turn)
            conversation += await _run_round(calls, by_name, records, on_tool_error)
            continue
        turn = Message(role="assistant", content=completion.text, tool_calls=calls)
        return ToolLoopResult(
            completion=completion,
            completions=tuple(completions),
            records=tuple(records),
            messages=(*conversation, turn),
            value=value,
        )
    raise ToolRoundsExceededError(
        f"the model gave no final answer in {max_rounds} model call(s) (last called:"
        f" {', '.join(c.name for c in completions[-1].tool_calls) or 'no tool'}); raise"
        " `max_rounds=` or tell the model in the prompt when to stop",
        records=tuple(records),
    )


def _check_loop(tools: Sequence[Tool], max_rounds: int, on_tool_error: str) -> dict[str, Tool]:
    if not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < 1:
        raise LLMConfigError(f"`max_rounds` must be an int >= 1, got {max_rounds!r}")
    if on_tool_error not in ("report", "raise"):
        raise LLMConfigError(f"`on_tool_error` must be 'report' or 'raise', got {on_tool_error!r}")
    by_name: dict[str, Tool] = {}
    for item in tools:
        if not isinstance(item, Tool):
            raise LLMConfigError(f"`tools` must hold `Tool`s (see `@tool`), got {item!r}")
        if item.name in by_name:
            raise LLMConfigError(f"two tools are named {item.name!r}; tool names must differ")
        by_name[item.name] = item
    effects = [t.name for t in tools if t.effect]
    if effects and not all(o.effects_allowed() for o in _observers()):
        raise ToolEffectError(
            f"effect tool(s) {', '.join(map(repr, effects))} offered from a step that may run in"
            " a branch that loses; offer them from a step with `effect=True`, which runs only"
            " once its branch is confirmed"
        )
    return by_name


async def _run_round(
    calls: Sequence[ToolCall],
    by_name: dict[str, Tool],
    records: list[ToolRecord],
    on_tool_error: str,
) -> list[Message]:
    """Run one round's calls at once; return their results in the calls' order. Records are
    reported from this task (the step's), even when the round is cancelled."""
    results: dict[str, Message] = {}
    done: list[tuple[ToolRecord, BaseException | None]] = []
    try:
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(_execute, call, by_name.get(call.name), by_name, results, done)
    finally:
        for record, _ in done:
            records.append(record)
            for observer in _observers():
                observer.tool_finished(record)
    if on_tool_error == "raise":
        for record, error in done:
            if error is not None:
                raise ToolFailedError(
                    f"tool {record.tool!r} raised {record.error}; fix the tool, or let the model"
                    " see the error with `on_tool_error='report'`",
                    tool=record.tool,
                    record=record,
                ) from error
    return [results[call.id] for call in calls]


async def _execute(
    call: ToolCall,
    chosen: Tool | None,
    by_name: dict[str, Tool],
    results: dict[str, Message],
    done: list[tuple[ToolRecord, BaseException | None]],
) -> None:
    start = trio.current_time()
    status: Literal["ok", "failed", "cancelled"] = "cancelled"
    error: Exception | None = None
    described: str | None = None
    try:
        refusal = _refusal(call, chosen, by_name)
        if refusal is not None:
            status, described = "failed", refusal.removeprefix("Error: ")
            results[call.id] = Message.tool_result(call, refusal, is_error=True)
            return
        assert chosen is not None  # no refusal: the tool exists
        try:
            text = _as_text(await chosen.fn(**call.arguments()))
        except Exception as exc:  # noqa: BLE001 -- a tool's failure is reported or raised by the loop
            status, error, described = "failed", exc, f"{type(exc).__name__}: {exc}"
            results[call.id] = Message.tool_result(call, f"Error: {described}", is_error=True)
        else:
            status = "ok"
            results[call.id] = Message.tool_result(call, text)
    finally:
        effect = chosen is not None and chosen.effect
        record = ToolRecord(
            tool=call.name,
            call_id=call.id,
            start=start,
            end=trio.current_time(),
            status=status,
            effect=effect,
            error=described,
        )
        done.append((record, error))


def _refusal(call: ToolCall, chosen: Tool | None, by_name: dict[str, Tool]) -> str | None:
    """Why a call cannot run, as the model is told, or `None` if it can."""
    if chosen is None:
        return f"Error: there is no tool named {call.name!r}; the tools are {sorted(by_name)}."
    try:
        arguments = call.arguments()
    except ValueError as exc:
        return f"Error: the arguments are not JSON ({exc}); call the tool again with JSON."
    violations = validate_json(arguments, chosen.spec.parameters)
    if violations:
        listed = "; ".join(str(v) for v in violations[:5])
        return f"Error: the arguments do not fit the tool's schema: {listed}."
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return attrs.asdict(value)
    raise TypeError(f"a tool returned {type(value).__name__}, which is not JSON; return a str")
