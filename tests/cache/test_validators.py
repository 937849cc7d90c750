"""Cache setting validators (`cache/_validators.py`): name, rule and value in every message."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from specroute.cache import CacheConfigError
from specroute.cache._validators import (
    at_least,
    check_namespace,
    non_empty_text,
    positive,
    unit_interval,
)


@attrs.frozen(kw_only=True)
class Settings:
    maxsize: int | None = attrs.field(default=None, validator=at_least(1))
    ttl: float | None = attrs.field(default=None, validator=positive)
    threshold: float = attrs.field(default=0.95, validator=unit_interval)
    version: str | None = attrs.field(default=None, validator=non_empty_text)


def test_good_settings_and_unset_ones_pass() -> None:
    Settings()
    Settings(maxsize=1, ttl=0.5, threshold=1.0, version="v2")
    Settings(ttl=3)  # an int is a number too


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "4"])
def test_at_least_refuses_small_non_int_and_bool(value: Any) -> None:
    with pytest.raises(CacheConfigError, match=rf"`maxsize` must be an int >= 1, got {value!r}"):
        Settings(maxsize=value)


@pytest.mark.parametrize("value", [0, -0.1, True, "1"])
def test_positive_refuses_zero_negative_bool_and_text(value: Any) -> None:
    with pytest.raises(CacheConfigError, match=r"`ttl` must be a number > 0, got"):
        Settings(ttl=value)


@pytest.mark.parametrize("value", [0, 0.0, 1.01, -0.5, None, False])
def test_unit_interval_is_open_at_zero_and_closed_at_one(value: Any) -> None:
    with pytest.raises(CacheConfigError, match=r"`threshold` must be in \(0, 1\], got"):
        Settings(threshold=value)


@pytest.mark.parametrize("value", ["", 3, b"v1"])
def test_non_empty_text_refuses_empty_and_non_str(value: Any) -> None:
    with pytest.raises(CacheConfigError, match=r"`version` must be a non-empty str, got"):
        Settings(version=value)


def test_errors_are_value_errors_for_generic_callers() -> None:
    with pytest.raises(ValueError, match=r"`maxsize`"):
        Settings(maxsize=0)


@pytest.mark.parametrize("namespace", [None, 0, "", ("acme",), ["acme"], b"acme"])
def test_check_namespace_refuses_anything_but_a_non_empty_str(namespace: Any) -> None:
    with pytest.raises(CacheConfigError, match=r"`namespace` must be a non-empty str") as info:
        check_namespace(namespace)
    assert repr(namespace) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_check_namespace_accepts_a_tenant() -> None:
    check_namespace("acme")
