"""`CacheOptions` (`cache/_options.py`): what a step's answer depends on, its cache name."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from specroute.cache import CacheConfigError, CacheOptions


def test_depends_on_is_a_read_only_copy() -> None:
    given = {"model": "gpt-4o-mini", "temperature": 0.2}
    options = CacheOptions(depends_on=given)
    given["model"] = "another"
    assert options.depends_on == {"model": "gpt-4o-mini", "temperature": 0.2}
    with pytest.raises(TypeError):
        options.depends_on["model"] = "another"  # type: ignore[index]


def test_options_with_dependencies_stay_hashable_and_comparable() -> None:
    tools = [{"name": "search", "parameters": {"q": "str"}}]
    first = CacheOptions(depends_on={"tools": tools})
    second = CacheOptions(depends_on={"tools": [{"name": "search", "parameters": {"q": "str"}}]})
    assert first == second
    assert hash(first) == hash(second)
    assert first != CacheOptions(depends_on={"tools": []})


@pytest.mark.parametrize("value", [["model"], "gpt-4o-mini", None])
def test_depends_on_must_be_a_mapping(value: Any) -> None:
    with pytest.raises(CacheConfigError, match=r"`depends_on` must be a mapping") as info:
        CacheOptions(depends_on=value)
    assert repr(value) in str(info.value)


def test_depends_on_must_be_plain_data_and_names_the_bad_value() -> None:
    with socket.socket() as sock, pytest.raises(CacheConfigError) as info:
        CacheOptions(depends_on={"client": sock})
    assert "`depends_on`, argument \"depends_on['client']\"" in str(info.value)
    assert "cannot encode object of type socket" in str(info.value)


def test_depends_on_names_must_be_str() -> None:
    with pytest.raises(CacheConfigError, match="names must be str"):
        CacheOptions(depends_on={1: "gpt-4o-mini"})


@pytest.mark.parametrize("name", ["", 3])
def test_a_cache_name_is_a_non_empty_str(name: Any) -> None:
    with pytest.raises(CacheConfigError, match=r"`name` must be a non-empty str"):
        CacheOptions(name=name)
