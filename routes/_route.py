"""The value a router step returns: which branch to take, and what to hand it."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Route"]


def _freeze(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@attrs.frozen(init=False)
class Route:
    """A routing decision: the branch label, plus values handed over to that branch.

    A router step returns one. The handed-over values become inputs of the chosen branch, so
    a branch step that reads them starts only once the route is known.

    Args:
        label: The branch to take.
        **values: Values handed to that branch (for example the workflow discovery found).
    """

    label: str
    values: Mapping[str, Any] = attrs.field(converter=_freeze)

    def __init__(self, label: str, /, **values: Any) -> None:
        if not isinstance(label, str) or not label:
            raise TypeError(f"`label` must be a non-empty str, got {label!r}")
        self.__attrs_init__(label, values)

    def __reduce__(self) -> tuple[Any, ...]:
        # The read-only mapping cannot be pickled; caches store routes by pickling them.
        return (_rebuild, (self.label, dict(self.values)))


def _rebuild(label: str, values: dict[str, Any]) -> Route:
    return Route(label, **values)
