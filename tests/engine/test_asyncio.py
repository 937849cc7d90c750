"""The asyncio bridge: portal lifecycle, cancellation both ways, one error, `on_asyncio`.

pytest-trio runs the suite in trio mode, so each test here is a plain sync function that
runs its own `asyncio.run(...)`.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import sniffio
import trio
from specroute.engine import (
    AsyncioBridgeError,
    Flow,
    StepFailedError,
    asyncio_portal,
    on_asyncio,
    step,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

# Events the steps below record, so a test can see what ran and what was cancelled.
EVENTS: list[str] = []


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


@step(output="doubled")
async def double(x: int) -> int:
    await trio.lowlevel.checkpoint()
    return 2 * x


@step(output="slept")
async def sleep_long(x: int) -> int:
    EVENTS.append("started")
    try:
        await trio.sleep(30)
    finally:
        EVENTS.append("stopped")
    return x


@step(output="boom")
async def explode(x: int) -> int:
    raise ValueError(f"bad x: {x}")


async def asyncio_sleep_then(value: str, seconds: float) -> str:
    EVENTS.append(f"asyncio {sniffio.current_async_library()}")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        EVENTS.append("asyncio cancelled")
        raise
    return value


@step(output="fetched")
async def fetch(x: int) -> str:
    return await on_asyncio(asyncio_sleep_then, f"got {x}", 0.01)


@step(output="fetched")
async def fetch_forever(x: int) -> str:
    return await on_asyncio(asyncio_sleep_then, "never", 30)


async def started(count: int) -> None:
    """Wait until `count` `sleep_long` steps have started (they run in trio: poll)."""
    while EVENTS.count("started") < count:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


def in_asyncio(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(10):
            await main()

    asyncio.run(bounded())


def test_a_flow_runs_from_asyncio_and_the_portal_closes_clean() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            idle = portal.statistics().trio_tasks
            results = await asyncio.gather(*(portal.run(Flow([double]), x=i) for i in range(20)))
            assert [r.outputs["doubled"] for r in results] == [2 * i for i in range(20)]
            stats = portal.statistics()
            assert (stats.runs_started, stats.runs_in_flight) == (20, 0)
            assert stats.trio_tasks == idle
        with pytest.raises(AsyncioBridgeError, match="portal is closed"):
            await portal.run(Flow([double]), x=1)

    in_asyncio(main)


def test_a_second_portal_is_refused_and_a_later_one_opens() -> None:
    async def main() -> None:
        async with asyncio_portal():
            with pytest.raises(AsyncioBridgeError, match="already open"):
                async with asyncio_portal():
                    pass
        async with asyncio_portal() as portal:
            assert (await portal.run(Flow([double]), x=3)).outputs == {"doubled": 6}

    in_asyncio(main)


def test_cancelling_the_asyncio_caller_cancels_the_run_and_waits_for_it() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            task = asyncio.create_task(portal.run(Flow([sleep_long]), x=1))
            await started(1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The run had stopped by the time the caller saw its cancellation.
            assert EVENTS == ["started", "stopped"]
            assert portal.statistics().runs_cancelled == 1
            assert portal.statistics().runs_in_flight == 0

    in_asyncio(main)


def test_asyncio_timeout_around_a_run_becomes_timeout_error() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await portal.run(Flow([sleep_long]), x=1)
            assert EVENTS == ["started", "stopped"]

    in_asyncio(main)


def test_a_flow_failure_arrives_as_the_same_single_error() -> None:
    async def trio_error() -> BaseException:
        with pytest.raises(StepFailedError) as caught:
            await Flow([explode]).run(x=7)
        return caught.value

    native = trio.run(trio_error)

    async def main() -> None:
        async with asyncio_portal() as portal:
            with pytest.raises(StepFailedError) as caught:
                await portal.run(Flow([explode]), x=7)
        assert type(caught.value) is type(native)
        assert str(caught.value) == str(native)
        assert isinstance(caught.value.__cause__, ValueError)
        assert str(caught.value.__cause__) == "bad x: 7"

    in_asyncio(main)


def test_closing_the_portal_cancels_runs_in_flight_and_waits() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            tasks = [asyncio.create_task(portal.run(Flow([sleep_long]), x=i)) for i in range(3)]
            await started(3)
        assert EVENTS.count("stopped") == 3
        for task in tasks:
            with pytest.raises(AsyncioBridgeError, match="closed while this call was in flight"):
                await task

    in_asyncio(main)


def test_a_step_awaits_a_coroutine_on_the_host_loop() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            result = await portal.run(Flow([fetch]), x=5)
        assert result.outputs == {"fetched": "got 5"}
        # The coroutine saw asyncio, not the trio step it was called from.
        assert EVENTS == ["asyncio asyncio"]

    in_asyncio(main)


def test_cancelling_the_run_cancels_the_asyncio_coroutine_first() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await portal.run(Flow([fetch_forever]), x=1)
            assert EVENTS == ["asyncio asyncio", "asyncio cancelled"]

    in_asyncio(main)


def test_on_asyncio_reports_the_asyncio_side_cancelling_the_coroutine() -> None:
    async def cancelled_on_its_own() -> str:
        raise asyncio.CancelledError

    @step(output="fetched")
    async def fetch_cancelled(x: int) -> str:
        return await on_asyncio(cancelled_on_its_own)

    async def main() -> None:
        async with asyncio_portal() as portal:
            with pytest.raises(StepFailedError) as caught:
                await portal.run(Flow([fetch_cancelled]), x=1)
        assert isinstance(caught.value.__cause__, AsyncioBridgeError)
        assert "cancelled on the asyncio side" in str(caught.value.__cause__)

    in_asyncio(main)


def test_on_asyncio_under_plain_trio_says_how_to_host_the_flow() -> None:
    async def main() -> None:
        with pytest.raises(StepFailedError) as caught:
            await Flow([fetch]).run(x=1)
        assert isinstance(caught.value.__cause__, AsyncioBridgeError)
        assert "asyncio_portal()" in str(caught.value.__cause__)

    trio.run(main)
    assert EVENTS == []


def test_on_asyncio_refuses_a_trio_run_beside_an_open_portal() -> None:
    """Another thread's `trio.run` is not hosted on the loop, even while a portal is open."""

    async def elsewhere() -> None:
        with pytest.raises(AsyncioBridgeError, match="not"):
            await on_asyncio(asyncio_sleep_then, "x", 0)

    async def main() -> None:
        async with asyncio_portal():
            await asyncio.to_thread(trio.run, elsewhere)

    in_asyncio(main)


@asynccontextmanager
async def recorded(name: str) -> AsyncIterator[str]:
    await trio.lowlevel.checkpoint()  # entered and exited in trio
    EVENTS.append(f"enter {name}")
    try:
        yield name.upper()
    finally:
        EVENTS.append(f"exit {name}")


def test_entered_managers_live_until_close_and_exit_last_first_after_the_runs() -> None:
    async def main() -> None:
        async with asyncio_portal() as portal:
            assert await portal.enter(recorded("client")) == "CLIENT"
            assert await portal.enter(recorded("cache")) == "CACHE"
            run = asyncio.create_task(portal.run(Flow([sleep_long]), x=1))
            await started(1)
            assert EVENTS == ["enter client", "enter cache", "started"]
        assert EVENTS[3:] == ["stopped", "exit cache", "exit client"]
        with pytest.raises(AsyncioBridgeError):
            await run

    in_asyncio(main)


def test_a_manager_that_fails_to_enter_raises_in_asyncio() -> None:
    @asynccontextmanager
    async def refusing() -> AsyncIterator[None]:
        raise ConnectionError("no route to the cache")
        yield

    async def main() -> None:
        async with asyncio_portal() as portal:
            with pytest.raises(ConnectionError, match="no route"):
                await portal.enter(refusing())
            assert (await portal.run(Flow([double]), x=2)).outputs == {"doubled": 4}

    in_asyncio(main)


@step(effect=True, effect_grace=5.0, output="saved")
async def save_slowly(x: int) -> int:
    EVENTS.append("started")
    await trio.sleep(0.2)  # still running when the portal closes
    EVENTS.append("saved")
    return x


def test_closing_the_portal_lets_a_running_effect_finish_within_its_grace() -> None:
    """Shutdown is bounded by the effects' grace, and an effect that started is whole."""

    async def main() -> None:
        async with asyncio_portal() as portal:
            task = asyncio.create_task(portal.run(Flow([save_slowly]), x=1))
            await started(1)
        assert EVENTS == ["started", "saved"]
        with pytest.raises(AsyncioBridgeError, match="closed while this call was in flight"):
            await task

    in_asyncio(main)
