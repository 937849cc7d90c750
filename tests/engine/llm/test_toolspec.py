"""Tool and output-schema definitions: checked when made, frozen, and keyed for the cache."""

from __future__ import annotations

import re

import pytest
from specroute.engine.llm import LLMConfigError, OutputSchema, ToolSpec, call_dependencies

PARAMETERS = {"type": "object", "properties": {"sku": {"type": "string"}}}


def test_a_spec_copies_its_schema() -> None:
    parameters = {"type": "object", "properties": {"sku": {"type": "string"}}}
    spec = ToolSpec(name="lookup", parameters=parameters)
    parameters["properties"]["sku"]["type"] = "integer"

    assert spec.parameters["properties"]["sku"] == {"type": "string"}
    with pytest.raises(TypeError):
        spec.parameters["type"] = "array"  # type: ignore[index]


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dots.not.allowed"])
def test_a_name_providers_refuse_is_refused(name: str) -> None:
    with pytest.raises(LLMConfigError, match=r"`name` must be 1-64 letters"):
        ToolSpec(name=name)
    with pytest.raises(LLMConfigError, match=r"`name` must be 1-64 letters"):
        OutputSchema(name=name, schema={})


def test_a_schema_must_be_json() -> None:
    with pytest.raises(LLMConfigError, match="must be a mapping"):
        OutputSchema(name="x", schema=["type"])  # type: ignore[arg-type]
    with pytest.raises(LLMConfigError, match="must be plain JSON data"):
        ToolSpec(name="x", parameters={"default": object()})


def test_dependencies_follow_every_definition_but_not_tool_order() -> None:
    a = ToolSpec(name="a", parameters=PARAMETERS)
    b = ToolSpec(name="b", description="B.")
    schema = OutputSchema(name="Out", schema={"type": "string"})

    key = call_dependencies(model="m", schema=schema, tools=[a, b], prompt="1")

    assert key == call_dependencies(model="m", schema=schema, tools=[b, a], prompt="1")
    assert key["tools"][0] == {"name": "a", "description": "", "parameters": PARAMETERS}
    assert key["schema"] == {"name": "Out", "schema": {"type": "string"}, "strict": True}
    assert key["prompt"] == "1"
    changed = ToolSpec(name="b", description="B, now net of tax.")
    assert key != call_dependencies(model="m", schema=schema, tools=[a, changed], prompt="1")
    assert key != call_dependencies(model="m2", schema=schema, tools=[a, b], prompt="1")
    assert call_dependencies(model="m") == {"model": "m"}


def test_schemas_are_checked_when_made() -> None:
    with pytest.raises(LLMConfigError, match=r"'format' at \$"):
        OutputSchema(name="D", schema={"type": "string", "format": "date"})
    with pytest.raises(LLMConfigError, match=r"'pattern' at \$<t>\.sku"):
        ToolSpec(name="t", parameters={"properties": {"sku": {"pattern": "x"}}})


@pytest.mark.parametrize(
    ("schema", "fault"),
    [
        ({"type": "object", "properties": {"a": {}}, "required": ["a"]}, "at $ does not set"),
        (
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            "at $ does not require 'a'",
        ),
        (
            {
                "type": "array",
                "items": {"type": "object", "properties": {}, "additionalProperties": True},
            },
            "at $[] does not set",
        ),
    ],
)
def test_a_strict_schema_must_close_every_object(schema: dict[str, object], fault: str) -> None:
    with pytest.raises(LLMConfigError, match=re.escape(fault)):
        OutputSchema(name="S", schema=schema)
    assert not OutputSchema(name="S", schema=schema, strict=False).strict
