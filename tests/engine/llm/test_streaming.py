"""`LLMClient.stream`: text handed on as it arrives, retried only before the first piece,
billed like any call, and usable as a streamed step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import API_KEY, paced, sse
from specroute.engine import Flow, StreamReader, step
from specroute.engine.llm import (
    CallStatus,
    RetryPolicy,
    StreamInterruptedError,
    UsageMeter,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from llm_mocks import MakeClient
    from trio.testing import MockClock

MODEL = "gpt-4o-mini"
RETRY = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.1)


def token(text: str) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}}]})


END = sse(
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
    "[DONE]",
)


def answering(*pieces: str, every: float = 1.0, cut_after: int | None = None) -> httpx.Response:
    chunks = [token(piece) for piece in pieces]
    if cut_after is None:
        chunks.append(END)
    else:
        chunks = chunks[:cut_after]
    return httpx.Response(200, content=paced(chunks, every=every))


async def test_text_is_handed_on_as_it_arrives(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return answering("a", "b", "c")

    client = make_client(handler)
    start = trio.current_time()
    seen = [(text, trio.current_time() - start) async for text in client.stream("hi", model=MODEL)]
    assert seen == [("a", pytest.approx(1.0)), ("b", pytest.approx(2.0)), ("c", pytest.approx(3.0))]
    (record,) = client.meter.records()
    assert record.status is CallStatus.COMPLETED
    assert (record.usage.input_tokens, record.usage.output_tokens) == (5, 3)
    assert API_KEY not in repr(record)


async def test_a_failure_before_the_first_piece_is_retried(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    answers = [httpx.Response(503, json={"error": {"message": "busy"}}), answering("ok")]

    async def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    client = make_client(handler, retry=RETRY)
    assert [text async for text in client.stream("hi", model=MODEL)] == ["ok"]
    (record,) = client.meter.records()
    assert len(record.attempts) == 2


async def test_a_failure_after_the_first_piece_ends_the_stream(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    requests = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return answering("a", "b", "c", cut_after=2)

    client = make_client(handler, retry=RETRY)
    seen: list[str] = []

    async def read() -> None:
        async for text in client.stream("hi", model=MODEL):
            seen.append(text)

    with pytest.raises(StreamInterruptedError, match="after 2 pieces"):
        await read()
    assert seen == ["a", "b"]
    assert requests == 1  # never retried: the reader had seen "a" and "b"
    (record,) = client.meter.records()
    assert record.status is CallStatus.FAILED


async def test_a_reader_that_stops_closes_the_stream_and_is_billed(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return answering("a", "b", "c", "d")

    client = make_client(handler)
    meter = UsageMeter()
    stream = client.stream("hi", model=MODEL, meter=meter)
    async for text in stream:
        assert text == "a"
        break
    await stream.aclose()  # type: ignore[attr-defined]
    (record,) = meter.records()
    assert record.status is CallStatus.CANCELLED
    assert record.usage.partial
    assert record.usage.output_tokens >= 1


async def test_a_streamed_step_feeds_its_readers_as_the_model_writes(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return answering("Hello", " world", every=0.5)

    client = make_client(handler)

    @step(collect="".join)
    async def answer(question: str) -> AsyncIterator[str]:
        async for text in client.stream(question, model=MODEL):
            yield text

    @step(streams=["answer"])
    async def first_words(answer: StreamReader) -> float:
        async for _ in answer:
            return trio.current_time()
        return -1.0

    result = await Flow([answer, first_words]).run(question="hi")
    assert result.values["answer"] == "Hello world"
    assert result.values["first_words"] - result.started == pytest.approx(0.5)
    entry = next(e for e in result.trace if e.step == "answer")
    assert entry.usage is not None
    assert entry.usage.calls == 1
    assert entry.items == 2
