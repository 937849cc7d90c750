"""Cache keys: canonical encoding, type distinctions, unencodable inputs, annotations."""

from __future__ import annotations

import collections
import dataclasses
import enum
import socket
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NamedTuple, Protocol

import attrs
import httpx
import pytest
from specroute.cache import (
    CacheConfigError,
    CacheKey,
    StepIdentity,
    UnencodableInputError,
    make_key,
)
from specroute.cache._key import is_never_encodable
from specroute.routes import SpecrouteError


@attrs.frozen
class Request:
    text: str
    tags: list[Any]


@attrs.frozen
class OtherRequest:
    text: str
    tags: list[Any]


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = 1


class Plain:
    pass


class Pair(NamedTuple):
    first: int
    second: int


class Label(str):
    __slots__ = ()


class UserId(int):
    __slots__ = ()


class Seconds(float):
    __slots__ = ()


class Items(list[int]):
    pass


class Readable(Protocol):
    def read(self) -> str: ...


def key(inputs: dict[str, Any], **overrides: str) -> CacheKey:
    where = {"step": "discovery", "version": "1", "namespace": "acme"} | overrides
    return make_key(where["step"], where["version"], where["namespace"], inputs)


def test_equal_inputs_give_equal_keys() -> None:
    assert key({"request": "hello", "n": 3}) == key({"request": "hello", "n": 3})


def test_dict_key_order_does_not_change_the_key() -> None:
    first = key({"a": 1, "b": {"x": 1, "y": [1, 2]}})
    second = key({"b": {"y": [1, 2], "x": 1}, "a": 1})
    assert first == second


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (1, "1"),
        (1.0, True),
        (0, False),
        (None, "None"),
        (None, 0),
        ([1, 2], (1, 2)),
        ([1, 2], [2, 1]),
        ({1, 2}, [1, 2]),
        (b"ab", "ab"),
        (0.0, -0.0),
        ("ab", ["a", "b"]),
        ({"a": 1}, [("a", 1)]),
        (Color.RED, 1),
        (b"ab", bytearray(b"ab")),
        ({1, 2}, frozenset({1, 2})),
        ({"a": 1}, collections.OrderedDict(a=1)),
        ({"a": 1}, types.MappingProxyType({"a": 1})),
        ({"a": 1}, collections.defaultdict(int, a=1)),
        ({"a": 1}, collections.Counter(a=1)),
        ((1, 2), Pair(1, 2)),
        ("ab", Label("ab")),
        (1, UserId(1)),
        (1.5, Seconds(1.5)),
        ([1], Items([1])),
        (collections.OrderedDict(a=1, b=2), collections.OrderedDict(b=2, a=1)),
    ],
)
def test_different_values_give_different_keys(left: object, right: object) -> None:
    assert key({"x": left}) != key({"x": right})


@pytest.mark.parametrize(
    "overrides",
    [{"step": "browsing"}, {"version": "2"}, {"namespace": "globex"}],
)
def test_step_version_and_namespace_are_part_of_the_key(overrides: dict[str, str]) -> None:
    assert key({"x": 1}) != key({"x": 1}, **overrides)


def test_argument_names_are_part_of_the_key() -> None:
    assert key({"a": 1}) != key({"b": 1})


def test_a_plain_dict_and_its_kind_keep_their_own_keys() -> None:
    # Exact types are kept apart, but each type keeps its own equalities.
    assert key({"x": {"a": 1, "b": 2}}) == key({"x": {"b": 2, "a": 1}})
    assert key({"x": bytearray(b"ab")}) == key({"x": bytearray(b"ab")})
    assert key({"x": frozenset({1, 2})}) == key({"x": frozenset({2, 1})})
    assert key({"x": Label("ab")}) == key({"x": Label("ab")})
    assert key({"x": collections.Counter("ab")}) == key({"x": collections.Counter("ba")})


def test_attrs_instances_encode_by_class_and_fields() -> None:
    assert key({"r": Request("hi", [1])}) == key({"r": Request("hi", [1])})
    assert key({"r": Request("hi", [1])}) != key({"r": Request("hi", [2])})
    assert key({"r": Request("hi", [1])}) != key({"r": OtherRequest("hi", [1])})


def test_dataclass_instances_encode_by_fields() -> None:
    assert key({"p": Point(1, 2)}) == key({"p": Point(1, 2)})
    assert key({"p": Point(1, 2)}) != key({"p": Point(2, 1)})


def test_nan_and_infinities_are_encodable() -> None:
    assert key({"x": float("nan")}) == key({"x": float("nan")})
    assert key({"x": float("inf")}) != key({"x": float("-inf")})


def test_unencodable_value_names_step_and_argument_path() -> None:
    with socket.socket() as sock, pytest.raises(UnencodableInputError) as info:
        key({"request": Request("hi", ["a", "b", sock])})
    message = str(info.value)
    assert "step 'discovery'" in message
    assert "argument 'request.tags[2]'" in message
    assert "cannot encode object of type socket" in message
    assert info.value.path == "request.tags[2]"
    assert isinstance(info.value, SpecrouteError)


def test_unencodable_value_inside_a_dict_names_the_dict_key() -> None:
    with pytest.raises(UnencodableInputError, match=r"argument \"options\['send'\]\""):
        key({"options": {"send": print}})


def test_a_value_that_contains_itself_is_unencodable() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    with pytest.raises(UnencodableInputError, match="contains itself"):
        key({"x": looped})


def test_the_same_list_twice_is_not_a_cycle() -> None:
    shared = [1, 2]
    assert key({"x": [shared, shared]}) == key({"x": [[1, 2], [1, 2]]})


def test_keys_are_the_same_in_another_process() -> None:
    script = (
        "from specroute.cache import make_key;"
        "print(make_key('s', '1', 'n', {'b': {'y': 2.5, 'x': None}, 'a': [1, 'é']}).digest)"
    )
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    here = make_key("s", "1", "n", {"a": [1, "é"], "b": {"x": None, "y": 2.5}}).digest
    assert other == here


@pytest.mark.parametrize(
    "annotation",
    [
        socket.socket,
        httpx.AsyncClient,
        Plain,
        Callable[[int], int],
        Iterator[int],
        socket.socket | Plain,
    ],
)
def test_annotations_that_can_never_be_encoded(annotation: object) -> None:
    assert is_never_encodable(annotation)


@pytest.mark.parametrize(
    "annotation",
    [
        Any,
        object,
        str,
        int,
        bool,
        None,
        type(None),
        "Request",
        Request,
        Point,
        Color,
        list[socket.socket],
        dict[str, Plain],
        socket.socket | None,
        Annotated[str, "doc"],
        Readable,
        tuple[int, ...],
    ],
)
def test_annotations_that_may_be_encodable(annotation: object) -> None:
    assert not is_never_encodable(annotation)


def test_annotated_unencodable_is_never_encodable() -> None:
    assert is_never_encodable(Annotated[socket.socket, "doc"])


async def summarize(text: str) -> str:
    return text


def test_a_step_identity_names_its_function() -> None:
    identity = StepIdentity.of("summarize", summarize, None)
    assert identity == StepIdentity("summarize", f"{__name__}.summarize")
    assert str(identity) == f"summarize ({__name__}.summarize)"


def test_an_explicit_cache_name_is_an_identity_without_a_function() -> None:
    assert StepIdentity.of("summarize", summarize, "summary") == StepIdentity("summary")
    assert make_key("summary", "1", "n", {}) == make_key(StepIdentity("summary"), "1", "n", {})


@pytest.mark.parametrize(
    "other",
    [
        StepIdentity("summarize", f"{__name__}.other"),
        StepIdentity("brief", f"{__name__}.summarize"),
        StepIdentity("summarize"),
    ],
)
def test_identities_differing_in_name_or_function_give_different_keys(other: StepIdentity) -> None:
    own = StepIdentity.of("summarize", summarize, None)
    assert make_key(own, "1", "n", {"x": 1}) != make_key(other, "1", "n", {"x": 1})
    assert make_key(own, "1", "n", {}).partition != make_key(other, "1", "n", {}).partition


def test_dependencies_are_part_of_the_key_and_of_its_partition() -> None:
    small = make_key("s", "1", "n", {"x": 1}, depends_on={"model": "small"})
    large = make_key("s", "1", "n", {"x": 1}, depends_on={"model": "large"})
    assert small != large
    assert small.partition != large.partition
    assert make_key("s", "1", "n", {"x": 1}, depends_on={}) == make_key("s", "1", "n", {"x": 1})


def test_inputs_are_not_part_of_the_partition() -> None:
    assert key({"x": 1}).partition == key({"x": 2}).partition
    assert key({"x": 1}).partition != key({"x": 1}, namespace="globex").partition


def test_a_key_refuses_a_namespace_that_is_not_a_non_empty_str() -> None:
    with pytest.raises(CacheConfigError, match="`namespace` must be a non-empty str"):
        make_key("s", "1", "", {})
