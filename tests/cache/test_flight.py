"""SingleFlight under the autojump clock: sharing, cancellation, failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.lowlevel
import trio.testing
from specroute.cache import (
    Cache,
    CacheOptions,
    ComputationFailedError,
    SingleFlight,
    SingleFlightClosedError,
    StepIdentity,
    open_cache,
    open_single_flight,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager


class Computation:
    """A slow computation that counts its starts, finishes and cancellations."""

    def __init__(self, result: object = "done", seconds: float = 10) -> None:
        self.result = result
        self.seconds = seconds
        self.started = 0
        self.finished = 0
        self.cancelled = 0

    async def __call__(self) -> object:
        self.started += 1
        try:
            await trio.sleep(self.seconds)
        except trio.Cancelled:
            self.cancelled += 1
            raise
        self.finished += 1
        return self.result


async def test_concurrent_callers_share_one_computation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    compute = Computation(result=["shared"])
    results: list[object] = []
    async with open_single_flight() as flight:

        async def caller() -> None:
            results.append(await flight.run("key", compute))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(caller)
        stats = flight.statistics()
    assert compute.started == 1
    assert results == [["shared"]] * 10
    assert (stats.started, stats.joined, stats.in_flight) == (1, 9, 0)


async def test_different_keys_compute_separately(autojump_clock: trio.testing.MockClock) -> None:
    compute = Computation()
    async with open_single_flight() as flight, trio.open_nursery() as nursery:
        nursery.start_soon(flight.run, "a", compute)
        nursery.start_soon(flight.run, "b", compute)
    assert compute.started == 2


async def test_a_later_caller_starts_a_new_computation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    compute = Computation()
    async with open_single_flight() as flight:
        await flight.run("key", compute)
        await flight.run("key", compute)
    assert compute.started == 2


async def test_cancelling_some_waiters_does_not_cancel_the_computation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    compute = Computation(seconds=10)
    results: list[object] = []
    async with open_single_flight() as flight:

        async def impatient() -> None:
            with trio.move_on_after(1):
                await flight.run("key", compute)

        async def patient() -> None:
            results.append(await flight.run("key", compute))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(impatient)
            nursery.start_soon(patient)
    assert compute.started == 1
    assert compute.finished == 1
    assert compute.cancelled == 0
    assert results == ["done"]
    assert trio.current_time() == pytest.approx(10)


async def test_cancelling_every_waiter_cancels_the_computation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    compute = Computation(seconds=10)
    async with open_single_flight() as flight:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(flight.run, "key", compute)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        await trio.lowlevel.checkpoint()
        stats = flight.statistics()
    assert compute.cancelled == 1
    assert compute.finished == 0
    assert (stats.abandoned, stats.in_flight) == (1, 0)
    assert trio.current_time() == pytest.approx(1)


async def test_a_caller_after_everyone_left_starts_afresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    compute = Computation(seconds=10)
    async with open_single_flight() as flight:
        with trio.move_on_after(1):
            await flight.run("key", compute)
        assert await flight.run("key", compute) == "done"
    assert compute.started == 2
    assert compute.finished == 1


async def test_a_failure_reaches_every_waiter_as_its_own_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def fails() -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        raise LookupError("no route")

    errors: list[ComputationFailedError] = []
    async with open_single_flight() as flight:

        async def caller() -> None:
            try:
                await flight.run("key", fails)
            except ComputationFailedError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(caller)
        assert flight.statistics().failed == 1
    assert calls == 1
    assert len(errors) == 4
    assert len({id(error) for error in errors}) == 4
    causes = {id(error.__cause__) for error in errors}
    assert len(causes) == 1
    assert isinstance(errors[0].__cause__, LookupError)
    assert "LookupError: no route" in str(errors[0])


async def test_a_failure_is_not_stored(autojump_clock: trio.testing.MockClock) -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await trio.sleep(1)
        if attempts == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt works"

    async with open_cache() as cache:
        key = (await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})).key
        with pytest.raises(ComputationFailedError):
            await cache.compute_once(key, flaky)
        assert await cache.compute_once(key, flaky) == "second attempt works"
        stats = cache.statistics()
    assert (stats.stores, stats.entries) == (0, 0)


async def test_use_after_the_block_is_refused() -> None:
    async with open_single_flight() as flight:
        pass

    async def compute() -> int:
        return 1

    with pytest.raises(SingleFlightClosedError, match="async with open_single_flight"):
        await flight.run("key", compute)


class Interrupt(BaseException):
    """Stands in for KeyboardInterrupt: a BaseException that is not an Exception."""


OPENERS = {"open_single_flight": open_single_flight, "open_cache": open_cache}


@pytest.mark.parametrize("opener", OPENERS.values(), ids=OPENERS.keys())
@pytest.mark.parametrize("error", [ValueError("bad"), Interrupt("stop")], ids=repr)
async def test_an_error_in_the_block_leaves_as_itself(
    opener: Callable[[], AbstractAsyncContextManager[object]], error: BaseException
) -> None:
    with pytest.raises(type(error)) as info:
        async with opener():
            raise error
    assert info.value is error
    assert not isinstance(info.value, BaseExceptionGroup)


@pytest.mark.parametrize("error", [ValueError("bad"), Interrupt("stop")], ids=repr)
async def test_an_error_leaves_as_itself_while_a_computation_runs(
    autojump_clock: trio.testing.MockClock, error: BaseException
) -> None:
    compute = Computation(seconds=10)
    failures: list[ComputationFailedError] = []

    async def waits_from_outside(flight: SingleFlight) -> None:
        try:
            await flight.run("key", compute)
        except ComputationFailedError as exc:
            failures.append(exc)

    async def fails_while_computing(nursery: trio.Nursery) -> None:
        async with open_single_flight() as flight:
            nursery.start_soon(waits_from_outside, flight)
            await trio.sleep(1)
            assert flight.statistics().in_flight == 1
            raise error

    async with trio.open_nursery() as nursery:
        with pytest.raises(type(error)) as info:
            await fails_while_computing(nursery)
    assert info.value is error
    # The block's nursery cancelled the computation on the way out; its waiter was told.
    assert compute.cancelled == 1
    assert len(failures) == 1


async def test_an_error_keeps_its_cause_and_context() -> None:
    async def fails_while_handling() -> None:
        async with open_cache():
            try:
                raise KeyError("inner")
            except KeyError as exc:
                raise ValueError("outer") from exc

    with pytest.raises(ValueError, match="outer") as info:
        await fails_while_handling()
    assert isinstance(info.value.__cause__, KeyError)
    assert isinstance(info.value.__context__, KeyError)


@pytest.mark.parametrize("opener", OPENERS.values(), ids=OPENERS.keys())
@pytest.mark.parametrize("in_flight", [False, True], ids=["idle", "computing"])
async def test_an_outer_cancel_leaves_as_cancelled_and_is_caught(
    autojump_clock: trio.testing.MockClock,
    opener: Callable[[], AbstractAsyncContextManager[SingleFlight | Cache]],
    in_flight: bool,
) -> None:
    compute = Computation(seconds=10)
    left: list[BaseException] = []
    with trio.move_on_after(1) as scope:
        try:
            async with opener() as flight_or_cache:
                if in_flight:
                    await run_once(flight_or_cache, compute)
                await trio.sleep_forever()
        except BaseException as exc:
            left.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(exc) for exc in left] == [trio.Cancelled]
    assert compute.finished == 0
    assert trio.current_time() == pytest.approx(1)


async def run_once(flight_or_cache: SingleFlight | Cache, compute: Computation) -> object:
    if isinstance(flight_or_cache, SingleFlight):
        return await flight_or_cache.run("key", compute)
    key = (await flight_or_cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})).key
    return await flight_or_cache.compute_once(key, compute)
