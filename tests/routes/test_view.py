"""`Prediction` and `RouterView` (`routes/_view.py`): what a policy or predictor sees."""

from __future__ import annotations

import pytest
from specroute.routes import Prediction, RouterView


def test_likeliest_is_the_most_probable_label() -> None:
    prediction = Prediction(probabilities={"a": 0.2, "b": 0.7}, source="test")
    assert prediction.likeliest == "b"
    assert Prediction(probabilities={}).likeliest is None


def test_probabilities_may_leave_room_for_dont_know() -> None:
    prediction = Prediction(probabilities={"a": 0.3})
    assert dict(prediction.probabilities) == {"a": 0.3}


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.5", None])
def test_a_probability_outside_the_unit_interval_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"probability of 'a' must be in \[0, 1\], got"):
        Prediction(probabilities={"a": value})  # type: ignore[dict-item]


def test_probabilities_summing_past_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"must sum to at most 1"):
        Prediction(probabilities={"a": 0.6, "b": 0.6})


def test_probabilities_are_a_read_only_copy() -> None:
    given = {"a": 0.5}
    prediction = Prediction(probabilities=given)
    given["a"] = 0.9
    assert prediction.probabilities["a"] == 0.5
    with pytest.raises(TypeError):
        prediction.probabilities["a"] = 0.1  # type: ignore[index]


def test_views_compare_without_their_memory() -> None:
    one = RouterView(name="r", labels=("a",), branch_sizes={"a": 1}, memory={"counts": 1})
    two = RouterView(name="r", labels=("a",), branch_sizes={"a": 1}, memory={})
    assert one == two
    assert "counts" not in repr(one)


def test_memory_is_the_mapping_given_so_a_predictor_writes_through() -> None:
    memory: dict[str, object] = {}
    view = RouterView(name="r", labels=("a",), branch_sizes={"a": 1}, memory=memory)
    view.memory["asked"] = 1
    assert memory == {"asked": 1}
