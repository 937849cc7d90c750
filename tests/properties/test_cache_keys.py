"""Keys: distinct values never share a key; dict order never changes one.

"Distinct" is the encoder's documented rule (`specroute.cache._key`): values of different
exact types are distinct (`bytes`/`bytearray`, `set`/`frozenset`, `dict`/`OrderedDict`, a
`str` and a `str` subclass), and within a type, values that differ as data (`0.0`/`-0.0`,
an `OrderedDict`'s order). `canonical` below restates that rule independently of the
encoder: two inputs share a key exactly when their canonical forms are equal.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from hypothesis import given
from hypothesis import strategies as st
from specroute.cache import CacheOptions, StepIdentity, make_key

if TYPE_CHECKING:
    import random


class Label(str):
    """A `str` subclass: its own type, so never the key of the plain `str`."""

    __slots__ = ()


STEP = StepIdentity("s", "tests.s")
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.text(max_size=3).map(Label)
    | st.binary()
    | st.binary().map(bytearray)
)
HASHABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3) | st.binary(),
    lambda inner: st.frozensets(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)


def values() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.lists(inner, max_size=4).map(tuple)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4).map(collections.OrderedDict)
            | st.sets(HASHABLE, max_size=3)
            | st.frozensets(HASHABLE, max_size=3)
        ),
        max_leaves=12,
    )


def canonical(value: Any) -> Any:
    """A comparable form that keeps every distinction the key promises to make."""
    kind = type(value).__qualname__
    if isinstance(value, float):
        return (kind, repr(value))
    if value is None or isinstance(value, bool | int | str | bytes | bytearray):
        return (kind, bytes(value) if isinstance(value, bytearray) else value)
    if isinstance(value, list | tuple):
        return (kind, tuple(canonical(item) for item in value))
    if isinstance(value, set | frozenset):
        return (kind, tuple(sorted((canonical(item) for item in value), key=repr)))
    items = [(canonical(k), canonical(v)) for k, v in value.items()]
    if isinstance(value, collections.OrderedDict):
        return (kind, tuple(items))  # an OrderedDict's order is part of its value
    return (kind, tuple(sorted(items, key=repr)))


INPUTS = st.dictionaries(st.text(max_size=5), values(), max_size=4)


def key_of(inputs: dict[str, Any]) -> Any:
    return make_key(STEP, "1", "n", inputs)


@given(INPUTS, INPUTS)
def test_distinct_values_never_share_a_key(left: dict[str, Any], right: dict[str, Any]) -> None:
    same_key = key_of(left) == key_of(right)
    assert same_key == (canonical(left) == canonical(right))


@given(values(), values())
def test_distinct_single_values_never_share_a_key(left: Any, right: Any) -> None:
    # One argument each, so the strategy meets pairs of close values often.
    same_key = key_of({"x": left}) == key_of({"x": right})
    assert same_key == (canonical(left) == canonical(right))


@given(values())
def test_a_value_and_its_builtin_twin_never_share_a_key(value: Any) -> None:
    twins = {
        bytes: bytearray,
        bytearray: bytes,
        set: frozenset,
        frozenset: set,
        dict: collections.OrderedDict,
        collections.OrderedDict: dict,
        str: Label,
        Label: str,
    }
    twin = twins.get(type(value))
    if twin is not None:
        assert key_of({"x": value}) != key_of({"x": twin(value)})


@given(INPUTS, st.randoms(use_true_random=False))
def test_dict_key_order_never_changes_a_key(inputs: dict[str, Any], rng: random.Random) -> None:
    def shuffled(value: Any) -> Any:
        if type(value) is dict:
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list | tuple):
            return type(value)(shuffled(item) for item in value)
        return value

    assert key_of(inputs) == key_of(shuffled(inputs))


@given(
    st.dictionaries(st.text(max_size=5), values(), max_size=3),
    st.dictionaries(st.text(max_size=5), values(), max_size=3),
)
def test_different_dependencies_never_share_a_key(
    left: dict[str, Any], right: dict[str, Any]
) -> None:
    keys = [
        make_key(STEP, "1", "n", {"q": 1}, depends_on=CacheOptions(depends_on=d).depends_on)
        for d in (left, right)
    ]
    assert (keys[0] == keys[1]) == (canonical(left) == canonical(right))
