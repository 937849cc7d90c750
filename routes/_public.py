"""Show each public name under the namespace users import it from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

__all__ = ["show_public_module"]


def show_public_module(
    package: str, namespace: MutableMapping[str, Any], names: Iterable[str]
) -> None:
    """Set `__module__` of the classes and functions among `names` to `package`, so reprs,
    tracebacks and docs show `specroute.engine.Flow`, not `specroute.engine._flow.Flow`
    (trio does the same). Only names defined in one of our own modules are touched."""
    for name in names:
        obj = namespace.get(name)
        named = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__"))
        if named and getattr(obj, "__module__", "").startswith("specroute."):
            obj.__module__ = package
