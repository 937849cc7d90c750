"""The public surface: `__all__` sorted and complete; each name exported by one package."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "specroute.engine",
    "specroute.engine.llm",
    "specroute.engine.report",
    "specroute.routes",
    "specroute.cache",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    public = {
        attr
        for attr in vars(module)
        if not attr.startswith("_") and not inspect.ismodule(getattr(module, attr))
    }
    assert public == set(exported)


def test_each_public_name_comes_from_one_package() -> None:
    seen: dict[str, str] = {}
    for name in PACKAGES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            assert attr not in seen, f"{attr} exported by both {seen[attr]} and {name}"
            seen[attr] = name


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"
