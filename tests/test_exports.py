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


def test_each_public_name_is_defined_once_and_gathered_by_the_engine() -> None:
    """A name is exported by at most one package besides `specroute.engine`, which gathers
    what flow authors need; wherever it is exported, it is the same object."""
    seen: dict[str, tuple[str, object]] = {}
    engine = importlib.import_module("specroute.engine")
    for name in PACKAGES[1:]:
        module = importlib.import_module(name)
        for attr in module.__all__:
            assert attr not in seen, f"{attr} exported by both {seen[attr][0]} and {name}"
            seen[attr] = (name, getattr(module, attr))
    for attr in engine.__all__:
        if attr in seen:
            assert getattr(engine, attr) is seen[attr][1], f"engine.{attr} is another object"


FLOW_AUTHOR_NAMES = [
    "Flow", "step", "router", "Route", "Always", "Never", "Branches", "PredictivePolicy",
    "CacheOptions", "open_cache", "LearnedState", "SpecrouteError", "FlowError", "RunError",
    "StepFailedError", "RunTimeoutError", "UnknownRouteError", "HandoffError",
    "MissingInputError", "UnknownInputError", "CacheError", "LLMError",
]  # fmt: skip


@pytest.mark.parametrize("attr", FLOW_AUTHOR_NAMES)
def test_flow_authors_import_from_the_engine(attr: str) -> None:
    assert attr in importlib.import_module("specroute.engine").__all__


@pytest.mark.parametrize("name", ["specroute.engine.llm", "specroute.routes", "specroute.cache"])
def test_every_error_and_the_cache_protocol_are_gathered_by_the_engine(name: str) -> None:
    # An error a run raises, or one it chains as a failed step's cause (a spend cap, Redis
    # down), or a warning it emits, is caught by importing it from the one namespace.
    # (`specroute.engine.report`'s `RunLogError` comes from reading a log, not from a run.)
    engine = set(importlib.import_module("specroute.engine").__all__)
    module = importlib.import_module(name)
    errors = {
        attr
        for attr in module.__all__
        if inspect.isclass(getattr(module, attr))
        and issubclass(getattr(module, attr), BaseException)
    }
    assert errors - engine == set()
    assert {"StepCache", "CacheHit", "CacheMiss", "CacheStatistics"} <= engine


@pytest.mark.parametrize("name", PACKAGES)
def test_reprs_show_the_public_module(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ in PACKAGES, f"{name}.{attr} shows {obj.__module__}"


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"
