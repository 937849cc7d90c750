"""Stored values (`cache/_values.py`): scalars as they are, everything else as a pickle."""

from __future__ import annotations

import pickle
import threading

import pytest
from specroute.cache import UncacheableValueError
from specroute.cache._values import snapshot


@pytest.mark.parametrize("value", [None, True, 3, 2.5, 1j, "text", b"bytes"])
def test_immutable_scalars_are_kept_as_they_are(value: object) -> None:
    stored = snapshot(value, where="k")
    assert stored.pickled is None
    assert stored.value() is value


def test_containers_are_pickled_and_each_get_is_a_fresh_copy() -> None:
    result = {"items": [1, 2], "meta": {"n": 1}}
    stored = snapshot(result, where="k")
    assert stored.pickled is not None
    first = stored.value()
    assert first == result
    first["items"].append(3)
    assert stored.value() == {"items": [1, 2], "meta": {"n": 1}}
    assert stored.value() is not stored.value()


def test_the_producer_cannot_change_what_was_stored() -> None:
    result = [1, 2]
    stored = snapshot(result, where="k")
    result.append(3)
    assert stored.value() == [1, 2]


def test_size_is_the_pickles_byte_length() -> None:
    result = {"text": "x" * 1000}
    stored = snapshot(result, where="k")
    assert stored.size == len(stored.pickled or b"")
    assert stored.size == len(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    assert snapshot("abc", where="k").size > 0


class Label(str):
    """A str subclass may carry mutable state, so it is not an immutable scalar."""


def test_a_subclass_of_a_scalar_is_pickled_not_trusted() -> None:
    original = Label("a")
    stored = snapshot(original, where="k")
    assert stored.pickled is not None
    copy = stored.value()
    assert copy == "a"
    assert type(copy) is Label
    assert copy is not original


def test_an_unpicklable_result_names_where_and_how_to_fix() -> None:
    expected = r"step 'search'.*return picklable data"
    with pytest.raises(UncacheableValueError, match=expected) as info:
        snapshot({"lock": threading.Lock()}, where="step 'search'")
    assert isinstance(info.value.__cause__, TypeError)
