"""Streams between steps: readers start on the first item, in every mode and branch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.cache import CacheOptions, open_cache
from specroute.engine import (
    Always,
    Flow,
    Mode,
    Route,
    StepDefinitionError,
    StepFailedError,
    StepStatus,
    StreamReader,
    router,
    step,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from trio.testing import MockClock


def tokens(count: int = 3, every: float = 1.0, fail_after: int | None = None) -> Any:
    @step(collect="".join, estimated_seconds=count * every)
    async def generate(prompt: str) -> AsyncIterator[str]:
        for index in range(count):
            await trio.sleep(every)
            if fail_after is not None and index == fail_after:
                raise RuntimeError("provider cut")
            yield f"{prompt}{index} "

    return generate


@step(streams=["generate"])
async def quality(generate: StreamReader) -> list[str]:
    seen = []
    async for token in generate:
        seen.append(f"{trio.current_time():.1f}:{token.strip()}")
    return seen


@step
async def cite(generate: str) -> str:
    return f"cited {generate.strip()}"


async def test_a_stream_reader_starts_on_the_first_item(autojump_clock: MockClock) -> None:
    result = await Flow([tokens(), quality, cite]).run(prompt="t")
    assert result.values["generate"] == "t0 t1 t2 "
    assert result.values["quality"] == ["1.0:t0", "2.0:t1", "3.0:t2"]  # live, item by item
    assert result.values["cite"] == "cited t0 t1 t2"
    entries = {e.step: e for e in result.trace}
    assert entries["quality"].start - result.started == pytest.approx(1.0)
    assert entries["cite"].start - result.started == pytest.approx(3.0)  # whole: at the end
    assert entries["generate"].first_item == pytest.approx(result.started + 1.0)
    assert entries["generate"].items == 3
    assert entries["cite"].items is None
    assert result.wall_time == pytest.approx(3.0)
    # The reader spent its 2 s waiting for items: the one-at-a-time baseline is 3 s, not 5,
    # and the critical path runs through the producer it waited on.
    assert entries["quality"].stream_wait == pytest.approx(2.0)
    assert entries["generate"].stream_wait is None
    assert result.sequential_time == pytest.approx(3.0)
    assert [e.step for e in result.critical_path][:1] == ["generate"]


@pytest.mark.parametrize("mode", list(Mode))
async def test_every_mode_gives_the_same_values(autojump_clock: MockClock, mode: Mode) -> None:
    result = await Flow([tokens(), quality, cite]).run(prompt="t", mode=mode)
    assert result.values["generate"] == "t0 t1 t2 "
    assert [seen.split(":")[1] for seen in result.values["quality"]] == ["t0", "t1", "t2"]


async def test_the_slowest_iterating_reader_sets_the_pace(autojump_clock: MockClock) -> None:
    produced: list[float] = []

    @step(stream_buffer=2)
    async def numbers() -> AsyncIterator[int]:
        for index in range(6):
            produced.append(trio.current_time())
            yield index

    taken: list[float] = []

    @step(streams=["numbers"])
    async def slow(numbers: StreamReader) -> int:
        total = 0
        async for value in numbers:
            taken.append(trio.current_time())
            await trio.sleep(1)
            total += value
        return total

    @step(streams=["numbers"])
    async def quits(numbers: StreamReader) -> int:
        async for value in numbers:
            return value  # stops reading at once: it never holds the producer back
        return -1

    result = await Flow([numbers, slow, quits]).run()
    assert result.values["numbers"] == [0, 1, 2, 3, 4, 5]
    assert (result.values["slow"], result.values["quits"]) == (15, 0)
    # `slow` takes one item a second; the producer never ran more than 2 items ahead of
    # it (3 counting the one in its hands), though nothing else slowed it down.
    for count, at in enumerate(produced, 1):
        taken_by_then = sum(1 for t in taken if t <= at)
        assert count - taken_by_then <= 3, (count, at, taken)
    assert produced[-1] - result.started == pytest.approx(2.0)  # 0.0 without backpressure


async def test_a_late_reader_replays_what_it_missed(autojump_clock: MockClock) -> None:
    @step
    async def wait(prompt: str) -> str:
        await trio.sleep(2.5)
        return prompt

    @step(streams=["generate"])
    async def late(generate: StreamReader, wait: str) -> list[str]:
        return [token async for token in generate]

    result = await Flow([tokens(), wait, late]).run(prompt="t")
    assert result.values["late"] == ["t0 ", "t1 ", "t2 "]
    assert result.wall_time == pytest.approx(3.0)


async def test_a_producer_failing_mid_stream_fails_the_run_once(autojump_clock: MockClock) -> None:
    with pytest.raises(StepFailedError, match="provider cut") as raised:
        await Flow([tokens(fail_after=1), quality]).run(prompt="t")
    assert raised.value.step == "generate"
    statuses = {e.step: e.status for e in raised.value.trace}
    # The reader saw the stream end without completing, never a short stream as whole.
    assert statuses["quality"] in (StepStatus.FAILED, StepStatus.CANCELLED)


async def test_a_fallback_stands_in_before_the_first_item(autojump_clock: MockClock) -> None:
    @step(fallback=lambda error: ["sorry"], collect="".join)
    async def generate(prompt: str) -> AsyncIterator[str]:
        raise RuntimeError("down")
        yield prompt  # pragma: no cover -- makes this an async generator

    result = await Flow([generate, quality]).run(prompt="t")
    assert result.values["generate"] == "sorry"
    assert [seen.split(":")[1] for seen in result.values["quality"]] == ["sorry"]
    entry = next(e for e in result.trace if e.step == "generate")
    assert (entry.status, entry.items) == (StepStatus.RECOVERED, 1)


async def test_a_fallback_cannot_splice_a_stream_already_read(autojump_clock: MockClock) -> None:
    @step(fallback=lambda error: ["sorry"])
    async def generate(prompt: str) -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("down")

    with pytest.raises(StepFailedError, match="down"):
        await Flow([generate, quality]).run(prompt="t")


async def test_a_losing_branch_closes_its_streams(autojump_clock: MockClock) -> None:
    @step
    async def decide(prompt: str) -> Route:
        await trio.sleep(1.5)
        return Route("short")

    @step(output="answer")
    async def short() -> str:
        return "short"

    @step(streams=["generate"], output="answer")
    async def long(generate: StreamReader) -> str:
        return "".join([token async for token in generate])

    flow = Flow(
        [
            router(
                decide,
                {
                    "short": [short],
                    "long": Flow([tokens(count=5), long], name="long", outputs=["answer"]),
                },
            )
        ],
        outputs=["answer"],
    )
    result = await flow.run(prompt="t", speculate=Always())
    assert result.outputs == {"answer": "short"}
    lost = {e.step: e.status for e in result.trace if e.wasted}
    assert lost == {"generate": StepStatus.CANCELLED, "long": StepStatus.CANCELLED}
    assert result.wall_time == pytest.approx(1.5)


async def test_a_cached_stream_replays_at_once(autojump_clock: MockClock) -> None:
    calls = 0

    @step(cache=CacheOptions(), collect="".join)
    async def generate(prompt: str) -> AsyncIterator[str]:
        nonlocal calls
        calls += 1
        for token in ("a", "b"):
            await trio.sleep(1)
            yield token

    flow = Flow([generate, quality])
    async with open_cache() as cache:
        await flow.run(prompt="t", cache=cache)
        again = await flow.run(prompt="t", cache=cache)
    assert calls == 1
    assert again.values["generate"] == "ab"
    assert [seen.split(":")[1] for seen in again.values["quality"]] == ["a", "b"]
    entry = next(e for e in again.trace if e.step == "generate")
    assert (entry.status, entry.items) == (StepStatus.CACHED, 2)
    assert again.wall_time == pytest.approx(0.0)


def test_bad_stream_definitions_are_refused_when_made() -> None:
    async def reads(text: str) -> str:
        return text

    with pytest.raises(StepDefinitionError, match="`streams` names input 'other'"):
        step(streams=["other"])(reads)
    with pytest.raises(StepDefinitionError, match="read as a stream"):
        step(streams=["text"], cache=CacheOptions())(reads)

    async def effect() -> AsyncIterator[str]:
        yield "x"

    with pytest.raises(StepDefinitionError, match="an effect cannot stream"):
        step(effect=True)(effect)


async def test_a_chosen_branch_streams_on_without_replay(autojump_clock: MockClock) -> None:
    @step
    async def decide(prompt: str) -> Route:
        await trio.sleep(1.5)
        return Route("long")

    @step(output="answer")
    async def short() -> list[str]:
        return []

    calls = 0

    @step(collect="".join)
    async def generate(prompt: str) -> AsyncIterator[str]:
        nonlocal calls
        calls += 1
        for index in range(3):
            await trio.sleep(1)
            yield str(index)

    @step(streams=["generate"], output="answer")
    async def read(generate: StreamReader) -> list[str]:
        return [f"{trio.current_time():.1f}:{token}" async for token in generate]

    flow = Flow(
        [
            router(
                decide,
                {"short": [short], "long": Flow([generate, read], name="long", outputs=["answer"])},
            )
        ],
        outputs=["answer"],
    )
    result = await flow.run(prompt="t", speculate=Always())
    start = result.started
    assert result.outputs == {
        "answer": [f"{start + 1:.1f}:0", f"{start + 2:.1f}:1", f"{start + 3:.1f}:2"]
    }
    assert calls == 1  # the stream went on when its branch won, from where it was
    assert result.wall_time == pytest.approx(3.0)


async def test_a_near_match_on_a_streamed_step_is_a_predicted_stream(
    autojump_clock: MockClock,
) -> None:
    from tests.engine.test_predicted import ASKED, STORED, Same

    @step(cache=CacheOptions(semantic="prompt"), collect="".join)
    async def generate(prompt: str) -> AsyncIterator[str]:
        for token in ("a", "b"):
            await trio.sleep(1)
            yield token

    flow = Flow([generate, quality])
    async with open_cache(embedder=Same()) as cache:
        await flow.run(prompt=STORED, cache=cache)
        result = await flow.run(prompt=ASKED, cache=cache)
    (guess,) = result.predicted_values
    assert (guess.speculated, guess.confirmed) == (True, True)
    # The reader read the replayed prediction at once and was kept.
    assert [seen.split(":")[1] for seen in result.values["quality"]] == ["a", "b"]
    assert result.wall_time == pytest.approx(2.0)
