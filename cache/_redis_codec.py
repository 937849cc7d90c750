"""How a step's value is written to Redis: tagged JSON, never pickle.

Redis is shared by every worker, so what one writes another reads: unpickling it would let
anyone who can write to Redis run code in every worker. Values are written as UTF-8 JSON
instead, and read back only into the types listed here, so a value read from Redis can
never be more than data.

The format (version 1)::

    {"format": "specroute.redis/1", "seconds": <float>, "value": <tagged>}

where `<tagged>` is a JSON array whose first item names the type:

====================  ==========================================================
`["n"]`               `None`
`["b", true]`         `bool`
`["i", 42]`           `int` (any size)
`["f", "1.5"]`        `float`, as its `repr` (so `nan`, `inf` and `-0.0` survive)
`["s", "text"]`       `str`
`["y", "aGk="]`       `bytes`, base64
`["l", [...]]`        `list`; `"t"` tuple, `"S"` set, `"Z"` frozenset
`["d", [[k, v]...]]`  `dict` (any encodable keys), as pairs in insertion order
`["r", "label", d]`   a `Route` (`specroute.routes`), its values as a `"d"`
`["a", "m.Cls", d]`   an attrs or dataclass instance of an *allowed* class, by its init
                      arguments (a `"d"` of name -> value)
`["e", "m.Cls", "X"]` a member of an allowed `enum.Enum` class
====================  ==========================================================

A class is allowed when it is passed in `allowed` (`RedisCacheConfig.types`); a value of any
other type is refused when stored (`UncacheableValueError`, the step still runs) and a tag
naming a class that is not allowed, or any malformed document, is refused when read
(`UndecodableValueError`, which the cache counts as a miss). Decoding looks classes up only
in `allowed`: nothing is imported by name.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from typing import TYPE_CHECKING, Any

import attrs
from specroute.routes import Route

from ._errors import UncacheableValueError
from ._redis_errors import UndecodableValueError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["FORMAT", "Decoded", "TypeRegistry", "decode", "encode"]

FORMAT = "specroute.redis/1"
_SEQUENCES: dict[type, str] = {list: "l", tuple: "t", set: "S", frozenset: "Z"}
_BUILD: dict[str, type] = {tag: kind for kind, tag in _SEQUENCES.items()}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@attrs.frozen
class TypeRegistry:
    """The classes (attrs, dataclass or enum) a stored value may contain, by qualified name."""

    by_name: Mapping[str, type]

    @classmethod
    def of(cls, types: Iterable[type]) -> TypeRegistry:
        """The registry of `types`; each must be an attrs class, a dataclass or an enum."""
        return cls({_name(kind): kind for kind in types})


@attrs.frozen
class Decoded:
    """A value read back from Redis, with the seconds its computation took."""

    value: Any
    seconds: float


def encode(value: Any, seconds: float, allowed: TypeRegistry, *, where: object) -> bytes:
    """Encode a value and its seconds as one document; `where` names the key in errors.

    Raises:
        UncacheableValueError: The value holds a type the format cannot carry.
    """
    document = {"format": FORMAT, "seconds": seconds, "value": _encode(value, allowed, where)}
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes, allowed: TypeRegistry) -> Decoded:
    """Decode what `encode` wrote.

    Raises:
        UndecodableValueError: The bytes are not a document of this format, or name a
            class that is not allowed.
    """
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise UndecodableValueError(f"not a {FORMAT} document")
        seconds = document["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise UndecodableValueError("`seconds` is not a number")
        return Decoded(_decode(document["value"], allowed), float(seconds))
    except UndecodableValueError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise UndecodableValueError(f"malformed {FORMAT} document: {exc}") from exc


def _encode(value: Any, allowed: TypeRegistry, where: object) -> Any:
    kind = type(value)
    if value is None:
        return ["n"]
    if kind is bool:
        return ["b", value]
    if kind is int:
        return ["i", value]
    if kind is float:
        return ["f", repr(value)]
    if kind is str:
        return ["s", value]
    if kind is bytes:
        return ["y", base64.b64encode(value).decode()]
    if kind in _SEQUENCES:
        return [_SEQUENCES[kind], [_encode(item, allowed, where) for item in value]]
    if kind is dict:
        return ["d", _pairs(value, allowed, where)]
    if kind is Route:
        return ["r", value.label, ["d", _pairs(value.values, allowed, where)]]
    if allowed.by_name.get(_name(kind)) is kind:
        if isinstance(value, enum.Enum):
            return ["e", _name(kind), value.name]
        return ["a", _name(kind), ["d", _pairs(_init_arguments(value, where), allowed, where)]]
    raise UncacheableValueError(
        f"cannot store the result for {where} in Redis: a {_name(kind)} is not plain data"
        " (None, bool, int, float, str, bytes, list, tuple, set, frozenset, dict, Route);"
        " list its class in `RedisCacheConfig(types=...)` if it is an attrs class, a"
        " dataclass or an enum, or turn off caching for this step"
    )


def _pairs(mapping: Mapping[Any, Any], allowed: TypeRegistry, where: object) -> list[Any]:
    return [[_encode(k, allowed, where), _encode(v, allowed, where)] for k, v in mapping.items()]


def _init_arguments(value: Any, where: object) -> dict[str, Any]:
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        if any(not field.init for field in fields):
            raise UncacheableValueError(
                f"cannot store the result for {where} in Redis: {_name(type(value))} has"
                " fields outside `__init__`, so it cannot be rebuilt from its arguments"
            )
        return {field.alias: getattr(value, field.name) for field in fields}
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    raise UncacheableValueError(
        f"cannot store the result for {where} in Redis: {_name(type(value))} is allowed but"
        " is neither an attrs class, a dataclass nor an enum"
    )


def _decode(node: Any, allowed: TypeRegistry) -> Any:
    tag = node[0]
    if tag == "n":
        return None
    if tag in ("b", "i", "s"):
        payload = node[1]
        expected = {"b": bool, "i": int, "s": str}[tag]
        if type(payload) is not expected:
            raise UndecodableValueError(f"tag {tag!r} holds a {type(payload).__name__}")
        return payload
    if tag == "f":
        return float(node[1])
    if tag == "y":
        return base64.b64decode(node[1], validate=True)
    if tag in _BUILD:
        return _BUILD[tag](_decode(item, allowed) for item in node[1])
    if tag == "d":
        return {_decode(k, allowed): _decode(v, allowed) for k, v in node[1]}
    if tag == "r":
        return Route(node[1], **_keywords(node[2], allowed))
    if tag in ("a", "e"):
        cls = allowed.by_name.get(node[1])
        if cls is None:
            raise UndecodableValueError(f"class {node[1]!r} is not an allowed type")
        if tag == "e":
            return cls[node[2]]  # type: ignore[index]
        return cls(**_keywords(node[2], allowed))
    raise UndecodableValueError(f"unknown tag {tag!r}")


def _keywords(node: Any, allowed: TypeRegistry) -> dict[str, Any]:
    values = _decode(node, allowed)
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise UndecodableValueError("keyword arguments are not a dict of str")
    return values
