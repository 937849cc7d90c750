"""`show_public_module` (`routes/_public.py`): our classes and functions show the namespace
users import them from; nothing else in the namespace is touched."""

from __future__ import annotations

import collections
import functools
from typing import Any

from specroute.routes._public import show_public_module

OURS = "specroute.fake._thing"


def ours() -> dict[str, Any]:
    """A namespace like a package's after its imports: a class and a function of one of our
    modules, a callable instance of one of our classes, and things that are not ours."""

    class Thing:
        def __call__(self) -> None:
            pass

    def helper() -> None:
        pass

    Thing.__module__ = helper.__module__ = OURS
    return {
        "Thing": Thing,
        "helper": helper,
        "instance": Thing(),
        "partial": functools.partial(helper),
        "Counter": collections.Counter,
        "LIMIT": 3,
    }


def test_our_classes_and_functions_show_the_package() -> None:
    namespace = ours()
    show_public_module("specroute.fake", namespace, ["Thing", "helper"])
    assert namespace["Thing"].__module__ == "specroute.fake"
    assert namespace["helper"].__module__ == "specroute.fake"
    thing = namespace["Thing"]
    assert repr(thing) == f"<class 'specroute.fake.{thing.__qualname__}'>"


def test_only_the_names_given_are_touched() -> None:
    namespace = ours()
    show_public_module("specroute.fake", namespace, ["helper"])
    assert namespace["helper"].__module__ == "specroute.fake"
    assert namespace["Thing"].__module__ == OURS


def test_what_is_not_a_class_or_function_of_ours_is_left_alone() -> None:
    namespace = ours()
    show_public_module(
        "specroute.fake", namespace, ["instance", "partial", "Counter", "LIMIT", "missing"]
    )
    # A callable instance has no name of its own to show: it keeps reading its class's.
    assert "__module__" not in vars(namespace["instance"])
    assert namespace["instance"].__module__ == OURS
    assert "__module__" not in vars(namespace["partial"])
    assert collections.Counter.__module__ == "collections"
    assert namespace["LIMIT"] == 3
    assert "missing" not in namespace


def test_a_module_that_only_starts_like_ours_is_not_ours() -> None:
    class Plugin:
        pass

    Plugin.__module__ = "specroute_plugins._plugin"
    show_public_module("specroute.fake", {"Plugin": Plugin}, ["Plugin"])
    assert Plugin.__module__ == "specroute_plugins._plugin"
