"""Structured output: ask for an answer that fits a JSON schema, validate it, retry if not.

`structured(client, prompt, output=Invoice, model=...)` asks in the provider's own way (an
OpenAI `response_format` of type `json_schema`; on Anthropic, a tool the model must call
with the answer as its input), parses the answer and validates it against the schema here,
whatever the provider promised. An answer that does not fit is sent back with what is wrong
(each field's path and rule) and asked for again, at most `retries` times; then one
`StructuredOutputError` names the schema and the fields. Every call, retries included, is
billed like any other, so a run attributes them to the step that made them.

A streamed call (`stream=True`) is parsed when its last event has arrived, so the value
appears the moment the answer is complete, and cancelling it stops the generation at once.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import attrs

from ._client import DEFAULT_MAX_TOKENS
from ._errors import LLMConfigError, LLMError
from ._jsonschema import SchemaViolation, build, schema_of, validate_json
from ._messages import Message, as_messages
from ._toolspec import OutputSchema
from ._usage import Usage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._client import Completion, LLMClient
    from ._messages import MessageLike
    from ._meter import UsageMeter

__all__ = [
    "DEFAULT_STRUCTURED_RETRIES",
    "Expected",
    "Structured",
    "StructuredOutputError",
    "output_schema",
    "structured",
]

T = TypeVar("T")

#: How many times an answer that does not fit is asked for again (so at most 3 calls).
DEFAULT_STRUCTURED_RETRIES = 2
# How many violations a retry prompt and an error message list.
_SHOWN = 5
# Finish reasons that mean the answer was cut at `max_tokens` (OpenAI, Anthropic).
_CUT = frozenset(("length", "max_tokens"))


class StructuredOutputError(LLMError):
    """The model's answer did not fit the output schema, after every retry.

    Raised by `structured` when the last answer is not JSON or violates the schema. Differs
    from `ProviderResponseError`, which says the provider broke its wire format: here the
    provider worked, and the model's answer is what is wrong. Inside a run, the step that
    asked is named by the `StepFailedError` around it.

    Attributes:
        schema: The schema's name.
        violations: What was wrong with the last answer, each with its field's path (one
            violation at `$` if it was not JSON).
        answer: The last answer's text.
        completions: Every call, in order.
    """

    def __init__(
        self,
        message: str,
        *,
        schema: str,
        violations: tuple[SchemaViolation, ...],
        answer: str,
        completions: tuple[Completion, ...],
    ) -> None:
        super().__init__(message)
        self.schema = schema
        self.violations = violations
        self.answer = answer
        self.completions = completions


@attrs.frozen(kw_only=True)
class Structured(Generic[T]):
    """A structured answer that fits its schema.

    Attributes:
        value: The answer: an instance of the attrs class asked for, or the parsed JSON
            when a plain `OutputSchema` was given.
        completions: Every call made for it, in order; the last one's answer fit.
    """

    value: T
    completions: tuple[Completion, ...]

    @property
    def usage(self) -> Usage:
        """Tokens billed over every call, retries included."""
        total = Usage()
        for completion in self.completions:
            total += completion.usage
        return total

    @property
    def retries(self) -> int:
        """Calls made again because an answer did not fit."""
        return len(self.completions) - 1


def output_schema(cls: type[Any], *, name: str | None = None) -> OutputSchema:
    """Return the strict `OutputSchema` of an attrs class (see `schema_of` for the types).

    Args:
        cls: An attrs class.
        name: The schema's name (default: the class name).

    Returns:
        The schema.

    Raises:
        LLMConfigError: `cls` is not an attrs class, or a field's type cannot be described.
    """
    return OutputSchema(name=name or cls.__name__, schema=schema_of(cls), strict=True)


@overload
async def structured(
    client: LLMClient,
    messages: str | Sequence[MessageLike],
    *,
    output: type[T],
    model: str,
    retries: int = ...,
    max_tokens: int = ...,
    stream: bool | None = ...,
    temperature: float | None = ...,
    meter: UsageMeter | None = ...,
) -> Structured[T]: ...


@overload
async def structured(
    client: LLMClient,
    messages: str | Sequence[MessageLike],
    *,
    output: OutputSchema,
    model: str,
    retries: int = ...,
    max_tokens: int = ...,
    stream: bool | None = ...,
    temperature: float | None = ...,
    meter: UsageMeter | None = ...,
) -> Structured[Any]: ...


async def structured(
    client: LLMClient,
    messages: str | Sequence[MessageLike],
    *,
    output: type[Any] | OutputSchema,
    model: str,
    retries: int = DEFAULT_STRUCTURED_RETRIES,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    stream: bool | None = None,
    temperature: float | None = None,
    meter: UsageMeter | None = None,
) -> Structured[Any]:
    """Ask `model` for an answer that fits `output`; validate it; retry a bounded number of times.

    Args:
        client: The client to call through.
        messages: The prompt (as `LLMClient.complete` takes it).
        output: An attrs class (its schema is `output_schema(cls)`, and the value is an
            instance) or an `OutputSchema` (the value is the parsed JSON).
        model: The model name.
        retries: How many times an answer that does not fit is asked for again (>= 0).
        max_tokens: The most tokens each call may generate.
        stream: Stream each call (see `LLMClient.complete`).
        temperature: Sampling temperature.
        meter: One more meter to record every call in.

    Returns:
        The value and every call made for it.

    Raises:
        StructuredOutputError: The last answer still did not fit (names the fields).
        LLMConfigError: `output` cannot be described as a schema, or `retries` < 0.
        LLMError: A call failed (see `LLMClient.complete`).
    """
    expected = Expected.of(output, retries)
    conversation = list(as_messages(messages))
    completions: list[Completion] = []
    while True:
        completion = await client.complete(
            conversation,
            model=model,
            max_tokens=max_tokens,
            stream=stream,
            temperature=temperature,
            meter=meter,
            output=expected.schema,
        )
        completions.append(completion)
        value, feedback = expected.check(completion, completions)
        if feedback is None:
            return Structured(value=value, completions=tuple(completions))
        conversation += feedback


# A class's schema, made once: reading its type hints costs more than validating an answer.
# Weak keys, so a class made at run time is not kept alive by its schema.
_CLASS_SCHEMAS: weakref.WeakKeyDictionary[type[Any], OutputSchema] = weakref.WeakKeyDictionary()


@attrs.frozen
class Expected:
    """What an answer must fit, and how a misfit is retried: shared by `structured` and the
    tool loop (`run_tool_loop(..., output=...)`)."""

    output: type[Any] | OutputSchema
    schema: OutputSchema
    retries: int

    @classmethod
    def of(cls, output: type[Any] | OutputSchema, retries: int) -> Expected:
        """Check `retries` and make (or reuse) the schema of `output`."""
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise LLMConfigError(f"`retries` must be an int >= 0, got {retries!r}")
        if isinstance(output, OutputSchema):
            return cls(output, output, retries)
        schema = _CLASS_SCHEMAS.get(output)
        if schema is None:
            schema = _CLASS_SCHEMAS[output] = output_schema(output)
        return cls(output, schema, retries)

    def is_answer(self, completion: Completion) -> bool:
        """Whether `completion` answers (no tool calls, or a call of the schema's tool)."""
        calls = completion.tool_calls
        return not calls or any(c.name == self.schema.name for c in calls)

    def check(
        self, completion: Completion, completions: Sequence[Completion]
    ) -> tuple[Any, list[Message] | None]:
        """Return the answer's value and `None`, or `None` and the turn that asks again.

        Raises:
            StructuredOutputError: It does not fit and `retries` are spent; `completions`
                are every call made for it so far.
        """
        answer, value, violations = _read(completion, self.schema)
        if not violations:
            output = self.output
            return (value if isinstance(output, OutputSchema) else build(output, value)), None
        if sum(1 for c in completions if self.is_answer(c)) > self.retries:
            raise _error(self.schema, violations, answer, completions)
        return None, _feedback(completion, self.schema, violations)


def _read(completion: Completion, schema: OutputSchema) -> tuple[str, Any, list[SchemaViolation]]:
    """The answer's text, its parsed value, and what is wrong with it."""
    call = next((c for c in completion.tool_calls if c.name == schema.name), None)
    answer = completion.text if call is None else call.arguments_json
    try:
        value = json.loads(_unfenced(answer))
    except ValueError as exc:
        return answer, None, [SchemaViolation(path="$", message=f"is not JSON ({exc})")]
    return answer, value, validate_json(value, schema.schema)


def _unfenced(text: str) -> str:
    # Models without a schema mode often wrap JSON in a Markdown fence.
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped[3:-3]
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else stripped
    return stripped


def _listing(violations: Sequence[SchemaViolation]) -> str:
    shown = "; ".join(str(v) for v in violations[:_SHOWN])
    more = len(violations) - _SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def _feedback(
    completion: Completion, schema: OutputSchema, violations: Sequence[SchemaViolation]
) -> list[Message]:
    """The turn that tells the model what was wrong: as the forced tool's error result when
    the answer came as a tool call (Anthropic needs a result for each call), else as text."""
    note = (
        f"Your answer does not fit the JSON schema `{schema.name}`: {_listing(violations)}. "
        "Answer again, with JSON that fits the schema exactly."
    )
    call = next((c for c in completion.tool_calls if c.name == schema.name), None)
    if call is None:
        return [Message.assistant(completion.text), Message.user(note)]
    calls = completion.tool_calls
    turn = Message(role="assistant", content=completion.text, tool_calls=calls)
    results = [
        Message.tool_result(c, note if c is call else "Not run.", is_error=True) for c in calls
    ]
    return [turn, *results]


def _error(
    schema: OutputSchema,
    violations: Sequence[SchemaViolation],
    answer: str,
    completions: Sequence[Completion],
) -> StructuredOutputError:
    fields = ", ".join(dict.fromkeys(f"`{v.path}`" for v in violations))
    fix = "Raise `retries=`, use a stronger model, or loosen the schema"
    if completions[-1].finish_reason in _CUT:
        fix = f"The answer was cut at `max_tokens` ({completions[-1].finish_reason}): raise it"
    return StructuredOutputError(
        f"the answer for schema {schema.name!r} did not fit after {len(completions)} call(s);"
        f" wrong: {fields} ({_listing(violations)}); last answer: {answer[:120]!r}. {fix}",
        schema=schema.name,
        violations=tuple(violations),
        answer=answer,
        completions=tuple(completions),
    )
