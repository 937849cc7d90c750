"""Validators for config fields; each message names the field, states the rule, echoes the value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import attrs

__all__ = ["at_least_one", "non_negative", "optional_at_least_one", "optional_positive", "positive"]


def positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Require a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"`{attribute.name}` must be a number > 0, got {value!r}")


def non_negative(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Require a number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"`{attribute.name}` must be a number >= 0, got {value!r}")


def at_least_one(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Require an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{attribute.name}` must be an int >= 1, got {value!r}")


def optional_positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Require `None` or a number > 0."""
    if value is not None:
        positive(instance, attribute, value)


def optional_at_least_one(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Require `None` or an int >= 1."""
    if value is not None:
        at_least_one(instance, attribute, value)
