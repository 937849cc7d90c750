"""Config validators (`engine/llm/_checks.py`): each names the field, rule and value."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from specroute.engine.llm._checks import (
    at_least_one,
    non_negative,
    optional_at_least_one,
    optional_positive,
    positive,
)


@attrs.frozen(kw_only=True)
class Config:
    rate: float = attrs.field(default=1.0, validator=positive)
    delay: float = attrs.field(default=0.0, validator=non_negative)
    attempts: int = attrs.field(default=1, validator=at_least_one)
    deadline: float | None = attrs.field(default=None, validator=optional_positive)
    slots: int | None = attrs.field(default=None, validator=optional_at_least_one)


def test_good_values_pass() -> None:
    Config(rate=0.1, delay=0, attempts=3, deadline=2, slots=1)
    Config(deadline=None, slots=None)


@pytest.mark.parametrize("value", [0, -1, True, "1", None])
def test_positive(value: Any) -> None:
    with pytest.raises(ValueError, match=rf"`rate` must be a number > 0, got {value!r}"):
        Config(rate=value)


@pytest.mark.parametrize("value", [-0.5, False, "0"])
def test_non_negative(value: Any) -> None:
    with pytest.raises(ValueError, match=r"`delay` must be a number >= 0, got"):
        Config(delay=value)


@pytest.mark.parametrize("value", [0, 1.0, True, "2"])
def test_at_least_one_wants_an_int(value: Any) -> None:
    with pytest.raises(ValueError, match=r"`attempts` must be an int >= 1, got"):
        Config(attempts=value)


def test_optional_checks_pass_none_and_check_the_rest() -> None:
    with pytest.raises(ValueError, match=r"`deadline` must be a number > 0, got 0"):
        Config(deadline=0)
    with pytest.raises(ValueError, match=r"`slots` must be an int >= 1, got 0"):
        Config(slots=0)
