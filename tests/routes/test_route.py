"""`Route` (`routes/_route.py`): a label plus handed-over values, frozen and picklable."""

from __future__ import annotations

import pickle

import attrs
import pytest
from specroute.routes import Route


def test_a_route_carries_its_label_and_values() -> None:
    route = Route("reuse", workflow={"id": 7})
    assert route.label == "reuse"
    assert dict(route.values) == {"workflow": {"id": 7}}


def test_values_are_read_only_and_a_copy_of_what_was_given() -> None:
    given = {"workflow": 1}
    route = Route("reuse", **given)
    given["workflow"] = 2
    assert route.values["workflow"] == 1
    with pytest.raises(TypeError):
        route.values["workflow"] = 3  # type: ignore[index]


def test_a_route_is_frozen() -> None:
    route = Route("a")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        route.label = "b"  # type: ignore[misc]


@pytest.mark.parametrize("label", ["", None, 3])
def test_label_must_be_a_non_empty_str(label: object) -> None:
    with pytest.raises(TypeError, match=r"`label` must be a non-empty str, got"):
        Route(label)  # type: ignore[arg-type]


def test_routes_compare_by_label_and_values() -> None:
    assert Route("a", x=1) == Route("a", x=1)
    assert Route("a", x=1) != Route("a", x=2)
    assert Route("a") != Route("b")


def test_a_route_survives_a_pickle_round_trip() -> None:
    route = Route("generate", plan=[1, 2], note="n")
    copy = pickle.loads(pickle.dumps(route))
    assert copy == route
    assert isinstance(copy, Route)
    with pytest.raises(TypeError):
        copy.values["plan"] = []  # type: ignore[index]
