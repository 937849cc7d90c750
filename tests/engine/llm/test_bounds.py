"""Answer bounds (`engine/llm/_bounds.py`): the figures the docs quote, and validation."""

from __future__ import annotations

import pytest
from specroute.engine.llm import DEFAULT_BOUNDS, AnswerBounds


def test_default_bounds_are_the_documented_figures() -> None:
    assert AnswerBounds() == DEFAULT_BOUNDS
    assert (DEFAULT_BOUNDS.first_byte, DEFAULT_BOUNDS.between_chunks) == (60.0, 30.0)
    assert DEFAULT_BOUNDS.deadline(64) == pytest.approx(72.8)
    assert DEFAULT_BOUNDS.deadline(1024) == pytest.approx(264.8)
    assert DEFAULT_BOUNDS.max_bytes(64) == 64 * 1024 + 1024 * 1024


def test_bounds_follow_max_tokens() -> None:
    bounds = AnswerBounds(first_byte=1.0, seconds_per_token=0.5, bytes_per_token=10, bytes_margin=5)
    assert bounds.deadline(4) == 3.0
    assert bounds.max_bytes(4) == 45


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("first_byte", 0, "`first_byte` must be a number > 0, got 0"),
        ("between_chunks", -1.0, "`between_chunks` must be a number > 0, got -1.0"),
        ("bytes_per_token", 0, "`bytes_per_token` must be an int >= 1, got 0"),
        ("bytes_margin", 1.5, "`bytes_margin` must be an int >= 1, got 1.5"),
    ],
)
def test_validation_names_the_field(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnswerBounds(**{field: value})
