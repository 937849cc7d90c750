"""One error, as the README's "When things go wrong" promises: never an `ExceptionGroup`.

Each case raises from a place a nursery would wrap (a step task, a router's nursery, an
observer called on the scheduler's path, a predictor told the answer, a cache lookup) and
checks that the caller sees exactly one exception it can name in an `except` clause.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.cache import CacheOptions, EmbeddingError, open_cache
from specroute.engine import (
    ConfigurationTypeError,
    Flow,
    ObserverFailedError,
    Provider,
    StepStatus,
    open_llm_client,
    router,
    step,
)
from specroute.routes import (
    Always,
    Never,
    PredictivePolicy,
    Route,
    RouteStatistics,
    StepFailedError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from numpy.typing import NDArray
    from trio.testing import MockClock

MODES = ("sequential", "parallel", "speculative")


@step(output="draft")
async def draft(request: str) -> str:
    await trio.sleep(1)
    return f"draft of {request}"


@step(output="answer")
async def broken(draft: str) -> str:
    raise ValueError("model refused")


@step(output="side")
async def bystander(request: str) -> str:
    await trio.sleep(5)
    return "side"


def failing_flow() -> Flow:
    return Flow([draft, broken, bystander], name="failing")


# -- a failing step inside the context managers the library hands out -----------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_step_failure_inside_open_cache_is_one_step_failed_error(
    autojump_clock: MockClock, mode: str
) -> None:
    caught: StepFailedError | None = None
    try:
        async with open_cache() as cache:
            await failing_flow().run(request="r", cache=cache, mode=mode)
    except StepFailedError as exc:
        caught = exc
    assert caught is not None
    assert caught.step == "broken"
    assert isinstance(caught.__cause__, ValueError)


@pytest.mark.parametrize("mode", MODES)
async def test_a_step_failure_inside_open_llm_client_is_one_step_failed_error(
    autojump_clock: MockClock, mode: str
) -> None:
    caught: StepFailedError | None = None
    try:
        async with open_llm_client(Provider.simulated()):
            await failing_flow().run(request="r", mode=mode)
    except StepFailedError as exc:
        caught = exc
    assert caught is not None
    assert caught.step == "broken"


async def test_open_llm_client_passes_any_single_exception_through() -> None:
    class Mine(Exception):
        pass

    with pytest.raises(Mine) as info:
        async with open_llm_client(Provider.simulated()):
            raise Mine
    assert type(info.value) is Mine


# -- outside cancellation ----------------------------------------------------------------


async def cancelled_from_outside(mode: str, *, in_cache: bool = False) -> type[BaseException]:
    """Run a flow whose steps are all waiting when the caller's scope is cancelled, and
    return the type the caller's `except` clauses saw."""
    seen: type[BaseException] = type(None)  # type: ignore[assignment]
    with trio.CancelScope() as outside:

        @step(output="one")
        async def cancel_everything(request: str) -> str:
            outside.cancel()
            await trio.sleep(1)
            return "one"

        @step(output="two")
        async def waiting(request: str) -> str:
            await trio.sleep(1)
            return "two"

        flow = Flow([cancel_everything, waiting, bystander])
        try:
            if in_cache:
                async with open_cache() as cache:
                    await flow.run(request="r", mode=mode, cache=cache)
            else:
                await flow.run(request="r", mode=mode)
        except trio.Cancelled:
            seen = trio.Cancelled
            raise
        except BaseException as exc:
            seen = type(exc)
            raise
    assert outside.cancelled_caught
    return seen


@pytest.mark.parametrize("mode", MODES)
async def test_outside_cancellation_reaches_the_caller_as_a_bare_cancelled(
    autojump_clock: MockClock, mode: str
) -> None:
    assert await cancelled_from_outside(mode) is trio.Cancelled


@pytest.mark.parametrize("mode", MODES)
async def test_outside_cancellation_inside_open_cache_is_a_bare_cancelled(
    autojump_clock: MockClock, mode: str
) -> None:
    assert await cancelled_from_outside(mode, in_cache=True) is trio.Cancelled


async def test_outside_cancellation_of_a_speculating_router_is_a_bare_cancelled(
    autojump_clock: MockClock,
) -> None:
    @step
    async def decide(request: str) -> Route:
        await trio.sleep(1)
        return Route("left")

    @step(output="answer")
    async def left(request: str) -> str:
        await trio.sleep(2)
        return "left"

    @step(name="right_answer", output="answer")
    async def right(request: str) -> str:
        await trio.sleep(2)
        return "right"

    flow = Flow([router(decide, {"left": [left], "right": [right]})])
    seen: type[BaseException] | None = None
    with trio.move_on_after(0.5) as outside:
        try:
            await flow.run(request="r", speculate=Always())
        except trio.Cancelled:
            seen = trio.Cancelled
            raise
        except BaseException as exc:
            seen = type(exc)
            raise
    assert outside.cancelled_caught
    assert seen is trio.Cancelled


# -- sys.exit in a step ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_sys_exit_in_a_step_passes_through_unwrapped(
    autojump_clock: MockClock, mode: str
) -> None:
    @step(output="one")
    async def leaves(request: str) -> None:
        await trio.sleep(1)
        sys.exit(3)

    with pytest.raises(SystemExit) as info:
        await Flow([leaves, bystander]).run(request="r", mode=mode)
    assert type(info.value) is SystemExit
    assert info.value.code == 3


def test_a_process_whose_step_calls_sys_exit_exits_with_that_status() -> None:
    script = textwrap.dedent(
        """
        import sys, trio
        from specroute.engine import Flow, open_cache, step

        @step
        async def leaves(request: str) -> None:
            sys.exit(3)

        @step
        async def other(request: str) -> None:
            await trio.sleep(5)

        async def main() -> None:
            async with open_cache() as cache:
                await Flow([leaves, other]).run(request="r", cache=cache)

        trio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "ExceptionGroup" not in done.stderr


# -- observers --------------------------------------------------------------------------------


class Raising:
    """An observer whose `step_finished` breaks on the second step it hears of."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        return None

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        self.finished.append(step)
        if len(self.finished) == 2:
            raise KeyError("progress bar")


class StartOnly:
    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        return None


@step(output="one")
async def first(request: str) -> str:
    await trio.sleep(1)
    return "one"


@step(output="two")
async def second(one: str) -> str:
    await trio.sleep(1)
    return "two"


@step(output="three")
async def third(two: str) -> str:
    await trio.sleep(1)
    return "three"


@pytest.mark.parametrize("mode", MODES)
async def test_an_observer_that_raises_fails_the_run_with_one_error_naming_it(
    autojump_clock: MockClock, mode: str
) -> None:
    observer = Raising()
    with pytest.raises(ObserverFailedError, match=r"observer .*Raising.*step_finished") as info:
        await Flow([first, second, third]).run(request="r", mode=mode, observer=observer)
    assert isinstance(info.value.__cause__, KeyError)
    # Once broken, it is told nothing more: the run stopped at the step it failed on.
    assert observer.finished == ["first", "second"]


@pytest.mark.parametrize("observer", [StartOnly(), object(), "progress"])
@pytest.mark.parametrize("mode", MODES)
async def test_an_observer_without_the_methods_is_refused_before_the_run_starts(
    observer: object, mode: str
) -> None:
    ran = False

    @step
    async def nothing(request: str) -> None:
        nonlocal ran
        ran = True

    with pytest.raises(ConfigurationTypeError, match=r"`observer` must have .*step_finished"):
        await Flow([nothing]).run(request="r", mode=mode, observer=observer)  # type: ignore[arg-type]
    assert not ran


# -- predictors -------------------------------------------------------------------------------


@step
async def pick(request: dict[str, str]) -> Route:
    await trio.sleep(1)
    return Route("left")


@step(output="answer")
async def go_left(request: dict[str, str]) -> str:
    return "left"


@step(name="go_right", output="answer")
async def go_right(request: dict[str, str]) -> str:
    return "right"


@pytest.mark.parametrize(
    ("mode", "speculate"),
    [
        ("sequential", None),
        ("parallel", None),
        ("speculative", Never()),
        ("speculative", PredictivePolicy(value_of_time=1.0)),
    ],
)
async def test_a_predictor_whose_observe_raises_only_costs_the_speculation(
    autojump_clock: MockClock, mode: str, speculate: Any
) -> None:
    # The bucket reads a key this request lacks: predict and observe both raise KeyError.
    statistics = RouteStatistics(bucket=lambda inputs: inputs["request"]["lang"])
    flow = Flow([router(pick, {"left": [go_left], "right": [go_right]}, predictor=statistics)])
    result = await flow.run(request={"text": "hi"}, mode=mode, speculate=speculate)
    assert result.outputs == {"answer": "left"}
    (decision,) = result.decisions
    assert decision.label == "left"
    assert "predictor could not learn" in decision.note
    assert "KeyError" in decision.note


# -- the embedder failing during a router's cache lookup --------------------------------------


class BrokenEmbedder:
    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        raise EmbeddingError("embedding service unavailable")


def routed(*, fallback: bool) -> Flow:
    @step(
        cache=CacheOptions(semantic="request"),
        fallback=(lambda exc: Route("right")) if fallback else None,
    )
    async def classify(request: str) -> Route:
        await trio.sleep(1)
        return Route("left")

    @step(output="answer")
    async def on_left(request: str) -> str:
        return "left"

    @step(output="answer")
    async def on_right(request: str) -> str:
        return "right"

    return Flow([router(classify, {"left": [on_left], "right": [on_right]})])


@pytest.mark.parametrize("mode", MODES)
async def test_an_embedder_failing_in_a_router_lookup_fails_the_router_step(
    autojump_clock: MockClock, mode: str
) -> None:
    async with open_cache(embedder=BrokenEmbedder()) as cache:
        with pytest.raises(
            StepFailedError, match=r"step 'classify' failed: EmbeddingError"
        ) as info:
            await routed(fallback=False).run(request="r", cache=cache, mode=mode)
    assert info.value.step == "classify"
    assert isinstance(info.value.__cause__, EmbeddingError)
    (failed,) = [entry for entry in info.value.trace if entry.step == "classify"]
    assert failed.status is StepStatus.FAILED


@pytest.mark.parametrize("mode", MODES)
async def test_an_embedder_failing_in_a_router_lookup_takes_the_routers_fallback(
    autojump_clock: MockClock, mode: str
) -> None:
    async with open_cache(embedder=BrokenEmbedder()) as cache:
        result = await routed(fallback=True).run(request="r", cache=cache, mode=mode)
    assert result.outputs == {"answer": "right"}
    (entry,) = [entry for entry in result.trace if entry.step == "classify"]
    assert entry.status is StepStatus.RECOVERED
