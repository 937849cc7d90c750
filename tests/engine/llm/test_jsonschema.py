"""The JSON-schema subset: checking schemas, validating values, schemas of attrs classes."""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs
import pytest
from specroute.engine.llm import LLMConfigError, SchemaViolation, schema_of, validate_json
from specroute.engine.llm._jsonschema import build, check_schema


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"


@attrs.frozen
class Line:
    sku: str
    quantity: int
    price: float


@attrs.frozen
class Order:
    supplier: str
    currency: Currency
    lines: tuple[Line, ...]
    urgency: Literal["low", "high"]
    note: str | None
    approved: bool


ORDER = {
    "supplier": "ACME",
    "currency": "EUR",
    "lines": [{"sku": "A1", "quantity": 2, "price": 3}],
    "urgency": "high",
    "note": None,
    "approved": False,
}


def test_the_schema_of_an_attrs_class_is_strict() -> None:
    schema = schema_of(Order)

    assert schema["required"] == list(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["currency"] == {"type": "string", "enum": ["EUR", "USD"]}
    assert schema["properties"]["urgency"] == {"type": "string", "enum": ["low", "high"]}
    assert schema["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schema["properties"]["lines"]["items"]["properties"]["price"] == {"type": "number"}
    check_schema(schema)


def test_a_fitting_value_builds_the_class() -> None:
    assert validate_json(ORDER, schema_of(Order)) == []

    order = build(Order, ORDER)

    assert order == Order(
        supplier="ACME",
        currency=Currency.EUR,
        lines=(Line(sku="A1", quantity=2, price=3.0),),
        urgency="high",
        note=None,
        approved=False,
    )
    assert isinstance(order.lines[0].price, float)


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"supplier": 7}, "$.supplier", "expected string, got 7"),
        ({"currency": "GBP"}, "$.currency", "must be one of ['EUR', 'USD'], got 'GBP'"),
        ({"lines": [{"sku": "A", "quantity": 2, "price": "3"}]}, "$.lines[0].price", "number"),
        ({"lines": [{"sku": "A", "quantity": 2.5, "price": 3}]}, "$.lines[0].quantity", "expected"),
        ({"lines": [{"sku": "A1", "price": 3}]}, "$.lines[0].quantity", "is required but missing"),
        ({"approved": "yes"}, "$.approved", "expected boolean"),
        ({"extra": 1}, "$.extra", "is not an allowed property"),
        ({"note": 3}, "$.note", "expected"),
    ],
)  # fmt: skip
def test_a_violation_names_its_field(change: dict[str, Any], path: str, message: str) -> None:
    [violation] = validate_json({**ORDER, **change}, schema_of(Order))

    assert violation.path == path
    assert message in violation.message
    assert str(violation) == f"{path}: {violation.message}"


def test_bounds_and_const() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
            "name": {"type": "string", "minLength": 2, "maxLength": 3},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "kind": {"const": "order"},
        },
    }

    assert validate_json({"tags": ["a"], "name": "ab", "score": 0.5, "kind": "order"}, schema) == []
    violations = validate_json({"tags": [], "name": "abcd", "score": 2, "kind": "x"}, schema)
    assert [v.path for v in violations] == ["$.tags", "$.name", "$.score", "$.kind"]
    assert violations[0].message == "must have at least 1 items, got 0"
    assert violations[2].message == "must have at most 1, got 2"


def test_a_bool_is_not_a_number_and_an_int_is() -> None:
    assert validate_json(True, {"type": "number"}) == [
        SchemaViolation(path="$", message="expected number, got True")
    ]
    assert validate_json(3, {"type": "number"}) == []
    assert validate_json(3, {"type": ["string", "integer"]}) == []


def test_a_schema_outside_the_subset_is_refused() -> None:
    with pytest.raises(LLMConfigError, match=r"'pattern' at \$\.code"):
        check_schema({"type": "object", "properties": {"code": {"type": "string", "pattern": "x"}}})
    with pytest.raises(LLMConfigError, match="unknown JSON type 'date'"):
        check_schema({"type": "date"})


def test_schema_of_refuses_what_it_cannot_describe() -> None:
    @attrs.frozen
    class Loose:
        data: dict[str, Any]

    with pytest.raises(LLMConfigError, match=r"`Loose.data` has type"):
        schema_of(Loose)
    with pytest.raises(LLMConfigError, match="needs an attrs class"):
        schema_of(dict)
