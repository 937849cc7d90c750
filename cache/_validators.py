"""Validators for cache settings: each names the setting, states the rule, echoes the value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import CacheConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs

__all__: list[str] = []


def _is_number(value: object) -> bool:
    # bool is an int, but `maxsize=True` is a mistake, not a size.
    return isinstance(value, int | float) and not isinstance(value, bool)


def at_least(minimum: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An integer setting that must be >= `minimum` (`None` passes: it means unbounded)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise CacheConfigError(f"`{attribute.name}` must be an int >= {minimum}, got {value!r}")

    return check


def positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A number that must be > 0 (`None` passes: it means the feature is off)."""
    if value is None:
        return
    if not _is_number(value) or not value > 0:
        raise CacheConfigError(f"`{attribute.name}` must be a number > 0, got {value!r}")


def unit_interval(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A cosine similarity threshold, which must lie in (0, 1]."""
    if not _is_number(value) or not 0 < value <= 1:
        raise CacheConfigError(f"`{attribute.name}` must be in (0, 1], got {value!r}")


def non_empty_text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A name or version string, which must be a non-empty `str` (`None` passes)."""
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise CacheConfigError(f"`{attribute.name}` must be a non-empty str, got {value!r}")


def check_namespace(namespace: object) -> None:
    """A run's namespace: a non-empty `str` (a tuple, `None` or `""` would each make a
    silent partition of their own)."""
    if not isinstance(namespace, str) or not namespace:
        raise CacheConfigError(
            f"`namespace` must be a non-empty str naming the tenant (such as 'acme'), got"
            f" {namespace!r}; entries in one namespace are never seen from another"
        )
