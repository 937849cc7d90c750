"""`Mode` (`engine/_mode.py`): the three scheduling modes and how a string becomes one."""

from __future__ import annotations

import pytest
from specroute.engine import Mode
from specroute.routes import FlowError


@pytest.mark.parametrize("mode", list(Mode))
def test_a_mode_parses_from_its_value_and_from_itself(mode: Mode) -> None:
    assert Mode.parse(mode.value) is mode
    assert Mode.parse(mode) is mode


def test_the_modes_are_the_three_the_readme_names() -> None:
    assert [mode.value for mode in Mode] == ["sequential", "parallel", "speculative"]
    assert Mode.SPECULATIVE == "speculative"  # a StrEnum compares with its value


@pytest.mark.parametrize("value", ["Sequential", "fast", ""])
def test_an_unknown_mode_is_a_flow_error_listing_the_modes(value: str) -> None:
    expected = r"`mode` must be one of 'sequential', 'parallel', 'speculative', got"
    with pytest.raises(FlowError, match=expected) as info:
        Mode.parse(value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
