"""Every configuration error is a `SpecrouteError`, raised when the object is built or before
the run starts, naming the argument and echoing the bad value.

A value out of range raises `ConfigurationError` (also a `ValueError`); a value of the wrong
kind (a string where a list of names is expected, something that is not a policy, cache,
predictor or observer) raises `ConfigurationTypeError` (also a `TypeError`). Run arguments
are checked in every mode, even those the mode does not use.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import (
    Always,
    Branches,
    ConfigurationError,
    ConfigurationTypeError,
    Flow,
    SpecrouteError,
    StepOptions,
    UnknownBranchError,
    router,
    step,
)
from specroute.routes import Route

if TYPE_CHECKING:
    from collections.abc import Callable

MODES = ("sequential", "parallel", "speculative")
CAP_RULE = r"`max_concurrency` must be None, an int >= 1 or a trio.CapacityLimiter"


@step
async def pick(request: str) -> Route:
    return Route("left")


@step(output="answer")
async def left(request: str) -> str:
    return "left"


@step(name="right", output="answer")
async def right(request: str) -> str:
    return "right"


def shown(value: object) -> str:
    """How a message echoes `value`, as a regex."""
    return re.escape(repr(value))


# -- run arguments: checked before any step runs, in every mode --------------------------------


class _CacheWithoutStatistics:
    """A cache missing the one method the engine calls after the run: refused before it."""

    async def lookup(self, *args: object) -> None: ...

    async def compute_once(self, *args: object) -> None: ...

    async def store(self, *args: object, **kwargs: object) -> None: ...


RUN_CASES = [
    *(
        pytest.param(
            {"max_concurrency": value},
            ConfigurationError,
            rf"{CAP_RULE}, got {shown(value)}",
            id=f"max_concurrency={value!r}",
        )
        for value in (0, -1)
    ),
    *(
        pytest.param(
            {"max_concurrency": value},
            ConfigurationTypeError,
            rf"{CAP_RULE}, got {shown(value)}",
            id=f"max_concurrency={value!r}",
        )
        for value in ("3", 2.5, True)
    ),
    *(
        pytest.param(
            {"timeout": value},
            ConfigurationError,
            rf"`timeout` must be None or a number of seconds > 0, got {shown(value)}",
            id=f"timeout={value!r}",
        )
        for value in (-1, 0, math.nan)
    ),
    *(
        pytest.param(
            {"timeout": value},
            ConfigurationTypeError,
            rf"`timeout` must be None or a number of seconds > 0, got {shown(value)}",
            id=f"timeout={value!r}",
        )
        for value in ("5", True)
    ),
    pytest.param(
        {"speculate": "always"},
        ConfigurationTypeError,
        r"`speculate` must be a speculation policy \(Always\(\), Never\(\), Branches\(...\) "
        r"or PredictivePolicy\(...\)\), got 'always'",
        id="speculate='always'",
    ),
    pytest.param(
        {"speculate": Branches({"missing": ["left"]})},
        UnknownBranchError,
        r"names router 'missing', which the flow does not have \(routers: pick\)",
        id="speculate names a missing router",
    ),
    pytest.param(
        {"cache": "yes"},
        ConfigurationTypeError,
        r"`cache` must be a cache \(from `async with open_cache\(\) as cache`, or any "
        r"StepCache\), got 'yes', which has no method lookup, compute_once, store, statistics",
        id="cache='yes'",
    ),
    pytest.param(
        {"cache": _CacheWithoutStatistics()},
        ConfigurationTypeError,
        r"StepCache\), got <.*_CacheWithoutStatistics.*>, which has no method statistics$",
        id="cache without statistics",
    ),
    pytest.param(
        {"observer": "progress"},
        ConfigurationTypeError,
        r"`observer` must have `step_started` and `step_finished` methods \(see "
        r"RunObserver\), got 'progress'",
        id="observer='progress'",
    ),
    pytest.param(
        {"learned": {}},
        ConfigurationTypeError,
        r"`learned` must be a LearnedState, got \{\}",
        id="learned={}",
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("arguments", "error", "message"), RUN_CASES)
async def test_a_bad_run_argument_is_refused_before_any_step_runs(
    mode: str, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    ran: list[str] = []

    @step
    async def pick(request: str) -> Route:
        ran.append("pick")
        return Route("left")

    flow = Flow([router(pick, {"left": [left], "right": [right]})])
    with pytest.raises(error, match=message) as info:
        await flow.run(request="r", mode=mode, **arguments)
    assert isinstance(info.value, SpecrouteError)
    assert ran == []


def test_a_capacity_limiter_is_a_valid_cap() -> None:
    async def main() -> None:
        result = await Flow([left]).run(request="r", max_concurrency=trio.CapacityLimiter(1))
        assert result.outputs == {"answer": "left"}

    trio.run(main)


# -- build arguments: refused when the object is made -----------------------------------------


def make_policy_always() -> object:
    return Always(limit=-1)


BUILD_CASES: list[Any] = [
    pytest.param(
        lambda: StepOptions(output="not an id"),
        ConfigurationError,
        r"`output` must be None or an identifier, got 'not an id'",
        id="StepOptions(output='not an id')",
    ),
    pytest.param(
        lambda: StepOptions(timeout=-1),
        ConfigurationError,
        r"`timeout` must be None or a number > 0, got -1",
        id="StepOptions(timeout=-1)",
    ),
    pytest.param(
        lambda: StepOptions(timeout="5"),
        ConfigurationTypeError,
        r"`timeout` must be None or a number > 0, got '5'",
        id="StepOptions(timeout='5')",
    ),
    pytest.param(
        lambda: StepOptions(timeout=True),
        ConfigurationTypeError,
        r"`timeout` must be None or a number > 0, got True",
        id="StepOptions(timeout=True)",
    ),
    pytest.param(
        lambda: StepOptions(effect="yes"),
        ConfigurationTypeError,
        r"`effect` must be a bool, got 'yes'",
        id="StepOptions(effect='yes')",
    ),
    pytest.param(
        lambda: StepOptions(cache="yes"),
        ConfigurationTypeError,
        r"`cache` must be None or a CacheOptions, got 'yes'",
        id="StepOptions(cache='yes')",
    ),
    pytest.param(
        lambda: StepOptions(cache_inputs="text"),
        ConfigurationTypeError,
        r"`cache_inputs` must be a list of input names, got the string 'text'; write \['text'\]",
        id="StepOptions(cache_inputs='text')",
    ),
    pytest.param(
        lambda: step(timeout=-1),
        ConfigurationError,
        r"`timeout` must be None or a number > 0, got -1",
        id="step(timeout=-1)",
    ),
    pytest.param(
        lambda: Branches({"r": {"left": 0}}),
        ConfigurationError,
        r"`r.left` must be None \(whole branch\) or an int >= 1, got 0",
        id="Branches({'r': {'left': 0}})",
    ),
    pytest.param(
        lambda: Branches({"r": "left"}),
        ConfigurationTypeError,
        r"branches for router 'r' must be a list of labels or a mapping label -> limit, got "
        r"the string 'left' \(write \['left'\]\)",
        id="Branches({'r': 'left'})",
    ),
    pytest.param(
        lambda: Branches(["r"]),
        ConfigurationTypeError,
        r"`plans` must be a mapping router name -> branches, got \['r'\]",
        id="Branches(['r'])",
    ),
    pytest.param(
        make_policy_always,
        ConfigurationError,
        r"`limit` must be None \(whole branch\) or an int >= 1, got -1",
        id="Always(limit=-1)",
    ),
    pytest.param(
        lambda: Always(limit="2"),
        ConfigurationTypeError,
        r"`limit` must be None \(whole branch\) or an int >= 1, got '2'",
        id="Always(limit='2')",
    ),
    pytest.param(
        lambda: Flow(None),
        ConfigurationTypeError,
        r"flow 'flow': `nodes` must be a list of steps and routers, got None",
        id="Flow(None)",
    ),
    pytest.param(
        lambda: Flow(left),
        ConfigurationTypeError,
        r"flow 'flow': `nodes` must be a list of steps and routers, got <Step 'left'",
        id="Flow(step)",
    ),
    pytest.param(
        lambda: Flow([left], inputs="request"),
        ConfigurationTypeError,
        r"flow 'flow': `inputs` must be a list of value names, got the string 'request'; "
        r"write \['request'\]",
        id="Flow(inputs='request')",
    ),
    pytest.param(
        lambda: Flow([left], outputs="answer"),
        ConfigurationTypeError,
        r"flow 'flow': `outputs` must be a list of value names, got the string 'answer'; "
        r"write \['answer'\]",
        id="Flow(outputs='answer')",
    ),
    pytest.param(
        lambda: Flow([left], speculate="always"),
        ConfigurationTypeError,
        r"`speculate` must be a speculation policy .*, got 'always'",
        id="Flow(speculate='always')",
    ),
    pytest.param(
        lambda: router(pick, [left, right]),
        ConfigurationTypeError,
        r"router 'pick': `branches` must be a mapping label -> Flow or list of steps, got "
        r"\[<Step 'left'.*\]; write \{'label': \[...\]\}",
        id="router(r, [a, b])",
    ),
    pytest.param(
        lambda: router(pick, {"left": "lo"}),
        ConfigurationTypeError,
        r"router 'pick': branch 'left' must be a Flow or a list of steps, got the string 'lo'",
        id="router(r, {'left': 'lo'})",
    ),
    pytest.param(
        lambda: router(pick, {"left": left}),
        ConfigurationTypeError,
        r"router 'pick': branch 'left' must be a Flow or a list of steps, got <Step 'left'",
        id="router(r, {'left': step})",
    ),
    pytest.param(
        lambda: router(pick, {"left": [left]}, handoff={"left": "answer"}),
        ConfigurationTypeError,
        r"router 'pick': the handoff to branch 'left' must be a list of value names, got the "
        r"string 'answer'; write \['answer'\]",
        id="router(handoff={'left': 'answer'})",
    ),
    pytest.param(
        lambda: router(pick, {"left": [left]}, predictor="statistics"),
        ConfigurationTypeError,
        r"router 'pick': `predictor` must have `predict` and `observe` methods \(see "
        r"Predictor\), got 'statistics'",
        id="router(predictor='statistics')",
    ),
]


@pytest.mark.parametrize(("build", "error", "message"), BUILD_CASES)
def test_a_bad_build_argument_is_refused_when_the_object_is_made(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        build()
    assert isinstance(info.value, SpecrouteError)


def test_configuration_errors_keep_the_builtin_they_replace() -> None:
    assert issubclass(ConfigurationError, SpecrouteError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationTypeError, ConfigurationError)
    assert issubclass(ConfigurationTypeError, TypeError)
