"""Keys: different canonical inputs never share a key; dict order never changes one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import given
from hypothesis import strategies as st
from specroute.cache import make_key

if TYPE_CHECKING:
    import random

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()


def values() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.lists(inner, max_size=4).map(tuple)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=12,
    )


def canonical(value: Any) -> Any:
    """A comparable form that keeps every distinction the key makes."""
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, int | str | bytes):
        return (type(value).__name__, value)
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(canonical(item) for item in value))
    items = sorted((repr(canonical(k)), canonical(v)) for k, v in value.items())
    return ("dict", tuple(items))


INPUTS = st.dictionaries(st.text(max_size=5), values(), max_size=4)


@given(INPUTS, INPUTS)
def test_different_canonical_inputs_never_share_a_key(
    left: dict[str, Any], right: dict[str, Any]
) -> None:
    same_key = make_key("s", "1", "n", left) == make_key("s", "1", "n", right)
    assert same_key == (canonical(left) == canonical(right))


@given(INPUTS, st.randoms(use_true_random=False))
def test_dict_key_order_never_changes_a_key(inputs: dict[str, Any], rng: random.Random) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list | tuple):
            return type(value)(shuffled(item) for item in value)
        return value

    assert make_key("s", "1", "n", inputs) == make_key("s", "1", "n", shuffled(inputs))
