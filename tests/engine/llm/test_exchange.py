"""One attempt's exchange (`engine/llm/_exchange.py`): answers read, failures made errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from llm_mocks import API_KEY, openai_answer, paced, sse
from specroute.engine.llm import (
    DEFAULT_RETRY,
    AnswerBounds,
    Provider,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from specroute.engine.llm._call import CallState
from specroute.engine.llm._exchange import Request, exchange, retry_after

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from specroute.engine.llm._wire import Progress
    from trio.testing import MockClock

PROVIDER = Provider.openai(api_key=API_KEY, base_url="http://test/v1")
# `max_tokens=5` below: at most 5 * 100 + 1000 = 1500 bytes of answer are read.
SMALL = AnswerBounds(first_byte=2.0, between_chunks=1.0, bytes_per_token=100, bytes_margin=1000)
CHUNK = {"choices": [{"delta": {"content": "he"}}]}


def request(*, stream: bool) -> Request:
    return Request(
        url="http://test/v1/chat/completions",
        headers={"authorization": f"Bearer {API_KEY}"},
        body={"model": "m", "messages": [], "stream": stream},
        stream=stream,
        reserve=10,
        max_tokens=5,
    )


async def run(
    handler: Any,
    *,
    stream: bool = False,
    bounds: AnswerBounds = SMALL,
    provider: Provider = PROVIDER,
    call: CallState | None = None,
) -> tuple[Progress, CallState]:
    call = CallState(prompt_estimate=5, started=0.0) if call is None else call
    progress = call.open_attempt()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await exchange(
            http,
            provider,
            request(stream=stream),
            call=call,
            progress=progress,
            timeout=httpx.Timeout(5.0),
            retry=DEFAULT_RETRY,
            bounds=bounds,
        )
    return progress, call


def answers_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=openai_answer("fine", prompt_tokens=7, completion_tokens=1))


def streams_two_chunks(request: httpx.Request) -> httpx.Response:
    chunk = {"choices": [{"delta": {"content": "he"}}]}
    last = {"choices": [{"delta": {"content": "y"}, "finish_reason": "stop"}]}
    return httpx.Response(200, content=sse(chunk, last, "[DONE]"))


def stream_cut_short(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=sse({"choices": [{"delta": {"content": "he"}}]}))


def stream_with_error_event(request: httpx.Request) -> httpx.Response:
    chunk = {"choices": [{"delta": {"content": "he"}}]}
    return httpx.Response(200, content=sse(chunk, {"error": {"message": "overloaded"}}, "[DONE]"))


def rejects_the_key(request: httpx.Request) -> httpx.Response:
    body = {"error": {"message": f"Incorrect API key provided: {API_KEY}"}}
    return httpx.Response(401, json=body)


def busy_with_retry_after_ms(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="busy", headers={"retry-after-ms": "1500"})


def refuses_connections(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def times_out_reading(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out")


async def test_a_body_is_read_into_progress() -> None:
    progress, call = await run(answers_ok)
    assert progress.text() == "fine"
    assert progress.done
    assert (progress.input_tokens, progress.output_tokens) == (7, 1)
    assert call.status_code == 200


async def test_a_stream_is_read_to_its_final_event() -> None:
    progress, _ = await run(streams_two_chunks, stream=True)
    assert progress.text() == "hey"
    assert progress.finish_reason == "stop"
    assert progress.done


async def test_a_stream_without_its_final_event_is_a_connection_cut_short() -> None:
    with pytest.raises(ProviderConnectionError, match=r"ended before its final event"):
        await run(stream_cut_short, stream=True)


async def test_an_error_event_is_raised() -> None:
    with pytest.raises(ProviderResponseError, match=r"overloaded"):
        await run(stream_with_error_event, stream=True)


async def test_an_error_status_carries_the_scrubbed_message_and_a_hint() -> None:
    with pytest.raises(ProviderHTTPError) as info:
        await run(rejects_the_key)
    error = info.value
    assert error.status == 401
    assert not error.retryable
    assert "check the API key" in str(error)
    assert API_KEY not in str(error)
    assert API_KEY not in error.provider_message
    assert "[redacted]" in error.provider_message


async def test_a_retryable_status_records_the_delay_it_asks_for() -> None:
    call = CallState(prompt_estimate=5, started=0.0)
    with pytest.raises(ProviderHTTPError, match=r"503.*busy \(retried\)") as info:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(busy_with_retry_after_ms)
        ) as http:
            await exchange(
                http,
                PROVIDER,
                request(stream=False),
                call=call,
                progress=call.open_attempt(),
                timeout=httpx.Timeout(5.0),
                retry=DEFAULT_RETRY,
            )
    assert info.value.retryable
    assert call.retry_after == 1.5
    assert call.status_code == 503


async def test_transport_failures_become_connection_and_timeout_errors() -> None:
    with pytest.raises(ProviderConnectionError, match=r"check that http://test/v1 is reachable"):
        await run(refuses_connections)
    with pytest.raises(ProviderTimeoutError, match=r"ReadTimeout.*raise that phase"):
        await run(times_out_reading)


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "-40"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after_prefers_milliseconds(headers: dict[str, str], delay: float | None) -> None:
    assert retry_after(httpx.Response(429, headers=headers)) == delay


# --- The edge (issue 13): answers that lie, hang, never stop or quote the key. -------------


def streams_a_web_page(request: httpx.Request) -> httpx.Response:
    page = b"<!doctype html><html><body>Welcome</body></html>"
    return httpx.Response(200, content=page, headers={"content-type": "text/html"})


def streams_json_lines(request: httpx.Request) -> httpx.Response:
    # No content type: the first line alone shows it is not an event stream.
    return httpx.Response(200, content=json.dumps(openai_answer("fine")).encode() + b"\n")


def stream_cut_mid_line(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=sse(CHUNK) + b'data: {"choi')


def stream_ends_on_done_without_blank_line(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=sse(CHUNK) + b"data: [DONE]")


def stream_with_crlf_split_across_chunks(request: httpx.Request) -> httpx.Response:
    body = sse(CHUNK, "[DONE]").replace(b"\n", b"\r\n")
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    return httpx.Response(200, stream=Chunks(pieces))


def streams_without_end(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, stream=Chunks(sse(CHUNK) for _ in range(10_000)))


def body_too_large(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b" " * 2000 + json.dumps(openai_answer("x")).encode())


class Chunks(httpx.AsyncByteStream):
    """A response body sent in the given chunks, `every` seconds apart (virtual time)."""

    def __init__(self, chunks: Any, *, every: float = 0.0, first: float = 0.0) -> None:
        self.chunks = chunks
        self.every = every
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await trio.sleep(self.first)
        async for chunk in paced(self.chunks, every=self.every):
            yield chunk


async def test_a_web_page_for_a_stream_says_the_base_url_does_not_speak_the_api() -> None:
    with pytest.raises(ProviderResponseError, match=r"text/html, not an event stream: that base"):
        await run(streams_a_web_page, stream=True)
    with pytest.raises(ProviderResponseError, match=r"does not speak OpenAI Chat Completions"):
        await run(streams_json_lines, stream=True)


async def test_a_cut_mid_line_is_a_connection_cut_short_like_a_cut_between_events() -> None:
    with pytest.raises(ProviderConnectionError, match=r"ended before its final event"):
        await run(stream_cut_mid_line, stream=True)
    # A last line that does read (a `[DONE]` without its blank line) still ends the answer.
    progress, _ = await run(stream_ends_on_done_without_blank_line, stream=True)
    assert progress.done
    progress, _ = await run(stream_with_crlf_split_across_chunks, stream=True)
    assert (progress.text(), progress.done) == ("he", True)


async def test_an_answer_past_its_size_bound_is_not_read_further() -> None:
    with pytest.raises(ProviderResponseError, match=r"passed 1,500 bytes.*AnswerBounds"):
        await run(streams_without_end, stream=True)
    with pytest.raises(ProviderResponseError, match=r"passed 1,500 bytes"):
        await run(body_too_large)


async def test_the_first_byte_bound_ends_a_silent_stream(autojump_clock: MockClock) -> None:
    def silent(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Chunks([sse(CHUNK)], first=10.0))

    with pytest.raises(ProviderTimeoutError, match=r"no answer within 2.0 s .*first_byte"):
        await run(silent, stream=True)
    assert trio.current_time() == pytest.approx(2.0)


async def test_the_gap_bound_ends_a_stalled_stream(autojump_clock: MockClock) -> None:
    def stalls(request: httpx.Request) -> httpx.Response:
        # Chunks 0.9 s apart pass the 1 s bound, however long the stream (3.6 s here).
        return httpx.Response(200, stream=Chunks([sse(CHUNK)] * 3 + [sse("[DONE]")], every=0.9))

    progress, _ = await run(stalls, stream=True)
    assert progress.done
    assert trio.current_time() == pytest.approx(3.6)

    def stalls_long(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=StallsAfter(sse(CHUNK), stall=5.0))

    start = trio.current_time()
    with pytest.raises(ProviderTimeoutError, match=r"no data for 1.0 s .*between_chunks"):
        await run(stalls_long, stream=True)
    assert trio.current_time() - start == pytest.approx(1.0)


class StallsAfter(httpx.AsyncByteStream):
    def __init__(self, chunk: bytes, *, stall: float) -> None:
        self.chunk = chunk
        self.stall = stall

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.chunk
        await trio.sleep(self.stall)
        yield sse("[DONE]")


ESCAPED_KEY = "".join(f"\\u{ord(c):04x}" for c in API_KEY)


@pytest.mark.parametrize(
    "body",
    [
        sse({"error": {"message": f"bad key {API_KEY}"}}),  # an error event
        sse(f"{API_KEY} is not JSON"),  # a chunk that is not JSON, quoted
        sse(json.dumps(API_KEY)),  # a chunk that is not an object, quoted
        f'data: {{"error": {{"message": "bad key {ESCAPED_KEY}"}}}}\n\n'.encode(),  # escaped
    ],
    ids=["error-event", "not-json", "not-object", "escaped"],
)
async def test_a_key_in_a_stream_is_scrubbed_before_it_is_read(body: bytes) -> None:
    def echoes(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with pytest.raises(ProviderResponseError) as caught:
        await run(echoes, stream=True)
    assert API_KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)


@pytest.mark.parametrize("at", [0, 150, 290, 299, 64 * 1024 - 10])
async def test_a_key_across_a_cut_leaves_no_part_behind(at: int) -> None:
    def echoes_at(request: httpx.Request) -> httpx.Response:
        text = "x" * at + API_KEY + "y" * (70 * 1024)
        return httpx.Response(500, text=text)

    with pytest.raises(ProviderHTTPError) as caught:
        await run(echoes_at)
    assert API_KEY[:6] not in str(caught.value)


async def test_a_request_that_never_left_the_process_bills_nothing() -> None:
    call = CallState(prompt_estimate=5, started=0.0)
    call.open_attempt()
    await call.trace("connection.connect_tcp.started", {})
    assert call.close_attempt(error="Cancelled").usage.total_tokens == 0
    call.open_attempt()
    await call.trace("http11.send_request_body.complete", {})
    assert call.close_attempt(error="Cancelled").usage.input_tokens == 5


def test_a_built_request_does_not_show_its_key() -> None:
    built = request(stream=False)
    assert API_KEY in built.headers["authorization"]
    assert API_KEY not in repr(built)
