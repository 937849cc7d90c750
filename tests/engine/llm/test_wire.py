"""The `WireFormat` protocol: a third format, written here, drives a real `LLMClient` call.

`JSONLinesFormat` is a made-up API: `POST {base}/generate`, a `token` header, one JSON object
per line when streaming (`{"text": ...}`, then `{"end": ..., "usage": {...}}`), and a whole
answer `{"output": ..., "end": ..., "usage": {...}}`. If the protocol lets this be written
without touching the library, a new provider is one module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import pytest
import trio
from llm_mocks import paced
from specroute.engine.llm import (
    DEFAULT_PRICES,
    LLMClient,
    LLMConfigError,
    ModelPrice,
    OutputSchema,
    Progress,
    Provider,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    RetryBudgetExceededError,
    RetryPolicy,
    ServerSentEvent,
    ToolCall,
    ToolSpec,
    Usage,
    UsageMeter,
    WireFormat,
    open_llm_client,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from specroute.engine.llm import Message
    from trio.testing import MockClock

KEY = "jl-SECRET-key"
PRICES = DEFAULT_PRICES.with_prices(
    {"jl-1": ModelPrice(input_per_million=1.0, output_per_million=2.0)}
)


@attrs.define(eq=False)
class LineDecoder:
    """Every non-empty line is one event."""

    def feed(self, line: str) -> ServerSentEvent | None:
        return ServerSentEvent(event="line", data=line) if line.strip() else None

    def flush(self) -> ServerSentEvent | None:
        return None


@attrs.frozen
class JSONLinesFormat:
    name: str = "JSON lines"

    def url(self, base_url: str) -> str:
        return f"{base_url}/generate"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def authorization(self, api_key: str) -> dict[str, str]:
        return {"token": api_key}

    def body(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int,
        stream: bool,
        temperature: float | None,
    ) -> dict[str, Any]:
        prompt = "\n".join(m.content for m in messages)
        return {"model": model, "prompt": prompt, "limit": max_tokens, "lines": stream}

    def stream_decoder(self) -> LineDecoder:
        return LineDecoder()

    def read_body(self, data: Any, progress: Progress) -> None:
        if not isinstance(data, dict) or "output" not in data:
            raise ProviderResponseError(f"no `output` in {data!r}")
        progress.add_text(data["output"])
        progress.finish_reason = data.get("end")
        self.read_usage(data.get("usage"), progress)
        progress.done = True

    def read_event(self, event: ServerSentEvent, progress: Progress) -> None:
        data = json.loads(event.data)
        progress.add_text(data.get("text", ""))
        if "end" in data:
            progress.finish_reason = data["end"]
            self.read_usage(data.get("usage"), progress)
            progress.done = True

    def read_usage(self, usage: Any, progress: Progress) -> None:
        if isinstance(usage, dict):
            progress.report_usage(input_tokens=usage.get("in"), output_tokens=usage.get("out"))

    def error_message(self, data: Any) -> str | None:
        return data.get("problem") if isinstance(data, dict) else None


def jsonl_provider(**kwargs: Any) -> Provider:
    return Provider(
        name="jl", format=JSONLinesFormat(), base_url="http://jl.test", api_key=KEY, **kwargs
    )


def lines(*objects: dict[str, Any]) -> list[bytes]:
    return [json.dumps(o).encode() + b"\n" for o in objects]


seen: list[httpx.Request] = []


async def streams_two_lines(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    chunks = lines({"text": "hel"}, {"text": "lo"}, {"end": "done", "usage": {"in": 7, "out": 2}})
    return httpx.Response(200, content=paced(chunks, every=0.1))


async def answers_whole(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    return httpx.Response(200, json={"output": "hi", "end": "done", "usage": {"in": 3, "out": 1}})


async def streams_forever(request: httpx.Request) -> httpx.Response:
    chunks = lines(*({"text": "word"} for _ in range(1000)))
    return httpx.Response(200, content=paced(chunks, every=1.0))


async def refuses_with_the_key(request: httpx.Request) -> httpx.Response:
    return httpx.Response(403, json={"problem": f"token {KEY} may not use jl-1"})


async def ends_without_its_last_line(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=paced(lines({"text": "cut"}), every=0.1))


def test_the_shipped_formats_and_the_test_format_are_wire_formats() -> None:
    formats: list[WireFormat] = [JSONLinesFormat(), Provider.simulated().format]
    assert [f.name for f in formats] == ["JSON lines", "OpenAI Chat Completions"]


@pytest.fixture
async def http() -> Any:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Any) -> httpx.AsyncClient:
        clients.append(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def test_a_streamed_call_in_a_new_format(http: Any, autojump_clock: MockClock) -> None:
    seen.clear()
    client = LLMClient(provider=jsonl_provider(prices=PRICES), http=http(streams_two_lines))
    completion = await client.complete("say hello", model="jl-1", max_tokens=500)
    assert completion.text == "hello"
    assert completion.streamed
    assert completion.finish_reason == "done"
    assert completion.usage == Usage(input_tokens=7, output_tokens=2)
    assert completion.cost == pytest.approx((7 * 1.0 + 2 * 2.0) / 1e6)
    (request,) = seen
    assert str(request.url) == "http://jl.test/generate"
    assert request.headers["token"] == KEY
    assert json.loads(request.content) == {
        "model": "jl-1",
        "prompt": "say hello",
        "limit": 500,
        "lines": True,
    }


async def test_a_whole_answer_in_a_new_format_through_open_llm_client() -> None:
    seen.clear()
    transport = httpx.MockTransport(answers_whole)
    async with open_llm_client(jsonl_provider(prices=PRICES), transport=transport) as client:
        completion = await client.complete("hi", model="jl-1", max_tokens=5)
    assert (completion.text, completion.streamed) == ("hi", False)
    assert completion.usage == Usage(input_tokens=3, output_tokens=1)


async def test_a_cancelled_stream_in_a_new_format_is_billed_for_what_arrived(
    http: Any, autojump_clock: MockClock
) -> None:
    meter = UsageMeter()
    client = LLMClient(provider=jsonl_provider(prices=PRICES), http=http(streams_forever))
    with trio.move_on_after(10.5):
        await client.complete("go", model="jl-1", max_tokens=5000, meter=meter)
    [record] = meter.records()
    # Ten lines of "word" (4 characters, one token each) arrived before the cancellation.
    assert record.usage.output_tokens == 10
    assert record.usage.partial
    assert record.usage.estimated


async def test_errors_in_a_new_format_use_its_message_and_hide_the_key(http: Any) -> None:
    client = LLMClient(provider=jsonl_provider(prices=PRICES), http=http(refuses_with_the_key))
    with pytest.raises(ProviderHTTPError) as caught:
        await client.complete("hi", model="jl-1", max_tokens=5)
    assert caught.value.provider_message == "token [redacted] may not use jl-1"
    assert KEY not in str(caught.value)


async def test_a_stream_without_its_end_is_a_cut_connection(
    http: Any, autojump_clock: MockClock
) -> None:
    client = LLMClient(
        provider=jsonl_provider(prices=PRICES),
        http=http(ends_without_its_last_line),
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(RetryBudgetExceededError, match="gave up after 1") as caught:
        await client.complete("hi", model="jl-1", max_tokens=500)
    assert isinstance(caught.value.__cause__, ProviderConnectionError)


def test_a_provider_rejects_a_format_missing_methods() -> None:
    @attrs.frozen
    class HalfFormat:
        name: str = "half"

        def url(self, base_url: str) -> str:
            return base_url

    with pytest.raises(LLMConfigError, match="HalfFormat lacks `headers`, `authorization`"):
        Provider(name="half", format=HalfFormat(), base_url="http://x")  # type: ignore[arg-type]


def test_progress_takes_only_integer_counts() -> None:
    progress = Progress()
    progress.report_usage(input_tokens=5, output_tokens=None)
    progress.report_usage(input_tokens="7", output_tokens=True)
    assert (progress.input_tokens, progress.output_tokens) == (5, None)


async def test_progress_bills_a_cut_stream_by_its_text_when_the_count_is_stale() -> None:
    progress = Progress()
    progress.add_text("abcd" * 6)
    progress.report_usage(input_tokens=4, output_tokens=1)
    assert progress.usage(99, partial=False) == Usage(input_tokens=4, output_tokens=1)
    assert progress.usage(99, partial=True) == Usage(
        input_tokens=4, output_tokens=6, partial=True, estimated=True
    )
    assert Progress().usage(99, partial=True) == Usage(
        input_tokens=99, output_tokens=0, partial=True, estimated=True
    )


async def test_a_format_without_tools_refuses_a_call_with_tools(http: Any) -> None:
    seen.clear()
    client = LLMClient(provider=jsonl_provider(prices=PRICES), http=http(answers_whole))
    schema = OutputSchema(name="Out", schema={"type": "string"})

    with pytest.raises(LLMConfigError, match=r"JSON lines format does not take `tools`, `output`"):
        await client.complete(
            "hi", model="jl-1", max_tokens=5, tools=[ToolSpec(name="t")], output=schema
        )

    assert seen == []
    assert client.meter.statistics().calls == 0
    # The same format still serves plain calls.
    assert (await client.complete("hi", model="jl-1", max_tokens=5)).text == "hi"


async def test_progress_gathers_tool_calls_by_index() -> None:
    progress = Progress()
    progress.add_tool_call(1, id="b", name="second", arguments='{"x"')
    progress.add_tool_call(0, id="a", name="first")
    progress.add_tool_call(1, arguments=": 1}")

    assert progress.tool_calls() == (
        ToolCall(id="a", name="first", arguments_json=""),
        ToolCall(id="b", name="second", arguments_json='{"x": 1}'),
    )
    assert progress.chars == len('{"x": 1}')
    # Arguments are generated tokens: a cut answer is billed for them.
    assert progress.usage(5, partial=True).output_tokens == 2
