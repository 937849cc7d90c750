"""Step definitions and their options."""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

import pytest
from specroute.engine import Flow, Route, StepOptions, router, step
from specroute.engine._step import takes_by_position

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def test_step_reads_parameters_and_can_be_called_directly() -> None:
    @step(output="total", timeout=2)
    async def add(x: int, y: int = 1) -> int:
        return x + y

    assert add.params == ("x", "y")
    assert add.optional == {"y"}
    assert add.output == "total"
    assert await add(x=2) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, r"`timeout` must be None or a number > 0, got 0"),
        ({"estimated_dollars": -1}, r"`estimated_dollars` must be None or a number >= 0"),
        ({"output": "not an id"}, r"`output` must be None or an identifier"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StepOptions(**options)  # type: ignore[arg-type]


def test_options_and_single_options_do_not_mix() -> None:
    from specroute.routes import StepDefinitionError

    with pytest.raises(StepDefinitionError, match="not both"):

        @step(timeout=1, options=StepOptions())
        async def nope() -> None:
            return None


def _forged(names: tuple[str, ...]) -> Callable[..., Awaitable[tuple[Any, ...]]]:
    """A function that takes only keywords, declaring the parameters `names` (in order)."""

    async def by_name(**values: Any) -> tuple[Any, ...]:
        return tuple(sorted(values.items()))

    by_name.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
    )
    return by_name


def _wrapped(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(**values: Any) -> Any:
        return await fn(**values)

    return wrapper


async def _pair(b: int, a: int) -> tuple[int, int]:
    return (b, a)


async def _one(a: int) -> int:
    return a


async def _keywords(*, a: int, b: int) -> tuple[int, int]:
    return (a, b)


async def _defaulted(a: int, b: int = 7) -> tuple[int, int]:
    return (a, b)


class _Steps:
    async def pair(self, b: int, a: int) -> tuple[int, int]:
        return (b, a)

    @staticmethod
    async def static(b: int, a: int) -> tuple[int, int]:
        return (b, a)


_steps = _Steps()


@pytest.mark.parametrize(
    ("fn", "by_position"),
    [
        (_pair, True),
        (_one, True),
        (_defaulted, True),
        (_steps.pair, True),
        (_steps.static, True),
        (_keywords, False),
        (_forged(("a", "b")), False),
        (_wrapped(_pair), False),
    ],
)
def test_a_plain_function_is_passed_its_inputs_by_position(
    fn: Callable[..., Awaitable[Any]], by_position: bool
) -> None:
    made = step(name="s")(fn)
    assert (made.pick is not None) is by_position
    assert takes_by_position(made.fn, made.params) is by_position


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (_pair, (2, 1)),
        (_one, 1),
        (_steps.pair, (2, 1)),
        (_keywords, (1, 2)),
        (_forged(("b", "a")), (("a", 1), ("b", 2))),
        (_wrapped(_pair), (2, 1)),
    ],
)
async def test_every_way_of_passing_inputs_gives_each_parameter_its_value(
    fn: Callable[..., Awaitable[Any]], expected: Any
) -> None:
    # Inputs of the run's top scope (the by-position path) and inputs a branch reads from
    # its parent (by name, through `gather`) give the same value.
    made = step(name="s", output="out")(fn)
    reads = made.params
    direct = await Flow([made]).run(**{name: {"a": 1, "b": 2}[name] for name in reads})
    assert direct.outputs["out"] == expected

    @step
    async def route() -> Route:
        return Route("go")

    routed = router(route, {"go": [step(name="s", output="out")(fn)]})
    nested = await Flow([routed]).run(**{name: {"a": 1, "b": 2}[name] for name in reads})
    assert nested.outputs["out"] == expected


async def test_a_missing_optional_input_is_left_to_its_default() -> None:
    made = step(name="s", output="out")(_defaulted)
    assert made.pick is not None
    result = await Flow([made]).run(a=1)
    assert result.outputs["out"] == (1, 7)
