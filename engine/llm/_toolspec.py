"""What a call may ask of a model beyond text: tool definitions and an output schema, as
typed values every wire format writes (the model's calls are `ToolCall`s, in `_messages.py`).

`ToolSpec` is a tool as the model sees it (name, description, JSON schema of its arguments);
`Tool` adds the async function that runs it (`@tool` reads both off a function);
`OutputSchema` is the JSON schema an answer must fit.
`call_dependencies` turns them into plain data for `CacheOptions(depends_on=...)`, so a cached
step's key changes whenever the model, the schema or a tool definition does.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from ._errors import LLMConfigError
from ._jsonschema import check_schema, check_strict, schema_of_type

__all__ = ["OutputSchema", "Tool", "ToolSpec", "call_dependencies", "tool"]

# Both providers accept tool names of this shape (OpenAI: 1-64 of [a-zA-Z0-9_-]).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _tool_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise LLMConfigError(
            f"`{attribute.name}` must be 1-64 letters, digits, `_` or `-` (what both providers"
            f" accept), got {value!r}"
        )


def _frozen_schema(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise LLMConfigError(
            f"a JSON schema must be a mapping such as {{'type': 'object', ...}}, got {value!r}"
        )
    try:
        # A deep copy that also proves the schema is JSON: it is sent as JSON and keyed on.
        copied = json.loads(json.dumps(value, default=_mapping))
    except (TypeError, ValueError) as exc:
        raise LLMConfigError(f"a JSON schema must be plain JSON data: {exc}") from exc
    return MappingProxyType(copied)


def _mapping(value: object) -> dict[str, Any]:
    # A schema that is already frozen (copied from another spec) holds mapping proxies.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A tool as the model sees it.

    Args:
        name: The tool's name (1-64 of `[A-Za-z0-9_-]`).
        description: What the tool does and when to call it, for the model.
        parameters: The JSON schema of its arguments (an object schema).

    Raises:
        LLMConfigError: The name is not one providers accept, or `parameters` is not JSON
            or uses keywords outside the supported subset (see `validate_json`).
    """

    name: str = attrs.field(validator=_tool_name)
    description: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    parameters: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}},
        converter=_frozen_schema,
        hash=False,
    )

    def __attrs_post_init__(self) -> None:
        check_schema(self.parameters, f"$<{self.name}>")

    def as_data(self) -> dict[str, Any]:
        """Return the definition as plain JSON data (for cache keys and request bodies)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": json.loads(json.dumps(self.parameters, default=_mapping)),
        }


@attrs.frozen(kw_only=True)
class OutputSchema:
    """The JSON schema an answer must fit (see `structured` and `schema_of`).

    Args:
        name: The schema's name, sent to the provider (OpenAI's `json_schema.name`, the
            forced tool's name on Anthropic) and used in error messages.
        schema: The JSON schema (the subset `validate_json` checks; see `_jsonschema.py`).
        strict: Ask the provider to enforce the schema while generating (OpenAI's
            `strict`). It needs every property `required` and `additionalProperties: false`,
            as `schema_of` makes them. The answer is validated here either way.

    Raises:
        LLMConfigError: The name is not one providers accept, `schema` is not JSON or uses
            keywords outside the supported subset, or a strict schema has an object that
            does not require all its properties or allows others.
    """

    name: str = attrs.field(validator=_tool_name)
    schema: Mapping[str, Any] = attrs.field(converter=_frozen_schema, hash=False)
    strict: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        check_schema(self.schema)
        if self.strict:
            # Refused here, not by the provider's 400 after the request was sent.
            check_strict(self.schema)

    def as_data(self) -> dict[str, Any]:
        """Return the schema as plain JSON data (for cache keys and request bodies)."""
        return {
            "name": self.name,
            "schema": json.loads(json.dumps(self.schema, default=_mapping)),
            "strict": self.strict,
        }


def _callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not inspect.iscoroutinefunction(value):
        raise LLMConfigError(f"`{attribute.name}` of a tool must be an `async def`, got {value!r}")


@attrs.frozen(kw_only=True)
class Tool:
    """A tool: its definition for the model and the async function that runs it.

    Make one with the `tool` decorator, which reads the definition off the function.

    Args:
        spec: The definition the model sees.
        fn: An `async def` called with the model's arguments as keyword arguments. It
            returns the result: a string as it is, anything else as JSON (attrs classes
            as their fields).
        effect: It has side effects (sends, writes, pays): it runs only where effects are
            allowed, never in a branch that may lose.
    """

    spec: ToolSpec
    fn: Callable[..., Awaitable[Any]] = attrs.field(validator=_callable)
    effect: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.spec.name


@typing.overload
def tool(fn: Callable[..., Awaitable[Any]], /) -> Tool: ...


@typing.overload
def tool(
    *, name: str | None = None, description: str | None = None, effect: bool = False
) -> Callable[[Callable[..., Awaitable[Any]]], Tool]: ...


def tool(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    effect: bool = False,
) -> Tool | Callable[[Callable[..., Awaitable[Any]]], Tool]:
    """Make a `Tool` of an `async def`: its name, docstring and typed parameters say what the
    model sees::

        @tool
        async def lookup_price(sku: str, currency: Literal["EUR", "USD"] = "EUR") -> float:
            '''Return the list price of one article.'''

    Parameters may have the types `schema_of` describes; those without a default are
    required. A step's function is a tool like any other: `tool(effect=True)(send.fn)`.

    Args:
        fn: The function (when used as `@tool` without arguments).
        name: The tool's name (default: the function's).
        description: What it does (default: the docstring's first paragraph).
        effect: It has side effects (see `Tool.effect`).

    Returns:
        The tool, or a decorator that makes one.

    Raises:
        LLMConfigError: The function is not an `async def`, or a parameter is untyped or
            of a type that cannot be described.
    """

    def make(fn: Callable[..., Awaitable[Any]]) -> Tool:
        label: str = name or fn.__name__
        hints = typing.get_type_hints(fn)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for parameter in inspect.signature(fn).parameters.values():
            if parameter.name not in hints:
                raise LLMConfigError(
                    f"parameter `{parameter.name}` of tool {label!r} has no type; annotate it,"
                    " so that the model is told what to pass"
                )
            where = f"{label}({parameter.name})"
            properties[parameter.name] = schema_of_type(hints[parameter.name], where)
            if parameter.default is inspect.Parameter.empty:
                required.append(parameter.name)
        doc = inspect.getdoc(fn) or ""
        spec = ToolSpec(
            name=label,
            description=description if description is not None else doc.split("\n\n")[0],
            parameters={
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        )
        return Tool(spec=spec, fn=fn, effect=effect)

    return make if fn is None else make(fn)


def call_dependencies(
    *,
    model: str | Sequence[str],
    schema: OutputSchema | None = None,
    tools: Sequence[Tool | ToolSpec] = (),
    **extra: Any,
) -> dict[str, Any]:
    """Return what a model call's answer depends on, as `CacheOptions(depends_on=...)` takes it.

    A cached step that calls the model declares it, so that a new model, a changed schema or
    a changed tool definition is a new key and never serves a stale answer::

        @step(cache=CacheOptions(depends_on=call_dependencies(model=MODEL, tools=TOOLS)))
        async def answer(question: str) -> str: ...

    Args:
        model: The model asked for, or, for a call that fails over, the ordered list of
            models it may be answered by (`Failover.models`): first choice first, since a
            different order may answer differently.
        schema: The output schema, if the answer must fit one.
        tools: The tools offered to the model, or their specs (their order does not matter).
        **extra: Anything else the answer depends on (a prompt version, a temperature).

    Returns:
        Plain data: the model, the schema's JSON and each tool's definition.
    """
    dependencies: dict[str, Any] = {"model": model if isinstance(model, str) else list(model)}
    if schema is not None:
        dependencies["schema"] = schema.as_data()
    if tools:
        dependencies["tools"] = sorted(
            (_spec(tool).as_data() for tool in tools), key=lambda data: str(data["name"])
        )
    dependencies.update(extra)
    return dependencies


def _spec(item: Tool | ToolSpec) -> ToolSpec:
    return item.spec if isinstance(item, Tool) else item
