"""A small JSON-schema subset: check a schema, validate a value, and make a schema from an
attrs class (and the class back from a value that fits it).

Supported keywords (what OpenAI's strict structured output accepts, minus `$ref`): `type`
(one or a list), `properties`, `required`, `additionalProperties` (a bool), `items`, `enum`,
`const`, `anyOf`, `minimum`, `maximum`, `minItems`, `maxItems`, `minLength`, `maxLength`,
plus the annotations `title`, `description` and `default`. A schema using anything else is
refused when it is checked, rather than half validated.

A violation names the value's path (`$.items[2].price`), so a retry prompt and an error
message can say which field is wrong.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

import attrs

from ._errors import LLMConfigError

__all__ = [
    "SchemaViolation",
    "build",
    "check_schema",
    "check_strict",
    "schema_of",
    "schema_of_type",
    "validate_json",
]

T = TypeVar("T")

_ANNOTATIONS = frozenset(("title", "description", "default"))
_KEYWORDS = frozenset(
    (
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
    )
)
_TYPES = frozenset(("object", "array", "string", "integer", "number", "boolean", "null"))


@attrs.frozen(kw_only=True)
class SchemaViolation:
    """One way a value does not fit its schema.

    Attributes:
        path: Where, as a JSON path from the root (`$`, `$.items[2].price`).
        message: What is wrong there (`expected number, got "12 USD"`).
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_schema(schema: Mapping[str, Any], path: str = "$") -> None:
    """Refuse a schema that uses keywords `validate_json` does not check.

    Args:
        schema: The schema.
        path: Where it sits in an enclosing schema (for the message).

    Raises:
        LLMConfigError: An unsupported keyword or type, naming where it is.
    """
    unknown = sorted(set(schema) - _KEYWORDS - _ANNOTATIONS)
    if unknown:
        raise LLMConfigError(
            f"the output schema uses {', '.join(map(repr, unknown))} at {path}, which is not"
            f" in the supported subset ({', '.join(sorted(_KEYWORDS))}); drop it or express"
            " the rule with those keywords"
        )
    kinds = schema.get("type")
    for kind in [kinds] if isinstance(kinds, str) else (kinds or ()):
        if kind not in _TYPES:
            raise LLMConfigError(f"unknown JSON type {kind!r} at {path}")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        check_schema(schema["items"], f"{path}[]")
    for number, sub in enumerate(schema.get("anyOf") or ()):
        check_schema(sub, f"{path}<anyOf {number}>")


def check_strict(schema: Mapping[str, Any], path: str = "$") -> None:
    """Refuse a schema that strict structured output cannot take: each object must list every
    property in `required` and set `additionalProperties: false` (OpenAI's rule).

    Args:
        schema: The schema (already checked by `check_schema`).
        path: Where it sits in an enclosing schema (for the message).

    Raises:
        LLMConfigError: Naming the object at fault and the fix.
    """
    properties = schema.get("properties")
    if properties is not None or schema.get("type") == "object":
        missing = sorted(set(properties or {}) - set(schema.get("required") or ()))
        if missing or schema.get("additionalProperties") is not False:
            problem = (
                f"does not require {', '.join(map(repr, missing))}"
                if missing
                else "does not set `additionalProperties: false`"
            )
            raise LLMConfigError(
                f"the strict output schema's object at {path} {problem}; strict mode needs"
                " both on every object (as `schema_of` makes them), or pass `strict=False`"
            )
    for name, sub in (properties or {}).items():
        check_strict(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        check_strict(schema["items"], f"{path}[]")
    for number, sub in enumerate(schema.get("anyOf") or ()):
        check_strict(sub, f"{path}<anyOf {number}>")


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fits_type(actual: str, expected: str) -> bool:
    return actual == expected or (expected == "number" and actual == "integer")


def validate_json(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[SchemaViolation]:
    """Return every way `value` (parsed JSON) does not fit `schema`; empty if it fits.

    Args:
        value: The parsed JSON value.
        schema: A schema of the supported subset (see `check_schema`).
        path: The value's path (for the violations).

    Returns:
        The violations, in document order.
    """
    if "anyOf" in schema:
        options = [validate_json(value, sub, path) for sub in schema["anyOf"]]
        if all(options):
            # The closest option's complaints say the most.
            return min(options, key=len)
    kinds = schema.get("type")
    if kinds is not None:
        expected = [kinds] if isinstance(kinds, str) else list(kinds)
        actual = _type_of(value)
        if not any(_fits_type(actual, kind) for kind in expected):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            return [
                SchemaViolation(path=path, message=f"expected {' or '.join(expected)}, got {shown}")
            ]
    if "const" in schema and value != schema["const"]:
        return [SchemaViolation(path=path, message=f"must be {schema['const']!r}, got {value!r}")]
    if "enum" in schema and value not in schema["enum"]:
        return [
            SchemaViolation(path=path, message=f"must be one of {schema['enum']!r}, got {value!r}")
        ]
    violations: list[SchemaViolation] = []
    if isinstance(value, dict):
        violations += _validate_object(value, schema, path)
    elif isinstance(value, list):
        violations += _validate_array(value, schema, path)
    elif isinstance(value, str):
        violations += _bounds(len(value), schema, "minLength", "maxLength", "characters", path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        violations += _bounds(value, schema, "minimum", "maximum", "", path)
    return violations


def _validate_object(
    value: dict[str, Any], schema: Mapping[str, Any], path: str
) -> list[SchemaViolation]:
    violations = [
        SchemaViolation(path=f"{path}.{name}", message="is required but missing")
        for name in schema.get("required") or ()
        if name not in value
    ]
    properties = schema.get("properties") or {}
    for name, item in value.items():
        if name in properties:
            violations += validate_json(item, properties[name], f"{path}.{name}")
        elif schema.get("additionalProperties") is False:
            violations.append(
                SchemaViolation(path=f"{path}.{name}", message="is not an allowed property")
            )
    return violations


def _validate_array(
    value: list[Any], schema: Mapping[str, Any], path: str
) -> list[SchemaViolation]:
    violations = _bounds(len(value), schema, "minItems", "maxItems", "items", path)
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            violations += validate_json(item, items, f"{path}[{index}]")
    return violations


def _bounds(
    measure: float, schema: Mapping[str, Any], low: str, high: str, unit: str, path: str
) -> list[SchemaViolation]:
    suffix = f" {unit}" if unit else ""
    if low in schema and measure < schema[low]:
        return [
            SchemaViolation(
                path=path, message=f"must have at least {schema[low]}{suffix}, got {measure}"
            )
        ]
    if high in schema and measure > schema[high]:
        return [
            SchemaViolation(
                path=path, message=f"must have at most {schema[high]}{suffix}, got {measure}"
            )
        ]
    return []


def schema_of(cls: type[Any]) -> dict[str, Any]:
    """Return the JSON schema of an attrs class, strict-mode ready.

    Every field is `required` and no other property is allowed, as OpenAI's strict mode
    needs. Field types may be `str`, `int`, `float`, `bool`, `None`, a `Literal` of those, an
    `enum.Enum`, another attrs class, `list[X]`, `tuple[X, ...]`, and unions (`X | None`).

    Args:
        cls: An attrs class.

    Returns:
        Its schema.

    Raises:
        LLMConfigError: `cls` is not an attrs class, or a field's type is not supported.
    """
    if not attrs.has(cls):
        raise LLMConfigError(
            f"structured output needs an attrs class or a JSON schema, got {cls!r}; decorate"
            " it with `@attrs.frozen` or pass `OutputSchema(name=..., schema={...})`"
        )
    hints = typing.get_type_hints(cls)
    properties = {
        field.name: schema_of_type(hints[field.name], f"{cls.__name__}.{field.name}")
        for field in attrs.fields(cls)
        if field.init
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def schema_of_type(hint: Any, where: str) -> dict[str, Any]:
    """Return the JSON schema of one type hint; `where` names it in the error."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if hint is type(None) or hint is None:
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum([member.value for member in hint])
    if isinstance(hint, type) and attrs.has(hint):
        return schema_of(hint)
    if origin is Literal:
        return _enum(list(args))
    if origin in (list, Sequence) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return {"type": "array", "items": schema_of_type(args[0], f"{where}[]")}
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_of_type(arg, where) for arg in args]}
    raise LLMConfigError(
        f"`{where}` has type {hint!r}, which structured output cannot describe; use str, int,"
        " float, bool, a Literal, an Enum, an attrs class, list[...] or a union of those"
    )


def _enum(values: list[Any]) -> dict[str, Any]:
    # Strict modes want a `type` beside `enum` where there is one.
    kinds = {_type_of(value) for value in values}
    if len(kinds) == 1:
        return {"type": kinds.pop(), "enum": values}
    return {"enum": values}


def build(cls: type[T], value: Any) -> T:
    """Return an instance of attrs class `cls` from `value`, which fits `schema_of(cls)`."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        field.name: _build_value(hints[field.name], value[field.name])
        for field in attrs.fields(cls)  # type: ignore[arg-type]  # T is an attrs class here
        if field.init and field.name in value
    }
    return cls(**kwargs)


def _build_value(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(hint, type) and attrs.has(hint) and isinstance(value, dict):
        return build(hint, value)
    if hint is float and isinstance(value, int):
        return float(value)
    if origin is list or origin is Sequence:
        return [_build_value(args[0], item) for item in value]
    if origin is tuple:
        return tuple(_build_value(args[0], item) for item in value)
    if origin in (Union, types.UnionType):
        for arg in args:
            if not validate_json(value, schema_of_type(arg, "")):
                return _build_value(arg, value)
    return value
