"""Step definitions and their options."""

from __future__ import annotations

import pytest
from specroute.engine import StepOptions, step


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
