"""What a call may ask of a model beyond text: tool definitions and an output schema, as
typed values every wire format writes (the model's calls are `ToolCall`s, in `_messages.py`).

`ToolSpec` is a tool as the model sees it (name, description, JSON schema of its arguments);
`OutputSchema` is the JSON schema an answer must fit.
`call_dependencies` turns them into plain data for `CacheOptions(depends_on=...)`, so a cached
step's key changes whenever the model, the schema or a tool definition does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from ._errors import LLMConfigError

__all__ = ["OutputSchema", "ToolSpec", "call_dependencies"]

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
        copied = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise LLMConfigError(f"a JSON schema must be plain JSON data: {exc}") from exc
    return MappingProxyType(copied)


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A tool as the model sees it.

    Args:
        name: The tool's name (1-64 of `[A-Za-z0-9_-]`).
        description: What the tool does and when to call it, for the model.
        parameters: The JSON schema of its arguments (an object schema).

    Raises:
        LLMConfigError: The name is not one providers accept, or `parameters` is not JSON.
    """

    name: str = attrs.field(validator=_tool_name)
    description: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    parameters: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}},
        converter=_frozen_schema,
        hash=False,
    )

    def as_data(self) -> dict[str, Any]:
        """Return the definition as plain JSON data (for cache keys and request bodies)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": json.loads(json.dumps(dict(self.parameters))),
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
        LLMConfigError: The name is not one providers accept, or `schema` is not JSON.
    """

    name: str = attrs.field(validator=_tool_name)
    schema: Mapping[str, Any] = attrs.field(converter=_frozen_schema, hash=False)
    strict: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def as_data(self) -> dict[str, Any]:
        """Return the schema as plain JSON data (for cache keys and request bodies)."""
        return {
            "name": self.name,
            "schema": json.loads(json.dumps(dict(self.schema))),
            "strict": self.strict,
        }


def call_dependencies(
    *,
    model: str,
    schema: OutputSchema | None = None,
    tools: Sequence[ToolSpec] = (),
    **extra: Any,
) -> dict[str, Any]:
    """Return what a model call's answer depends on, as `CacheOptions(depends_on=...)` takes it.

    A cached step that calls the model declares it, so that a new model, a changed schema or
    a changed tool definition is a new key and never serves a stale answer::

        @step(cache=CacheOptions(depends_on=call_dependencies(model=MODEL, tools=TOOLS)))
        async def answer(question: str) -> str: ...

    Args:
        model: The model asked for.
        schema: The output schema, if the answer must fit one.
        tools: The tools offered to the model (their order does not matter).
        **extra: Anything else the answer depends on (a prompt version, a temperature).

    Returns:
        Plain data: the model, the schema's JSON and each tool's definition.
    """
    dependencies: dict[str, Any] = {"model": model}
    if schema is not None:
        dependencies["schema"] = schema.as_data()
    if tools:
        dependencies["tools"] = sorted(
            (tool.as_data() for tool in tools), key=lambda data: str(data["name"])
        )
    dependencies.update(extra)
    return dependencies
