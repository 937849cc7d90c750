"""The Redis value format: plain data and allowed classes round-trip; nothing else is
written, and anything not written by it reads as `UndecodableValueError`."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from specroute.cache import UncacheableValueError, UndecodableValueError
from specroute.cache._redis_codec import TypeRegistry, decode, encode
from specroute.routes import Route


@attrs.frozen
class Ticket:
    subject: str
    _secret: int = attrs.field(alias="secret")


@dataclasses.dataclass
class Note:
    text: str


class Tier(enum.Enum):
    GOLD = "gold"


ALLOWED = TypeRegistry.of([Ticket, Note, Tier])
NONE = TypeRegistry.of([])

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner)
        | st.lists(inner).map(tuple)
        | st.dictionaries(st.text() | st.integers(), inner)
        | st.frozensets(st.integers() | st.text())
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(plain, st.floats(min_value=0, max_value=1e6))
def test_plain_data_round_trips(value: Any, seconds: float) -> None:
    decoded = decode(encode(value, seconds, NONE, where="k"), NONE)
    assert same(decoded.value, value)
    assert decoded.seconds == seconds


def test_routes_and_allowed_classes_round_trip() -> None:
    value = [Route("billing", plan={"tier": Tier.GOLD}), Ticket("x", secret=3), Note("n")]
    assert decode(encode(value, 1.0, ALLOWED, where="k"), ALLOWED).value == value


def test_a_class_not_allowed_is_not_written() -> None:
    with pytest.raises(UncacheableValueError, match="RedisCacheConfig"):
        encode(Ticket("x", secret=1), 1.0, NONE, where="k")


def test_a_class_not_allowed_is_not_read() -> None:
    data = encode(Ticket("x", secret=1), 1.0, ALLOWED, where="k")
    with pytest.raises(UndecodableValueError, match="not an allowed type"):
        decode(data, NONE)


@pytest.mark.parametrize(
    "data",
    [
        pickle.dumps({"a": 1}),
        b"",
        b"{}",
        json.dumps({"format": "specroute.redis/1", "seconds": "1", "value": ["n"]}).encode(),
        json.dumps({"format": "specroute.redis/1", "seconds": 1, "value": ["?"]}).encode(),
        json.dumps({"format": "specroute.redis/1", "seconds": 1, "value": ["i", "1"]}).encode(),
        json.dumps({"format": "specroute.redis/1", "seconds": 1, "value": ["d", [[1]]]}).encode(),
        json.dumps({"format": "specroute.redis/1", "seconds": 1, "value": ["y", "!"]}).encode(),
        json.dumps(
            {"format": "specroute.redis/1", "seconds": 1, "value": ["a", "os.system", ["d", []]]}
        ).encode(),
    ],
)
def test_anything_else_is_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodableValueError):
        decode(data, ALLOWED)
